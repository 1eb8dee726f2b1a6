"""Image inputs of the SDK: paths and bytes sent as they are, numpy arrays encoded as lossless PNG."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facerec.sdk import ImageInputError, Photo
from facerec.sdk.images import image_bytes, is_single_image, photo_name
from facerec.sdk.messages import enroll_request, photos_list, verify_request


def decode(data: bytes) -> tuple[str, np.ndarray]:
    with Image.open(io.BytesIO(data)) as image:
        return image.format or "", np.asarray(image)


def test_a_path_is_sent_as_the_file_bytes(samples_dir: Path):
    path = samples_dir / "obama.jpg"
    assert image_bytes(path) == path.read_bytes()
    assert image_bytes(str(path)) == path.read_bytes()


def test_bytes_are_sent_unchanged(samples_dir: Path):
    data = (samples_dir / "biden.jpg").read_bytes()
    assert image_bytes(data) is data
    assert image_bytes(bytearray(data)) == data
    assert image_bytes(memoryview(data)) == data


def test_an_rgb_array_becomes_a_png_with_the_same_pixels(samples_dir: Path):
    with Image.open(samples_dir / "obama.jpg") as image:
        pixels = np.asarray(image.convert("RGB"))
    fmt, decoded = decode(image_bytes(pixels))
    assert fmt == "PNG"
    np.testing.assert_array_equal(decoded, pixels)


def test_a_grey_array_becomes_a_grey_png():
    pixels = np.arange(48 * 64, dtype=np.uint32).reshape(48, 64).astype(np.uint8)
    fmt, decoded = decode(image_bytes(pixels))
    assert fmt == "PNG" and decoded.ndim == 2
    np.testing.assert_array_equal(decoded, pixels)


def test_a_non_contiguous_array_is_encoded_correctly():
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)[:, ::2]
    np.testing.assert_array_equal(decode(image_bytes(pixels))[1], pixels)


@pytest.mark.parametrize(
    "pixels",
    [
        np.zeros((8, 8, 3), np.float32),
        np.zeros((8, 8, 4), np.uint8),
        np.zeros((0, 8, 3), np.uint8),
        np.zeros(8, np.uint8),
    ],
    ids=["float", "rgba", "empty", "one-dimensional"],
)
def test_arrays_that_are_not_uint8_rgb_or_grey_are_refused(pixels: np.ndarray):
    with pytest.raises(ImageInputError):
        image_bytes(pixels)


def test_other_types_are_refused():
    with pytest.raises(ImageInputError):
        image_bytes(12345)  # type: ignore[arg-type]


def test_a_missing_file_raises_file_not_found(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        image_bytes(tmp_path / "absent.jpg")


def test_photo_names_come_from_the_label_or_the_file_name(samples_dir: Path):
    assert photo_name(samples_dir / "obama2.jpg") == "obama2.jpg"
    assert photo_name(Photo(samples_dir / "obama2.jpg", name="id-card")) == "id-card"
    assert photo_name(b"\xff\xd8") == ""


def test_one_image_is_a_list_of_one_but_a_list_is_kept(samples_dir: Path):
    path = str(samples_dir / "obama.jpg")
    assert photos_list(path) == [path]
    assert is_single_image(np.zeros((4, 4), np.uint8))
    assert photos_list([path, path]) == [path, path]


def test_enroll_request_reads_every_photo_with_its_name(samples_dir: Path):
    request = enroll_request(
        "obama",
        [samples_dir / "obama.jpg", Photo((samples_dir / "obama2.jpg").read_bytes(), name="second")],
        collection="staff",
        display_name="Barack Obama",
        metadata={"role": "president"},
        face_selection="largest",
    )
    assert [p.name for p in request.photos] == ["obama.jpg", "second"]
    assert request.photos[0].image == (samples_dir / "obama.jpg").read_bytes()
    assert request.display_name == "Barack Obama" and request.HasField("display_name")


def test_enroll_request_without_display_name_leaves_it_unset(samples_dir: Path):
    assert not enroll_request("obama", samples_dir / "obama.jpg").HasField("display_name")


def test_verify_needs_exactly_one_reference(samples_dir: Path):
    probe = samples_dir / "obama.jpg"
    with pytest.raises(ValueError, match="exactly one reference"):
        verify_request(probe)
    with pytest.raises(ValueError, match="exactly one reference"):
        verify_request(probe, reference_image=probe, person="obama")


def test_verify_against_a_person_id_uses_the_default_collection(samples_dir: Path):
    request = verify_request(samples_dir / "obama.jpg", person="obama")
    assert (request.person.collection, request.person.person_id) == ("default", "obama")
    request = verify_request(samples_dir / "obama.jpg", person=("staff", "obama"), threshold=0.5)
    assert (request.person.collection, request.threshold) == ("staff", 0.5)
