"""Decoding of uploaded photos into upright 8-bit RGB arrays, within limits.

Only the formats of ``facerec.photo_formats`` are opened (the ones phones, cameras and face datasets produce:
JPEG/MPO, PNG, WebP, BMP, GIF, TIFF, PPM/PGM, AVIF, HEIC/HEIF): Pillow knows dozens more, and some rarely used
decoders have had decompression-bomb and memory-safety bugs of their own, so the others are never tried.
Multi-frame files (GIF, TIFF, MPO, animated WebP) give their first frame. The size is checked from the header,
before any pixel is decoded, so a small file claiming a huge image costs nothing.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pillow_heif
import simplejpeg
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from facerec.photo_formats import ACCEPTED_NAMES, PILLOW_FORMATS
from facerec_embedder.errors import CorruptImage, ImageTooLarge, UnsupportedImage

# HEIC/HEIF (the iPhone default) is decoded by pillow-heif's plugin; registering it adds the "HEIF" format.
pillow_heif.register_heif_opener()

RGBImage = npt.NDArray[np.uint8]
"""An upright image as a C-contiguous (height, width, 3) uint8 array, channels in RGB order."""

ACCEPTED_FORMATS = PILLOW_FORMATS

# Errors Pillow's decoders raise on broken data: truncated files (OSError), bad headers or chunks
# (SyntaxError, ValueError), early end of data (EOFError); the AVIF and HEIF plugins raise RuntimeError from libavif
# and libheif (found by tests/embedder_domain/test_decoding_properties.py: "Missing or empty image item").
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, RuntimeError)

# Single-channel modes wider than 8 bits: 16-bit greyscale (PNG, TIFF) and Pillow's 32-bit integer mode, in which
# 16-bit PGM files open (their maxval already scaled to 0-65535).
_WIDE_GREY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


@dataclass(frozen=True)
class ImageLimits:
    """What the decoder accepts: encoded size in bytes, decoded size in pixels (width x height)."""

    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000


DEFAULT_LIMITS = ImageLimits()


def decode_image(data: bytes, limits: ImageLimits = DEFAULT_LIMITS, *, draft_side: int | None = None) -> RGBImage:
    """Decode a photo in an accepted format into an upright RGB array.

    EXIF orientation is applied, so coordinates refer to the photo as a person sees it. Greyscale, palette,
    RGBA (alpha dropped), CMYK, bilevel and 16-bit images all come out as 8-bit RGB.

    With ``draft_side``, a JPEG may be decoded at 1/2, 1/4 or 1/8 scale inside libjpeg (Pillow's draft mode;
    a 12 MP photo: 15.9 ms at 1/4 against 64.6 ms in full), the smallest scale whose longest side is still at
    least ``draft_side``; other formats, and JPEGs too small to reduce, decode at full size.

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
            if draft_side is not None:
                # The requested size has the photo's shape, so libjpeg's scale keeps the longest side >= draft_side.
                longest = max(image.size)
                image.draft(None, (-(-image.width * draft_side // longest), -(-image.height * draft_side // longest)))
            if draft_side is None and image.format in ("JPEG", "MPO") and image.mode in ("RGB", "L"):
                return _decoded_jpeg(data, image.getexif().get(ExifTags.Base.Orientation, 1))
            image.load()
            # In place: for an upright photo (orientation 1, the usual case) exif_transpose would otherwise return
            # a copy, 36 MB and ~20-70 ms for a 12 MP photo.
            ImageOps.exif_transpose(image, in_place=True)
            return _to_rgb(image)
    except Image.DecompressionBombError as error:
        # Pillow's own guard (twice Image.MAX_IMAGE_PIXELS) fires inside open(), before our check can.
        raise ImageTooLarge(f"the image is too large to decode: {error}") from error
    except UnidentifiedImageError as error:
        raise UnsupportedImage(f"the bytes are not an image in an accepted format ({ACCEPTED_NAMES})") from error
    except _DECODE_ERRORS as error:
        raise CorruptImage(f"the image cannot be decoded (truncated or damaged): {error}") from error


def upright_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of the photo once EXIF-rotated, from its header alone; ``None`` where the header cannot
    be read (``decode_image`` then says why)."""
    try:
        with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as header:
            width, height = header.size
            if header.getexif().get(ExifTags.Base.Orientation, 1) in _TRANSPOSING_ORIENTATIONS:
                return height, width
            return width, height
    except (Image.DecompressionBombError, UnidentifiedImageError, *_DECODE_ERRORS):
        return None


def _decoded_jpeg(data: bytes, orientation: int) -> RGBImage:
    """A colour or greyscale JPEG decoded by libjpeg-turbo straight into an RGB array, then turned upright.

    The pixels are exactly Pillow's (the same libjpeg-turbo, accurate DCT and upsampling; a test compares
    them), but Pillow keeps RGB as 4 bytes a pixel and packs it into an array afterwards: a 12 MP photo took
    137-156 ms through Pillow against 41 ms here (measured in one process on the 2-core machine), most of a
    phone photo's cost once detection runs on a bounded copy. Orientation 5-8 swaps the axes (one copy).
    """
    pixels = simplejpeg.decode_jpeg(data, colorspace="RGB", fastdct=False, fastupsample=False, strict=True)
    upright = _EXIF_ORIENTATIONS.get(orientation, _EXIF_ORIENTATIONS[1])(pixels)
    return np.ascontiguousarray(upright)


# EXIF orientations that swap width and height (a quarter turn, with or without a mirror).
_TRANSPOSING_ORIENTATIONS = frozenset({5, 6, 7, 8})

# EXIF orientation -> the array operation Pillow's exif_transpose applies (FLIP_LEFT_RIGHT, ROTATE_180,
# FLIP_TOP_BOTTOM, TRANSPOSE, ROTATE_270, TRANSVERSE, ROTATE_90); unknown values leave the photo as stored.
_EXIF_ORIENTATIONS: dict[int, Callable[[RGBImage], RGBImage]] = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, k=-1),
    7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],
    8: lambda a: np.rot90(a, k=1),
}


def _check_pixels(width: int, height: int, limits: ImageLimits) -> None:
    pixels = width * height
    if pixels > limits.max_pixels:
        raise ImageTooLarge(
            f"the image is {width}x{height} = {pixels:,} pixels; at most {limits.max_pixels:,} are accepted"
        )


def _to_rgb(image: Image.Image) -> RGBImage:
    if image.mode in _WIDE_GREY_MODES:
        grey = _wide_grey_to_8_bit(np.asarray(image))
        return np.ascontiguousarray(np.repeat(grey[:, :, np.newaxis], 3, axis=2))
    if image.mode in ("P", "PA"):
        # Palette transparency given as bytes must go through RGBA; Pillow warns otherwise.
        image = image.convert("RGBA")
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))


def _wide_grey_to_8_bit(values: npt.NDArray[np.integer]) -> npt.NDArray[np.uint8]:
    """16-bit grey levels scaled to 0-255 by the bits the image really uses.

    Pillow's own conversion clips at 255 (a white image). Dividing by 257 is right for a full 16-bit range,
    but cameras and scanners often store 10-14 significant bits in a 16-bit container: scaled as 16-bit, a
    12-bit image comes out almost black and no face is found. So the range is taken from the highest value
    present, rounded up to a whole number of bits (at least 8): 0-4095 data maps 4095 to 255, 0-65535 data
    maps 65535 to 255, and 8-bit data stored in 16 bits keeps its values.
    """
    top = int(values.max(initial=0))
    bits = max(8, top.bit_length())
    scale = ((1 << bits) - 1) / 255.0
    return np.clip(np.rint(values.astype(np.float32) / scale), 0, 255).astype(np.uint8)
