"""Quality measures of real faces: size, interocular distance, sharpness, frontality."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from facerec_embedder.detection import FaceDetection, FaceDetector, Landmarks, align_chip
from facerec_embedder.images import decode_image
from facerec_embedder.quality import FaceQuality, frontality, measure_quality

from .photos import encoded, sample, sample_image


def only_face(detector: FaceDetector, photo: bytes) -> tuple[FaceDetection, FaceQuality]:
    image = decode_image(photo)
    (face,) = detector.detect(image, upsample=0)
    return face, measure_quality(face.box, face.landmarks, align_chip(image, face.landmarks))


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


def test_blurred_copy_scores_much_lower_sharpness(
    detector: FaceDetector, obama: tuple[FaceDetection, FaceQuality]
) -> None:
    blurred = sample_image("obama.jpg").filter(ImageFilter.GaussianBlur(radius=4))

    _, quality = only_face(detector, encoded(blurred, "PNG"))

    assert quality.sharpness < obama[1].sharpness / 5
    assert quality.sharpness < 50


def test_face_size_is_the_short_side_of_the_box(obama: tuple[FaceDetection, FaceQuality]) -> None:
    face, quality = obama

    assert quality.face_size_px == min(face.box.width, face.box.height)


def test_interocular_distance_is_the_distance_between_eye_centres(
    obama: tuple[FaceDetection, FaceQuality],
) -> None:
    face, quality = obama
    marks = face.landmarks.points

    expected = np.linalg.norm(marks[0:2].mean(axis=0) - marks[2:4].mean(axis=0))
    assert quality.interocular_px == pytest.approx(expected)
    assert 0.3 * quality.face_size_px < quality.interocular_px < 0.6 * quality.face_size_px
