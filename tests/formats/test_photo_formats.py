"""The one list of accepted photo formats: every format is recognised by its content, and what is recognised
is what the embedder decodes."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from facerec import photo_formats
from facerec.photo_formats import ACCEPTED, SNIFF_BYTES, PhotoFormat, sniff
from facerec_embedder.images import decode_image
from tests.paths import REPO_ROOT, SHARED_FACES_DIR

SAMPLE = REPO_ROOT / ".cache" / "samples" / "obama.jpg"
YALE = SHARED_FACES_DIR / "yalefaces"

# Pillow format name and save options -> the accepted format a file written so must be recognised as.
WRITTEN_AS = [
    ("JPEG", {}, photo_formats.JPEG),
    ("MPO", {"save_all": True}, photo_formats.JPEG),
    ("PNG", {}, photo_formats.PNG),
    ("WEBP", {}, photo_formats.WEBP),
    ("BMP", {}, photo_formats.BMP),
    ("GIF", {}, photo_formats.GIF),
    ("TIFF", {}, photo_formats.TIFF),
    ("TIFF", {"tiffinfo": {}, "big_endian": True}, photo_formats.TIFF),
    ("PPM", {}, photo_formats.NETPBM),
    ("AVIF", {}, photo_formats.AVIF),
    ("HEIF", {}, photo_formats.HEIF),
]


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    if not SAMPLE.is_file():
        pytest.skip(f"{SAMPLE} is missing: run scripts/setup.sh to fetch the sample photos")
    return Image.open(SAMPLE).convert("RGB").resize((160, 200))


def written(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("fmt", "options", "expected"), WRITTEN_AS, ids=[f"{w[0]}-{i}" for i, w in enumerate(WRITTEN_AS)]
)
def test_each_accepted_format_is_recognised_from_its_first_bytes(
    photo: Image.Image, fmt: str, options: dict[str, object], expected: PhotoFormat
) -> None:
    data = written(photo, fmt, **options)

    assert sniff(data[:SNIFF_BYTES]) == expected


@pytest.mark.parametrize(
    ("fmt", "options", "expected"), WRITTEN_AS, ids=[f"{w[0]}-{i}" for i, w in enumerate(WRITTEN_AS)]
)
def test_what_is_recognised_is_what_the_embedder_decodes(
    photo: Image.Image, fmt: str, options: dict[str, object], expected: PhotoFormat
) -> None:
    data = written(photo, fmt, **options)

    assert decode_image(data).shape == (200, 160, 3)


def test_pgm_and_pbm_are_recognised_as_netpbm(photo: Image.Image) -> None:
    assert sniff(written(photo.convert("L"), "PPM")) == photo_formats.NETPBM
    assert sniff(written(photo.convert("1"), "PPM")) == photo_formats.NETPBM


@pytest.mark.parametrize("fmt", ["PCX", "TGA", "ICO", "SGI", "PDF"])
def test_other_formats_are_not_recognised(photo: Image.Image, fmt: str) -> None:
    assert sniff(written(photo.resize((64, 64)), fmt)[:SNIFF_BYTES]) is None


@pytest.mark.parametrize(
    "head", [b"", b"hello, world", b"P7 not netpbm", b"\x00\x00\x00\x18ftypmp42isom", b"RIFF\x00\x00\x00\x00WAVE"]
)
def test_text_video_and_sound_are_not_photos(head: bytes) -> None:
    assert sniff(head) is None


def test_every_accepted_format_names_a_decoder_pillow_has() -> None:
    Image.init()
    for accepted in ACCEPTED:
        for name in accepted.pillow_formats:
            assert name in Image.OPEN, f"{accepted.name}: Pillow has no decoder {name!r}"


def test_yale_faces_without_extensions_are_recognised_as_gif() -> None:
    if not YALE.is_dir():
        pytest.skip(f"{YALE} is missing: the shared face photos are not on this machine")
    files = [p for p in Path(YALE).rglob("*") if p.is_file() and not p.name.startswith(".")]
    heads = {p.name: sniff(p.read_bytes()[:SNIFF_BYTES]) for p in files}

    assert len(files) >= 164
    assert set(heads.values()) == {photo_formats.GIF}
