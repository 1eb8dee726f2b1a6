"""Face detectors behind one seam (:class:`BoxDetector`): YuNet (the default) and dlib's HOG."""

from __future__ import annotations

from facerec_embedder.detectors.base import Box, BoxDetector, ScoredBox
from facerec_embedder.detectors.hog import HogDetector
from facerec_embedder.detectors.yunet import YuNetDetector

DETECTORS = ("yunet", "hog")

__all__ = ["DETECTORS", "Box", "BoxDetector", "HogDetector", "ScoredBox", "YuNetDetector"]
