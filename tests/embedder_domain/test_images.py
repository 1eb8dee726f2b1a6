"""Decoding of uploaded photos: accepted formats and modes, EXIF orientation, limits, broken input."""

from __future__ import annotations

import io
import struct
import zlib

import grpc
import numpy as np
import pytest
from PIL import Image, ImageOps

from facerec.photo_formats import ACCEPTED_NAMES
from facerec.runtime.errors import status_code_for
from facerec_embedder.detection import FaceDetector
from facerec_embedder.errors import CorruptImage, ImageTooLarge, UnsupportedImage
from facerec_embedder.images import ImageLimits, decode_image

from .photos import SHARED_FACES, encoded, rgb_array, sample, sample_image

EXIF_ORIENTATION = 0x0112


def png_header_claiming(width: int, height: int) -> bytes:
    """A tiny, valid-looking PNG whose header claims ``width`` x ``height`` RGB pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def test_jpeg_decodes_to_an_rgb_array_of_the_photo_size() -> None:
    image = decode_image(sample("obama.jpg"))

    assert image.shape == (1137, 910, 3)
    assert image.dtype == np.uint8
    assert image.flags["C_CONTIGUOUS"]


@pytest.mark.parametrize("fmt", ["PNG", "BMP"])
def test_lossless_formats_decode_to_the_exact_pixels(fmt: str) -> None:
    photo = sample_image("obama.jpg")

    decoded = decode_image(encoded(photo, fmt))

    np.testing.assert_array_equal(decoded, rgb_array(photo))


def test_webp_decodes_to_nearly_the_same_pixels() -> None:
    photo = sample_image("obama.jpg")

    decoded = decode_image(encoded(photo, "WEBP", quality=90))

    assert decoded.shape == rgb_array(photo).shape
    assert np.abs(decoded.astype(int) - rgb_array(photo).astype(int)).mean() < 5


def test_greyscale_photo_becomes_three_equal_channels() -> None:
    grey = sample_image("obama.jpg").convert("L")

    decoded = decode_image(encoded(grey, "PNG"))

    assert decoded.shape == (grey.height, grey.width, 3)
    for channel in range(3):
        np.testing.assert_array_equal(decoded[:, :, channel], np.asarray(grey))


def test_sixteen_bit_greyscale_is_scaled_to_eight_bits_not_clipped() -> None:
    grey = np.asarray(sample_image("obama.jpg").convert("L"))
    sixteen_bit = Image.fromarray(grey.astype(np.uint16) * 257)
    assert sixteen_bit.mode == "I;16"

    decoded = decode_image(encoded(sixteen_bit, "PNG"))

    np.testing.assert_array_equal(decoded[:, :, 0], grey)


def test_rgba_photo_loses_its_alpha_channel() -> None:
    rgb = rgb_array(sample_image("obama.jpg"))
    alpha = np.linspace(0, 255, rgb.shape[1], dtype=np.uint8)[np.newaxis, :].repeat(rgb.shape[0], axis=0)
    rgba = Image.fromarray(np.dstack([rgb, alpha]), mode="RGBA")

    decoded = decode_image(encoded(rgba, "PNG"))

    np.testing.assert_array_equal(decoded, rgb)


def test_palette_photo_with_transparency_decodes_to_rgb() -> None:
    palette = sample_image("obama.jpg").convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    palette.info["transparency"] = 0

    decoded = decode_image(encoded(palette, "PNG", transparency=0))

    np.testing.assert_array_equal(decoded, rgb_array(palette))


def test_32_bit_rgba_sample_decodes_to_rgb() -> None:
    decoded = decode_image(sample("32bit.png"))

    assert decoded.shape == (1200, 626, 3)
    np.testing.assert_array_equal(decoded, rgb_array(sample_image("32bit.png")))


def test_exif_orientation_is_applied(detector: FaceDetector) -> None:
    upright = sample_image("obama.jpg")
    # Stored turned a quarter left, tagged "rotate 90 degrees clockwise to display" (orientation 6).
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    photo = encoded(stored, "JPEG", quality=95, exif=exif.tobytes())

    decoded = decode_image(photo)

    assert decoded.shape == (upright.height, upright.width, 3)
    assert np.abs(decoded.astype(int) - rgb_array(upright).astype(int)).mean() < 3
    faces = detector.detect(decoded, upsample=0)
    assert len(faces) == 1
    assert faces[0].box.height > 200


def test_photo_over_the_pixel_limit_is_refused_from_its_header() -> None:
    bomb = png_header_claiming(8000, 8000)  # 64 megapixels in 120 bytes

    with pytest.raises(ImageTooLarge, match=r"8000x8000 = 64,000,000 pixels; at most 40,000,000"):
        decode_image(bomb)


def test_decompression_bomb_over_pillows_own_limit_is_too_large() -> None:
    bomb = png_header_claiming(100_000, 100_000)

    with pytest.raises(ImageTooLarge) as raised:
        decode_image(bomb)

    assert status_code_for(raised.value) == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_configured_pixel_limit_applies() -> None:
    with pytest.raises(ImageTooLarge, match=r"910x1137"):
        decode_image(sample("obama.jpg"), ImageLimits(max_pixels=1_000_000))


def test_photo_over_the_byte_limit_is_refused() -> None:
    photo = sample("obama.jpg")

    with pytest.raises(ImageTooLarge, match=rf"{len(photo):,} bytes; at most 1,000"):
        decode_image(photo, ImageLimits(max_bytes=1000))


def test_garbage_bytes_are_not_a_supported_image() -> None:
    with pytest.raises(UnsupportedImage, match=ACCEPTED_NAMES) as raised:
        decode_image(b"this is not an image at all" * 10)

    assert status_code_for(raised.value) == grpc.StatusCode.INVALID_ARGUMENT


def test_empty_bytes_are_not_a_supported_image() -> None:
    with pytest.raises(UnsupportedImage, match="empty"):
        decode_image(b"")


def test_truncated_jpeg_is_a_corrupt_image() -> None:
    photo = sample("obama.jpg")

    with pytest.raises(CorruptImage, match="truncated") as raised:
        decode_image(photo[: len(photo) // 2])

    assert status_code_for(raised.value) == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(("fmt", "options"), [("TIFF", {}), ("TIFF", {"compression": "tiff_lzw"}), ("PPM", {})])
def test_lossless_camera_and_dataset_formats_decode_to_the_exact_pixels(fmt: str, options: dict[str, object]) -> None:
    photo = sample_image("obama.jpg")

    decoded = decode_image(encoded(photo, fmt, **options))

    np.testing.assert_array_equal(decoded, rgb_array(photo))


def test_pgm_greyscale_decodes_to_three_equal_channels() -> None:
    grey = sample_image("obama.jpg").convert("L")
    pgm = encoded(grey, "PPM")
    assert pgm.startswith(b"P5")

    decoded = decode_image(pgm)

    for channel in range(3):
        np.testing.assert_array_equal(decoded[:, :, channel], np.asarray(grey))


@pytest.mark.parametrize("maxval", [65535, 1023])
def test_wide_pgm_is_scaled_by_its_maxval(maxval: int) -> None:
    grey = np.asarray(sample_image("obama.jpg").convert("L"))
    levels = np.rint(grey.astype(np.float64) * maxval / 255).astype(">u2")
    pgm = b"P5 %d %d %d\n" % (grey.shape[1], grey.shape[0], maxval) + levels.tobytes()

    decoded = decode_image(pgm)

    assert np.abs(decoded[:, :, 0].astype(int) - grey.astype(int)).max() <= 1


def test_sixteen_bit_png_holding_twelve_significant_bits_is_not_black() -> None:
    grey = np.asarray(sample_image("obama.jpg").convert("L"))
    twelve_bit = Image.fromarray((grey.astype(np.uint32) * 4095 // 255).astype(np.uint16))
    assert twelve_bit.mode == "I;16"

    decoded = decode_image(encoded(twelve_bit, "PNG"))

    assert decoded.mean() > 0.9 * grey.mean()
    assert np.abs(decoded[:, :, 0].astype(int) - grey.astype(int)).max() <= 1


def test_sixteen_bit_tiff_is_scaled_to_eight_bits() -> None:
    grey = np.asarray(sample_image("obama.jpg").convert("L"))
    sixteen_bit = Image.fromarray(grey.astype(np.uint16) * 257)

    decoded = decode_image(encoded(sixteen_bit, "TIFF"))

    np.testing.assert_array_equal(decoded[:, :, 0], grey)


def test_gif_palette_photo_decodes_to_its_colours() -> None:
    photo = sample_image("obama.jpg")
    gif = encoded(photo, "GIF")
    palette = Image.open(io.BytesIO(gif))
    assert palette.mode == "P"

    decoded = decode_image(gif)

    np.testing.assert_array_equal(decoded, rgb_array(palette))
    assert np.abs(decoded.astype(int) - rgb_array(photo).astype(int)).mean() < 12


@pytest.mark.parametrize("fmt", ["GIF", "TIFF", "MPO"])
def test_multi_frame_files_give_their_first_frame(fmt: str) -> None:
    first = sample_image("obama.jpg")
    second = sample_image("biden.jpg").resize(first.size)
    photo = encoded(first, fmt, save_all=True, append_images=[second])
    assert getattr(Image.open(io.BytesIO(photo)), "n_frames", 1) == 2

    decoded = decode_image(photo)

    assert np.abs(decoded.astype(int) - rgb_array(first).astype(int)).mean() < 12


@pytest.mark.parametrize("fmt", ["AVIF", "HEIF"])
def test_modern_phone_formats_decode_to_nearly_the_same_pixels(fmt: str) -> None:
    photo = sample_image("obama.jpg")

    decoded = decode_image(encoded(photo, fmt, quality=90))

    assert decoded.shape == rgb_array(photo).shape
    assert np.abs(decoded.astype(int) - rgb_array(photo).astype(int)).mean() < 5


def test_heic_exif_orientation_is_applied() -> None:
    upright = sample_image("obama.jpg")
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    photo = encoded(upright.transpose(Image.Transpose.ROTATE_90), "HEIF", quality=90, exif=exif.tobytes())

    decoded = decode_image(photo)

    assert decoded.shape == (upright.height, upright.width, 3)
    assert np.abs(decoded.astype(int) - rgb_array(upright).astype(int)).mean() < 5


def test_bilevel_pbm_decodes_to_black_and_white() -> None:
    bilevel = sample_image("obama.jpg").convert("1")

    decoded = decode_image(encoded(bilevel, "PPM"))

    assert set(np.unique(decoded)) <= {0, 255}
    np.testing.assert_array_equal(decoded, rgb_array(bilevel))


def test_yale_faces_gif_without_extension_decodes() -> None:
    path = SHARED_FACES / "yalefaces" / "subject01" / "subject01.happy"
    if not path.is_file():
        pytest.skip(f"{path} is missing: the shared face photos are not on this machine")

    decoded = decode_image(path.read_bytes())

    assert decoded.shape == (243, 320, 3)
    assert decoded.std() > 20  # a photo, not a blank frame


@pytest.mark.parametrize("fmt", ["PCX", "TGA", "ICO", "SGI"])
def test_formats_outside_the_accepted_list_are_refused_naming_the_accepted_ones(fmt: str) -> None:
    photo = encoded(sample_image("obama.jpg").resize((128, 128)), fmt)
    Image.open(io.BytesIO(photo)).verify()  # a valid file of that format

    with pytest.raises(UnsupportedImage, match="HEIC/HEIF") as raised:
        decode_image(photo)

    assert status_code_for(raised.value) == grpc.StatusCode.INVALID_ARGUMENT


def gif_header_claiming(width: int, height: int) -> bytes:
    """A GIF logical screen descriptor claiming ``width`` x ``height`` pixels, with one tiny frame."""
    screen = struct.pack("<HHBBB", width, height, 0, 0, 0)
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00\x3b"
    return b"GIF89a" + screen + frame


def tiff_header_claiming(width: int, height: int) -> bytes:
    """A little-endian TIFF whose first directory claims ``width`` x ``height`` greyscale pixels."""
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1)]
    entries += [(273, 4, 1, 8), (278, 4, 1, height), (279, 4, 1, width * height)]
    directory = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries)
    return b"II*\x00" + struct.pack("<I", 8) + directory + b"\x00\x00\x00\x00"


@pytest.mark.parametrize("claiming", [gif_header_claiming, tiff_header_claiming])
def test_every_format_is_refused_from_its_header_over_the_pixel_limit(claiming) -> None:
    bomb = claiming(7000, 7000)  # over our limit (40 MP), under Pillow's own guard (twice its limit)
    assert len(bomb) < 200

    with pytest.raises(ImageTooLarge, match=r"7000x7000 = 49,000,000 pixels"):
        decode_image(bomb)


def pillow_decoded(photo: bytes) -> np.ndarray:
    """The photo as Pillow alone decodes it (EXIF orientation applied), the reference of the fast JPEG path."""
    with Image.open(io.BytesIO(photo)) as image:
        return rgb_array(ImageOps.exif_transpose(image))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_pixels_and_orientation_are_exactly_pillows(orientation: int) -> None:
    stored = sample_image("obama.jpg").resize((301, 377))
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    photo = encoded(stored, "JPEG", quality=92, exif=exif.tobytes())

    np.testing.assert_array_equal(decode_image(photo), pillow_decoded(photo))


def test_greyscale_jpeg_pixels_are_exactly_pillows() -> None:
    photo = encoded(sample_image("obama.jpg").convert("L"), "JPEG", quality=90)

    np.testing.assert_array_equal(decode_image(photo), pillow_decoded(photo))


def test_cmyk_jpeg_decodes_to_rgb() -> None:
    photo = encoded(sample_image("obama.jpg").convert("CMYK"), "JPEG", quality=95)

    decoded = decode_image(photo)

    np.testing.assert_array_equal(decoded, pillow_decoded(photo))
