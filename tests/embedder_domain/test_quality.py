"""Quality measures of real faces: size, interocular distance, sharpness, frontality.

The same photo at several resolutions is the photo downscaled with an area filter (what a camera with fewer
pixels or a web copy gives), re-encoded as JPEG like a real copy would be.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from facerec.v1 import face_pb2
from facerec_embedder.detection import FaceDetection, FaceDetector, Landmarks, align_chip
from facerec_embedder.images import decode_image
from facerec_embedder.quality import FaceQuality, face_size, frontality, measure_quality
from facerec_gateway.domain import RejectionReason
from facerec_gateway.enrollment import QualityPolicy
from facerec_gateway.settings import GatewaySettings

from .photos import encoded, sample, sample_image


def only_face(detector: FaceDetector, photo: bytes, upsample: int = 0) -> tuple[FaceDetection, FaceQuality]:
    image = decode_image(photo)
    (face,) = detector.detect(image, upsample=upsample)
    return face, measure_quality(face.box, face.landmarks, align_chip(image, face.landmarks))


def at_resolution(detector: FaceDetector, name: str, divisor: int, blur: float = 0.0) -> FaceQuality:
    """The quality of the face of sample ``name`` downscaled ``divisor`` times, blurred by ``blur`` px after."""
    image = sample_image(name).convert("RGB")
    if divisor > 1:
        image = image.reduce(divisor)
    if blur:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    return only_face(detector, encoded(image, "JPEG", quality=90), upsample=min(3, 1 + divisor // 6))[1]


def rotated(landmarks: Landmarks, degrees: float) -> Landmarks:
    """The landmarks turned about their centroid, as for a head tilted by ``degrees``."""
    angle = np.radians(degrees)
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = landmarks.points.mean(axis=0)
    return Landmarks(points=(landmarks.points - centre) @ turn.T + centre)


@pytest.fixture(scope="module")
def obama(detector: FaceDetector) -> tuple[FaceDetection, FaceQuality]:
    return only_face(detector, sample("obama.jpg"))


def test_frontal_portrait_scores_high_frontality(obama: tuple[FaceDetection, FaceQuality]) -> None:
    _, quality = obama

    assert quality.frontality > 0.9


@pytest.mark.parametrize("name", ["obama2.jpg", "obama3.jpg", "biden.jpg"])
def test_sample_faces_looking_at_the_camera_score_well_above_half(detector: FaceDetector, name: str) -> None:
    _, quality = only_face(detector, sample(name))

    assert quality.frontality > 0.65


def test_head_turned_aside_scores_lower_than_a_frontal_one(
    detector: FaceDetector, obama: tuple[FaceDetection, FaceQuality]
) -> None:
    _, turned = only_face(detector, sample("obama2.jpg"))  # looks about 20 degrees to the side

    assert turned.frontality < obama[1].frontality - 0.1


def test_nose_in_line_with_an_eye_scores_zero_frontality(obama: tuple[FaceDetection, FaceQuality]) -> None:
    landmarks = obama[0].landmarks
    eye_midpoint = (landmarks.left_eye_center + landmarks.right_eye_center) / 2
    eye_direction = landmarks.left_eye_center - landmarks.right_eye_center
    eye_direction /= np.linalg.norm(eye_direction)
    below_eyes = landmarks.points[4] - eye_midpoint
    below_eyes -= np.dot(below_eyes, eye_direction) * eye_direction
    points = landmarks.points.copy()
    points[4] = landmarks.left_eye_center + below_eyes  # under the left eye centre, as in a half profile

    assert frontality(Landmarks(points=points)) == pytest.approx(0.0, abs=1e-9)


def test_tilted_head_scores_lower_the_more_it_tilts(obama: tuple[FaceDetection, FaceQuality]) -> None:
    landmarks = obama[0].landmarks

    scores = [frontality(rotated(landmarks, degrees)) for degrees in (0, 20, 45, 90)]

    assert scores[0] > scores[1] > scores[2] > scores[3]
    assert scores[3] < 0.05  # the portrait's own eye line is not exactly level


def test_mirrored_face_keeps_its_frontality(detector: FaceDetector, obama: tuple[FaceDetection, FaceQuality]) -> None:
    mirrored = sample_image("obama.jpg").transpose(Image.Transpose.FLIP_LEFT_RIGHT)

    _, quality = only_face(detector, encoded(mirrored, "PNG"))

    assert quality.frontality == pytest.approx(obama[1].frontality, abs=0.05)


@pytest.mark.parametrize("name", ["obama.jpg", "biden.jpg"])
def test_the_same_photo_at_2x_and_4x_the_resolution_has_about_the_same_sharpness(
    detector: FaceDetector, name: str
) -> None:
    small, twice, four_times = (at_resolution(detector, name, divisor) for divisor in (8, 4, 2))

    assert small.face_size_px < 40 and four_times.face_size_px > 90
    scores = [small.sharpness, twice.sharpness, four_times.sharpness]
    assert max(scores) / min(scores) < 1.4


def test_a_face_larger_than_the_chip_is_measured_on_the_chip_and_stays_comparable(detector: FaceDetector) -> None:
    full, quarter = at_resolution(detector, "biden.jpg", 1), at_resolution(detector, "biden.jpg", 4)

    assert full.face_size_px > 200 and quarter.face_size_px < 60
    assert full.sharpness == pytest.approx(quarter.sharpness, rel=0.4)


@pytest.mark.parametrize("divisor", [4, 2])
def test_blurred_copy_scores_clearly_lower_sharpness_at_any_resolution(detector: FaceDetector, divisor: int) -> None:
    sharp = at_resolution(detector, "obama.jpg", divisor)
    blurred = at_resolution(detector, "obama.jpg", divisor, blur=2)

    assert blurred.face_size_px == pytest.approx(sharp.face_size_px, rel=0.05)
    assert blurred.sharpness < sharp.sharpness / 3


def test_small_sharp_face_is_rejected_as_too_small_not_as_blurry(detector: FaceDetector) -> None:
    defaults = GatewaySettings()
    policy = QualityPolicy(defaults.min_face_size_px, defaults.min_sharpness, defaults.min_frontality)
    quality = at_resolution(detector, "obama.jpg", 12)  # a 75x94 photo: the face square is about 17 px
    face = face_pb2.Face(
        quality=face_pb2.FaceQuality(
            face_size_px=quality.face_size_px, sharpness=quality.sharpness, frontality=quality.frontality
        )
    )

    assert [rejection.reason for rejection in policy.rejections(face)] == [RejectionReason.FACE_TOO_SMALL]


def test_flat_chip_has_zero_sharpness(obama: tuple[FaceDetection, FaceQuality]) -> None:
    face, _ = obama
    grey = np.full((150, 150, 3), 128, dtype=np.uint8)

    assert measure_quality(face.box, face.landmarks, grey).sharpness == 0.0


def test_face_size_is_the_chips_face_square_in_photo_pixels_and_scales_with_the_landmarks(
    obama: tuple[FaceDetection, FaceQuality],
) -> None:
    face, quality = obama
    twice = Landmarks(points=face.landmarks.points * 2)

    assert face_size(twice) == pytest.approx(2 * quality.face_size_px)
    # dlib's mean face has its eye centres 0.5255 face-square sides apart.
    assert quality.face_size_px == pytest.approx(quality.interocular_px / 0.5255, rel=0.1)


def test_face_size_does_not_depend_on_the_detection_box(obama: tuple[FaceDetection, FaceQuality]) -> None:
    face, quality = obama
    image = decode_image(sample("obama.jpg"))
    chip = align_chip(image, face.landmarks)
    wider = type(face.box)(x=face.box.x - 40, y=face.box.y - 40, width=face.box.width + 80, height=face.box.height)

    assert measure_quality(wider, face.landmarks, chip) == quality


def test_interocular_distance_is_the_distance_between_eye_centres(
    obama: tuple[FaceDetection, FaceQuality],
) -> None:
    face, quality = obama
    marks = face.landmarks.points

    expected = np.linalg.norm(marks[0:2].mean(axis=0) - marks[2:4].mean(axis=0))
    assert quality.interocular_px == pytest.approx(expected)
    assert 0.4 * quality.face_size_px < quality.interocular_px < 0.65 * quality.face_size_px
