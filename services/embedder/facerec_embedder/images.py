"""Decoding of uploaded photos into upright 8-bit RGB arrays, within limits.

Only JPEG, PNG, WebP and BMP are opened: Pillow knows dozens of formats, and some rarely used decoders have
had decompression-bomb and memory-safety bugs of their own, so the others are never tried. The size is checked
from the header, before any pixel is decoded, so a small file claiming a huge image costs nothing.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps, UnidentifiedImageError

from facerec_embedder.errors import CorruptImage, ImageTooLarge, UnsupportedImage

RGBImage = npt.NDArray[np.uint8]
"""An upright image as a C-contiguous (height, width, 3) uint8 array, channels in RGB order."""

ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP")

# Errors Pillow's decoders raise on broken data: truncated files (OSError), bad headers or chunks
# (SyntaxError, ValueError), early end of data (EOFError).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError)

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


@dataclass(frozen=True)
class ImageLimits:
    """What the decoder accepts: encoded size in bytes, decoded size in pixels (width x height)."""

    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000


DEFAULT_LIMITS = ImageLimits()


def decode_image(data: bytes, limits: ImageLimits = DEFAULT_LIMITS) -> RGBImage:
    """Decode a JPEG, PNG, WebP or BMP photo into an upright RGB array.

    EXIF orientation is applied, so coordinates refer to the photo as a person sees it. Greyscale, palette,
    RGBA (alpha dropped), CMYK and 16-bit images all come out as 8-bit RGB.

    Raises ``ImageTooLarge`` over ``limits``, ``UnsupportedImage`` for bytes that are not an accepted image
    and ``CorruptImage`` for an accepted image that cannot be decoded.
    """
    if len(data) > limits.max_bytes:
        raise ImageTooLarge(f"the image has {len(data):,} bytes; at most {limits.max_bytes:,} are accepted")
    if not data:
        raise UnsupportedImage("the image is empty")
    try:
        with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as image:
            _check_pixels(image.width, image.height, limits)
            upright = ImageOps.exif_transpose(image)
            return _to_rgb(upright)
    except Image.DecompressionBombError as error:
        # Pillow's own guard (twice Image.MAX_IMAGE_PIXELS) fires inside open(), before our check can.
        raise ImageTooLarge(f"the image is too large to decode: {error}") from error
    except UnidentifiedImageError as error:
        raise UnsupportedImage("the bytes are not an image in an accepted format (JPEG, PNG, WebP, BMP)") from error
    except _DECODE_ERRORS as error:
        raise CorruptImage(f"the image cannot be decoded (truncated or damaged): {error}") from error


def _check_pixels(width: int, height: int, limits: ImageLimits) -> None:
    pixels = width * height
    if pixels > limits.max_pixels:
        raise ImageTooLarge(
            f"the image is {width}x{height} = {pixels:,} pixels; at most {limits.max_pixels:,} are accepted"
        )


def _to_rgb(image: Image.Image) -> RGBImage:
    if image.mode in _SIXTEEN_BIT_MODES:
        # Pillow's own conversion clips 16-bit values at 255 (a white image); scale the range instead.
        wide = np.asarray(image).astype(np.float32)
        grey = np.clip(np.rint(wide / 257.0), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, np.newaxis], 3, axis=2))
    if image.mode in ("P", "PA"):
        # Palette transparency given as bytes must go through RGBA; Pillow warns otherwise.
        image = image.convert("RGBA")
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))
