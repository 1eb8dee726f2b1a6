"""The numpy port of dlib's face alignment gives the very chips dlib gives, on real faces."""

from __future__ import annotations

import math

import dlib
import numpy as np
import pytest

from facerec_embedder.align import AlignmentError, face_chip, face_chip_details, pyramid_down
from facerec_embedder.model import CHIP_PADDING, CHIP_SIZE
from tests.embedder.real_faces import SAMPLE_PHOTOS, SHARED_FACES_SUBSET, DetectedFace, faces_in, load_rgb


def assert_chips_identical(faces: list[DetectedFace]) -> None:
    assert faces, "no face was detected: the test would prove nothing"
    for face in faces:
        ours = face_chip(face.image, face.landmarks)
        assert ours.dtype == np.uint8
        assert ours.shape == (CHIP_SIZE, CHIP_SIZE, 3)
        differing = int(np.count_nonzero(ours != face.dlib_chip))
        assert differing == 0, f"{face.source}: {differing} values differ from dlib.get_face_chip"


def dlib_shape(landmarks: np.ndarray) -> dlib.full_object_detection:
    """A 5-point dlib shape from our landmark array (get_face_chip reads only the parts)."""
    parts = dlib.points([dlib.point(int(x), int(y)) for x, y in landmarks])
    box = dlib.rectangle(
        int(landmarks[:, 0].min()), int(landmarks[:, 1].min()), int(landmarks[:, 0].max()), int(landmarks[:, 1].max())
    )
    return dlib.full_object_detection(box, parts)


def test_chips_are_bit_identical_to_dlib_on_the_sample_photos(samples_dir):
    assert_chips_identical(faces_in(samples_dir, SAMPLE_PHOTOS))


def test_chips_are_bit_identical_to_dlib_on_labelled_photos(shared_faces_dir):
    faces = faces_in(shared_faces_dir, SHARED_FACES_SUBSET)
    widths = [face_chip_details(face.landmarks).rect.width() for face in faces]
    # Faces much larger than the chip go through dlib's image pyramid; smaller ones do not: cover both.
    assert max(widths) > 4 * CHIP_SIZE and min(widths) < 2 * CHIP_SIZE
    assert_chips_identical(faces)


def test_chip_geometry_matches_dlibs_chip_details(samples_dir):
    for face in faces_in(samples_dir, SAMPLE_PHOTOS):
        theirs = dlib.get_face_chip_details(face.shape, CHIP_SIZE, CHIP_PADDING)
        ours = face_chip_details(face.landmarks)
        assert ours.angle == pytest.approx(theirs.angle, abs=1e-12)
        for mine, reference in zip(
            (ours.rect.left, ours.rect.top, ours.rect.right, ours.rect.bottom),
            (theirs.rect.left(), theirs.rect.top(), theirs.rect.right(), theirs.rect.bottom()),
            strict=True,
        ):
            assert mine == pytest.approx(reference, abs=1e-9)
        assert (ours.rows, ours.cols) == (theirs.rows, theirs.cols)


def test_tilted_faces_give_dlibs_chips(samples_dir):
    image = load_rgb(samples_dir / "obama.jpg")
    face = faces_in(samples_dir, ("obama.jpg",))[0]
    centre = face.landmarks.mean(axis=0)
    for degrees in (-35, -10, 20, 45):
        angle = math.radians(degrees)
        rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        landmarks = np.round((face.landmarks - centre) @ rotation.T + centre)
        expected = dlib.get_face_chip(image, dlib_shape(landmarks), size=CHIP_SIZE, padding=CHIP_PADDING)
        assert np.array_equal(face_chip(image, landmarks), expected), f"rotated by {degrees} degrees"


def test_a_face_cut_by_the_image_border_is_filled_with_black_like_dlib(samples_dir):
    face = faces_in(samples_dir, ("obama.jpg",))[0]
    left_edge = int(face.landmarks[:, 0].min()) + 10  # crop through the face: part of the chip is outside
    image = np.ascontiguousarray(face.image[:, left_edge:])
    landmarks = face.landmarks - [left_edge, 0]
    chip = face_chip(image, landmarks)
    expected = dlib.get_face_chip(image, dlib_shape(landmarks), size=CHIP_SIZE, padding=CHIP_PADDING)
    assert np.array_equal(chip, expected)
    assert (chip == 0).all(axis=2).any(), "the part outside the image should be black"


def test_pyramid_down_halves_the_image_as_dlib_sizes_it():
    image = np.random.default_rng(7).integers(0, 256, size=(101, 64, 3), dtype=np.uint8)
    assert pyramid_down(image).shape == ((101 - 3) // 2, (64 - 3) // 2, 3)


def test_pyramid_down_keeps_a_flat_image_flat():
    image = np.full((40, 30, 3), 200, dtype=np.uint8)
    down = pyramid_down(image)
    # [1 4 6 4 1] sums to 16 each way, so 256 * value / 256: no drift from the integer arithmetic.
    assert (down == 200).all()


def test_landmarks_of_the_wrong_shape_are_refused():
    image = np.zeros((200, 200, 3), dtype=np.uint8)
    with pytest.raises(AlignmentError, match="5 landmarks"):
        face_chip(image, np.zeros((68, 2)))


def test_images_that_are_not_rgb_uint8_are_refused():
    landmarks = np.array([[120, 80], [100, 82], [50, 80], [70, 82], [85, 120]], dtype=float)
    with pytest.raises(AlignmentError, match="RGB uint8"):
        face_chip(np.zeros((200, 200), dtype=np.uint8), landmarks)
    with pytest.raises(AlignmentError, match="RGB uint8"):
        face_chip(np.zeros((200, 200, 3), dtype=np.float32), landmarks)


def test_landmarks_all_at_one_point_are_refused():
    image = np.zeros((200, 200, 3), dtype=np.uint8)
    with pytest.raises(AlignmentError, match="degenerate"):
        face_chip(image, np.full((5, 2), 100.0))


def test_a_face_entirely_outside_the_image_gives_a_black_chip():
    image = np.full((100, 100, 3), 255, dtype=np.uint8)
    landmarks = np.array([[620, 480], [600, 482], [550, 480], [570, 482], [585, 520]], dtype=float)
    assert not face_chip(image, landmarks).any()


def test_landmarks_that_are_not_numbers_are_refused():
    landmarks = np.array([[120, 80], [100, 82], [50, 80], [70, 82], [85, np.nan]], dtype=float)
    with pytest.raises(AlignmentError, match="finite"):
        face_chip(np.zeros((200, 200, 3), dtype=np.uint8), landmarks)
