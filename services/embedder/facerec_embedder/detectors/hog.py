"""dlib's HOG face detector (``get_frontal_face_detector``) behind the detector seam.

dlib releases the GIL while it detects, so detection runs in worker threads in parallel. The HOG detector is
NOT safe to share between threads (it keeps the image pyramid of the current call in the object: two threads
on one detector crashed the process with a segmentation fault), so each thread builds its own, once.

dlib's HOG window is 80x80 pixels. Measured on the obama sample scaled down step by step: without upsampling
the smallest face found was 73 px wide (53 px missed), with one 37 px (27 px missed), with two 27 px; each
step costs about 4x the time (910x1137 photo: 76 ms, 350 ms, 1.5 s).
"""

from __future__ import annotations

import threading
from typing import Any

import dlib

from facerec_embedder.detectors.base import Box, ScoredBox
from facerec_embedder.images import RGBImage


class HogDetector:
    """dlib's frontal-face HOG detector; its score is the SVM's (0 is the decision boundary, higher is surer).

    ``adjust_threshold`` shifts the decision boundary (negative finds more faces and more false ones).
    """

    name = "hog"

    def __init__(self, upsample: int = 1, *, adjust_threshold: float = 0.0) -> None:
        self.default_upsample = upsample
        self.adjust_threshold = adjust_threshold
        self._local = threading.local()
        self._detector()  # build the caller's thread detector now, so a broken install fails at start-up

    def find(self, image: RGBImage, upsample: int) -> list[ScoredBox]:
        """Every face box in ``image`` with its SVM score."""
        rects, scores, _ = self._detector().run(image, upsample, self.adjust_threshold)
        return [ScoredBox(box=_box(rect), score=float(score)) for rect, score in zip(rects, scores, strict=True)]

    def _detector(self) -> Any:
        detector = getattr(self._local, "detector", None)
        if detector is None:
            detector = self._local.detector = dlib.get_frontal_face_detector()
        return detector


def _box(rect: Any) -> Box:
    return Box(x=int(rect.left()), y=int(rect.top()), width=int(rect.width()), height=int(rect.height()))
