"""Where the test photos and the model are, and small helpers to turn photos into test inputs."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.paths import SHARED_FACES_DIR

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / ".cache" / "samples"
SHARED_FACES = SHARED_FACES_DIR
ONNX_MODEL = REPO / "deploy" / "triton" / "model_repository" / "face_embedder" / "1" / "model.onnx"


def sample(name: str) -> bytes:
    """A sample photo of the face-recognition 1.3.0 sdist (fetched by scripts/setup.sh)."""
    path = SAMPLES / name
    if not path.is_file():
        pytest.skip(f"{path} is missing: run scripts/setup.sh to fetch the sample photos")
    return path.read_bytes()


def shared_face_photo(relative: str) -> bytes:
    """A photo of the labelled face sets (``FACEREC_FACES_DIR``; absent on some machines)."""
    path = SHARED_FACES / relative
    if not path.is_file():
        pytest.skip(f"{path} is missing: the shared face photos are not on this machine")
    return path.read_bytes()


def sample_image(name: str) -> Image.Image:
    """A sample photo opened with Pillow, loaded."""
    image = Image.open(io.BytesIO(sample(name)))
    image.load()
    return image


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    """``image`` encoded in ``fmt`` (a Pillow format name)."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def rgb_array(image: Image.Image) -> np.ndarray:
    """``image`` as an (H, W, 3) uint8 array."""
    return np.asarray(image.convert("RGB"), dtype=np.uint8)
