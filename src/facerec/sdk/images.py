"""Turn what a caller holds (a path, encoded bytes, a numpy array) into the encoded image bytes the API takes.

Encoded bytes and files are sent as they are: the service decodes them (EXIF orientation included), so
re-encoding here would only cost time and quality. Arrays are encoded losslessly as PNG.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from facerec.sdk.types import ImageInput, Photo


class ImageInputError(ValueError):
    """An input that cannot be turned into image bytes (wrong type, shape or dtype)."""


def image_bytes(image: ImageInput) -> bytes:
    """The encoded bytes of ``image``: a file's content, the bytes themselves, or an array encoded as PNG.

    Arrays must be ``uint8``, either HxWx3 (RGB) or HxW (grey). Raises :class:`ImageInputError` for anything
    else and ``OSError`` when a file cannot be read.
    """
    if isinstance(image, str | os.PathLike):
        return Path(image).read_bytes()
    if isinstance(image, bytes):
        return image
    if isinstance(image, bytearray | memoryview):
        return bytes(image)
    if isinstance(image, np.ndarray):
        return encode_png(image)
    raise ImageInputError(f"expected a path, bytes or a numpy array, got {type(image).__name__}")


def encode_png(pixels: np.ndarray) -> bytes:
    """Encodes an HxWx3 uint8 RGB or HxW uint8 grey array as PNG."""
    if pixels.dtype != np.uint8:
        raise ImageInputError(f"image arrays must be uint8, got {pixels.dtype}")
    if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3)):
        raise ImageInputError(f"image arrays must be HxWx3 (RGB) or HxW (grey), got shape {pixels.shape}")
    if pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise ImageInputError(f"image array is empty: shape {pixels.shape}")
    buffer = io.BytesIO()
    # Slices and transposes are not contiguous; Pillow needs a contiguous buffer. The mode (L or RGB)
    # follows from the dtype and shape checked above.
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG")
    return buffer.getvalue()


def photo_name(image: ImageInput | Photo) -> str:
    """The label sent with a photo: the one given, else a file's name, else empty."""
    if isinstance(image, Photo):
        return image.name or photo_name(image.image)
    if isinstance(image, str | os.PathLike):
        return Path(image).name
    return ""


def is_single_image(value: object) -> bool:
    """True when ``value`` is one image rather than a collection of them (a str or an array is iterable too)."""
    return isinstance(value, str | os.PathLike | bytes | bytearray | memoryview | np.ndarray | Photo)
