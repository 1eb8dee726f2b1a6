"""Face detection (dlib's HOG detector here; YuNet in test_detectors.py), the bounded detection copy, the five
landmarks and the aligned chip."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import dlib
import numpy as np
import pytest
from PIL import Image

from facerec_embedder.detection import FaceDetection, FaceDetector, align_chip, bounded_copy, landmarks_model_path
from facerec_embedder.errors import ImageTooLarge, InvalidUpsample
from facerec_embedder.images import decode_image

from .photos import rgb_array, sample, sample_image, shared_face_photo

SAMPLE_PHOTOS = ["obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "32bit.png"]


def shrunk(name: str, factor: int) -> np.ndarray:
    """A sample photo scaled down by ``factor`` (its face shrinks with it)."""
    photo = sample_image(name)
    return rgb_array(photo.resize((photo.width // factor, photo.height // factor), Image.Resampling.LANCZOS))


def as_tuples(faces: list[FaceDetection]) -> list[tuple[object, ...]]:
    return [(face.box, face.score, face.landmarks.points.tolist()) for face in faces]


@pytest.mark.parametrize("name", SAMPLE_PHOTOS)
def test_one_face_is_found_in_each_sample_photo(detector: FaceDetector, name: str) -> None:
    faces = detector.detect(decode_image(sample(name)))

    assert len(faces) == 1
    assert faces[0].score > 0
    assert faces[0].box.width > 200


def test_no_face_is_found_in_a_photo_of_dogs(detector: FaceDetector) -> None:
    assert detector.detect(decode_image(shared_face_photo("dlib_faces/dogs.jpg"))) == []


def test_every_face_of_a_group_photo_is_found(detector: FaceDetector) -> None:
    faces = detector.detect(decode_image(shared_face_photo("dlib_faces/bald_guys.jpg")))

    assert len(faces) >= 20  # about 25 faces, some half hidden


def test_without_upsampling_a_45_px_face_is_missed_and_with_one_it_is_found(detector: FaceDetector) -> None:
    image = shrunk("obama.jpg", 6)  # the face is about 45 px wide

    assert detector.detect(image, upsample=0) == []
    faces = detector.detect(image, upsample=1)
    assert len(faces) == 1
    assert 35 < faces[0].box.width < 60


def test_a_75_px_face_is_found_without_upsampling(detector: FaceDetector) -> None:
    faces = detector.detect(shrunk("obama.jpg", 4), upsample=0)

    assert len(faces) == 1


def test_landmarks_follow_dlib_part_order(detector: FaceDetector) -> None:
    (face,) = detector.detect(decode_image(sample("obama.jpg")))
    marks = face.landmarks

    # The subject's left eye appears on the image's right for a face looking at the camera.
    assert marks.left_eye_outer[0] > marks.left_eye_inner[0] > marks.right_eye_inner[0] > marks.right_eye_outer[0]
    eye_line_y = max(marks.left_eye_inner[1], marks.right_eye_inner[1])
    assert marks.nose_base[1] > eye_line_y
    assert marks.right_eye_inner[0] < marks.nose_base[0] < marks.left_eye_inner[0]


def test_landmarks_lie_inside_the_face_box(detector: FaceDetector) -> None:
    (face,) = detector.detect(decode_image(sample("biden.jpg")))
    box = face.box

    xs, ys = face.landmarks.points[:, 0], face.landmarks.points[:, 1]
    assert (xs > box.x).all() and (xs < box.x + box.width).all()
    assert (ys > box.y).all() and (ys < box.y + box.height).all()


def test_chip_is_dlibs_150_px_aligned_face(detector: FaceDetector) -> None:
    image = decode_image(sample("obama2.jpg"))
    (face,) = detector.detect(image)
    predictor = dlib.shape_predictor(str(landmarks_model_path()))
    rect = dlib.rectangle(face.box.x, face.box.y, face.box.x + face.box.width - 1, face.box.y + face.box.height - 1)
    expected = dlib.get_face_chip(image, predictor(image, rect), size=150, padding=0.25)

    chip = align_chip(image, face.landmarks)

    assert chip.shape == (150, 150, 3)
    assert chip.dtype == np.uint8
    np.testing.assert_array_equal(chip, expected)


def test_detection_from_many_threads_gives_the_same_faces_as_one_thread(detector: FaceDetector) -> None:
    images = [shrunk(name, 2) for name in ("obama.jpg", "biden.jpg", "obama2.jpg")]
    expected = [as_tuples(detector.detect(image, upsample=0)) for image in images]

    with ThreadPoolExecutor(max_workers=3) as threads:
        found = list(threads.map(lambda i: as_tuples(detector.detect(images[i % 3], upsample=0)), range(12)))

    assert found == [expected[i % 3] for i in range(12)]


def test_upsampling_outside_the_accepted_range_is_invalid(detector: FaceDetector) -> None:
    image = shrunk("obama.jpg", 4)

    with pytest.raises(InvalidUpsample, match="between 0 and 3"):
        detector.detect(image, upsample=4)
    with pytest.raises(InvalidUpsample):
        detector.detect(image, upsample=-1)


def test_photo_too_large_to_upsample_is_refused() -> None:
    detector = FaceDetector(upsample=1, max_detection_pixels=1_000_000)
    image = shrunk("obama.jpg", 2)  # 455x568 = 258,440 pixels, 4x that when upsampled once

    assert len(detector.detect(image, upsample=0)) == 1
    with pytest.raises(ImageTooLarge, match="upsampled 1 time"):
        detector.detect(image, upsample=1)


def test_a_photo_within_the_bound_is_searched_as_it_is() -> None:
    image = decode_image(sample("obama.jpg"))  # 910x1137

    assert bounded_copy(image, 1137) is image
    assert bounded_copy(image, None) is image


def test_a_larger_photo_is_shrunk_to_the_bound_keeping_its_shape() -> None:
    image = decode_image(sample("obama.jpg"))

    copy = bounded_copy(image, 480)

    assert copy.shape == (480, 384, 3) and copy.dtype == np.uint8  # 910x1137 -> 384x480


def test_boxes_found_in_a_reduced_view_are_given_in_the_photos_pixels(detector: FaceDetector) -> None:
    photo = sample_image("obama.jpg").convert("RGB")
    bounded = FaceDetector(upsample=1, max_side=480)
    view = rgb_array(photo.reduce(2))  # as a JPEG decoded at half scale

    (found,) = bounded.find_boxes(view, photo.size)
    (reference,) = detector.detect(rgb_array(photo))

    assert abs(found.box.x - reference.box.x) <= 12 and abs(found.box.y - reference.box.y) <= 12
    assert abs(found.box.width - reference.box.width) <= 0.1 * reference.box.width


def test_landmarks_are_placed_on_the_full_resolution_photo_whatever_the_bound(detector: FaceDetector) -> None:
    image = decode_image(sample("obama.jpg"))

    (bounded,) = FaceDetector(upsample=1, max_side=480).detect(image)
    (full,) = detector.detect(image)

    # The box is found at 42 % scale, but dlib places the points on the photo itself: within a pixel or two.
    assert np.abs(bounded.landmarks.points - full.landmarks.points).max() <= 3
