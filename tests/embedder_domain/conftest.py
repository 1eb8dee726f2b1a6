"""Fixtures of the embedder's domain tests: the detector and the in-process model, built once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from facerec_embedder.detection import FaceDetector
from facerec_embedder.runtime import OnnxRuntimeEmbedder

from .photos import ONNX_MODEL


@pytest.fixture(scope="session")
def detector() -> FaceDetector:
    """The HOG detector with the service's default upsampling (1)."""
    return FaceDetector(upsample=1)


@pytest.fixture(scope="session")
def onnx_embedder() -> Iterator[OnnxRuntimeEmbedder]:
    """The real face model, run in-process; skipped until the converter has written the ONNX file."""
    if not ONNX_MODEL.is_file():
        pytest.skip(f"{ONNX_MODEL} is missing: run the dlib->ONNX converter (facerec_embedder.model) first")
    embedder = OnnxRuntimeEmbedder(ONNX_MODEL, threads=2)
    yield embedder
    embedder.close()
