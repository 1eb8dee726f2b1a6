"""Property-based tests (hypothesis) of image decoding: whatever bytes arrive, decoding ends with an image or one of
the documented errors, soon.

``decode_image`` documents three outcomes besides an image: ``UnsupportedImage`` (not an accepted image),
``CorruptImage`` (an accepted image that cannot be decoded) and ``ImageTooLarge`` (over the byte or pixel limit).
``upright_size`` documents ``None`` for a header it cannot read. The inputs: arbitrary bytes, and real encodings of
every accepted format (JPEG, PNG, WebP, BMP, GIF, TIFF, PGM, AVIF, HEIC) truncated, with bytes flipped, with chunks
cut out or repeated, and with headers declaring huge dimensions. The whole pipeline (decode, the service's
detector, the real model in-process) is held to the same promise.
"""

from __future__ import annotations

import asyncio
import io
import struct
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from facerec_embedder.app import face_detector
from facerec_embedder.batching import MicroBatcher
from facerec_embedder.errors import CorruptImage, ImageTooLarge, UnsupportedImage
from facerec_embedder.images import ImageLimits, decode_image, upright_size
from facerec_embedder.pipeline import FacePipeline
from facerec_embedder.runtime import OnnxRuntimeEmbedder
from facerec_embedder.settings import EmbedderSettings

from .photos import SAMPLES

# Pillow warns of what these tests make on purpose: huge declared sizes (refused by our lower limit) and bad EXIF.
pytestmark = [
    pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning"),
    pytest.mark.filterwarnings("ignore:Corrupt EXIF data"),
    pytest.mark.filterwarnings("ignore:.*(truncated|Truncated|metadata|EXIF|exif).*"),
]

DOCUMENTED = (UnsupportedImage, CorruptImage, ImageTooLarge)
# Small limits keep every generated image cheap, and make "too large" reachable from small headers.
LIMITS = ImageLimits(max_bytes=256 * 1024, max_pixels=1_000_000)
# No single input may take longer than this (a hang, or a decode that ignored the pixel limit).
SLOWEST_S = 2.0
EXAMPLES = settings(
    max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


def _photo(width: int = 40, height: int = 30) -> Image.Image:
    rng = np.random.default_rng(3)
    gradient = np.linspace(0, 255, width * height * 3).reshape(height, width, 3)
    noise = rng.integers(0, 40, (height, width, 3))
    return Image.fromarray(np.clip(gradient + noise, 0, 255).astype(np.uint8))


def _encoded(fmt: str, image: Image.Image | None = None, **options: object) -> bytes:
    out = io.BytesIO()
    image = _photo() if image is None else image
    (image.convert("L") if fmt == "PPM" else image).save(out, format=fmt, **options)
    return out.getvalue()


def _face_seeds() -> dict[str, bytes]:
    """A real face (a sample photo scaled to 240 px wide) in three formats, so mutations reach detection and the
    model too; none where the samples are absent."""
    path = SAMPLES / "obama.jpg"
    if not path.is_file():
        return {}
    with Image.open(path) as photo:
        face = photo.convert("RGB")
        face = face.resize((240, round(face.height * 240 / face.width)))
    return {f"face {fmt.lower()}": _encoded(fmt, face) for fmt in ("JPEG", "PNG", "WEBP")}


SEEDS = {
    "jpeg": _encoded("JPEG", quality=90),
    "progressive jpeg": _encoded("JPEG", progressive=True),
    "png": _encoded("PNG"),
    "webp": _encoded("WEBP"),
    "bmp": _encoded("BMP"),
    "gif": _encoded("GIF"),
    "tiff": _encoded("TIFF"),
    "tiff deflate": _encoded("TIFF", compression="tiff_adobe_deflate"),
    "pgm": _encoded("PPM"),
    "avif": _encoded("AVIF"),
    "heic": _encoded("HEIF"),
}
FACE_SEEDS = _face_seeds()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose valid header (CRC included) declares ``width`` x ``height``, with one row of pixels at most."""
    header = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    pixels = _png_chunk(b"IDAT", zlib.compress(b"\0" * (1 + 3 * min(width, 64))))
    return b"\x89PNG\r\n\x1a\n" + header + pixels + _png_chunk(b"IEND", b"")


def gif_declaring(width: int, height: int) -> bytes:
    """A GIF whose screen and image descriptor declare ``width`` x ``height``."""
    screen = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    image = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00"
    return screen + image + b"\x3b"


def bmp_declaring(width: int, height: int) -> bytes:
    """A BMP whose header declares ``width`` x ``height`` (24-bit), with almost no pixel data."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40 + 16, 0, 0, 14 + 40) + info + b"\0" * 16


def jpeg_declaring(width: int, height: int) -> bytes:
    """The seed JPEG with its frame header (SOF0) rewritten to declare ``width`` x ``height``."""
    data = bytearray(SEEDS["jpeg"])
    at = data.index(b"\xff\xc0")
    data[at + 5 : at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


DECLARING = [png_declaring, gif_declaring, bmp_declaring, jpeg_declaring]


@st.composite
def mutated(draw: st.DrawFn, seeds: dict[str, bytes] = SEEDS) -> bytes:
    """A real encoding of an accepted format, truncated, with bytes flipped, or with a chunk cut or repeated."""
    data = bytearray(seeds[draw(st.sampled_from(sorted(seeds)))])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["truncate", "flip", "cut", "repeat", "overwrite"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "truncate":
            del data[at:]
        elif kind == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            del data[at : at + draw(st.integers(1, 64))]
        elif kind == "repeat":
            data[at:at] = data[at : at + draw(st.integers(1, 256))] * draw(st.integers(1, 8))
        else:
            patch = draw(st.binary(min_size=1, max_size=8))
            data[at : at + len(patch)] = patch
    return bytes(data)


@st.composite
def huge(draw: st.DrawFn) -> bytes:
    """A header declaring dimensions up to 65535 x 65535 (up to 4.3 G pixels), the rest of the file tiny."""
    make = draw(st.sampled_from(DECLARING))
    width, height = draw(st.integers(1, 65535)), draw(st.integers(1, 65535))
    data = make(width, height)
    return data[: draw(st.integers(len(data) // 2, len(data)))]


PHOTO_BYTES = st.one_of(st.binary(max_size=512), mutated(), huge())
PIPELINE_BYTES = st.one_of(PHOTO_BYTES, mutated({**SEEDS, **FACE_SEEDS}))


def assert_decodes_or_refuses(data: bytes) -> None:
    """``decode_image`` gives an RGB image within the limits or a documented error, within ``SLOWEST_S``."""
    started = time.perf_counter()
    try:
        image = decode_image(data, LIMITS)
    except DOCUMENTED:
        pass
    else:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert image.shape[0] * image.shape[1] <= LIMITS.max_pixels
    assert time.perf_counter() - started < SLOWEST_S


def test_every_seed_decodes_to_its_photo() -> None:
    for name, data in SEEDS.items():
        assert decode_image(data, LIMITS).shape == (30, 40, 3), name


@pytest.mark.parametrize("make", DECLARING, ids=lambda make: make.__name__)
def test_a_header_declaring_a_huge_image_is_too_large_before_any_pixel_is_decoded(make) -> None:
    started = time.perf_counter()
    with pytest.raises(ImageTooLarge, match="too large"):
        decode_image(make(65535, 65535), LIMITS)
    assert time.perf_counter() - started < 0.1


@EXAMPLES
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_decode_or_raise_a_documented_error(data: bytes) -> None:
    assert_decodes_or_refuses(data)


@EXAMPLES
@given(mutated())
def test_damaged_photos_of_every_format_decode_or_raise_a_documented_error(data: bytes) -> None:
    assert_decodes_or_refuses(data)


@EXAMPLES
@given(huge())
def test_huge_declared_dimensions_decode_or_raise_a_documented_error(data: bytes) -> None:
    assert_decodes_or_refuses(data)


@EXAMPLES
@given(PHOTO_BYTES)
def test_the_upright_size_of_any_bytes_is_a_size_or_none(data: bytes) -> None:
    size = upright_size(data)

    assert size is None or (len(size) == 2 and all(isinstance(side, int) and side >= 0 for side in size))


@pytest.fixture(scope="module")
def pipeline(onnx_embedder: OnnxRuntimeEmbedder) -> Iterator[FacePipeline]:
    """The service's pipeline: its default detector (YuNet on a bounded copy) and the real model, in-process."""
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="detect") as executor:
        yield FacePipeline(face_detector(EmbedderSettings()), MicroBatcher(onnx_embedder), executor, LIMITS)


def test_a_face_seed_gives_one_face(pipeline: FacePipeline) -> None:
    if not FACE_SEEDS:
        pytest.skip(f"{SAMPLES} is missing: run scripts/setup.sh to fetch the sample photos")
    for name, data in FACE_SEEDS.items():
        assert len(asyncio.run(pipeline.analyze(data)).faces) == 1, name


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(PIPELINE_BYTES)
def test_the_pipeline_on_any_bytes_finds_faces_or_raises_a_documented_error(pipeline: FacePipeline, data) -> None:
    started = time.perf_counter()
    try:
        photo = asyncio.run(pipeline.analyze(data))
    except DOCUMENTED:
        pass
    else:
        assert photo.image_size.width * photo.image_size.height <= LIMITS.max_pixels
        assert all(face.embedding is not None for face in photo.faces)
    assert time.perf_counter() - started < SLOWEST_S
