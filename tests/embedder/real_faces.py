"""Real faces for the model and alignment tests, found with dlib's own pipeline (cached per process).

dlib is the reference here: its HOG detector and 5-point landmarks locate the faces, and its
``get_face_chip`` / ``compute_face_descriptor`` give the values our port and our ONNX model must reproduce.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import dlib
import numpy as np
from PIL import Image

from facerec_embedder.model import CHIP_PADDING, CHIP_SIZE
from facerec_embedder.model.files import LANDMARKS_5_MODEL, RECOGNITION_MODEL, model_file

# A bounded subset of $FACEREC_FACES_DIR: several people, big and small faces (so the pyramid levels of
# dlib's chip extraction are all exercised), group photos with many faces.
SHARED_FACES_SUBSET = (
    "deepface/img1.jpg",
    "deepface/img2.jpg",
    "deepface/img3.jpg",
    "deepface/img5.jpg",
    "deepface/img7.jpg",
    "deepface/img9.jpg",
    "deepface/img11.jpg",
    "deepface/img17.jpg",
    "deepface/img20.jpg",
    "deepface/img30.jpg",
    "deepface/img40.jpg",
    "deepface/img50.jpg",
    "deepface/couple.jpg",
    "deepface/selfie-many-people.jpg",
    "face_recognition_knn/test/obama_and_biden.jpg",
    "dlib_faces/Tom_Cruise_avp_2014_4.jpg",
)
SAMPLE_PHOTOS = ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "obama_partial_face.jpg")


@dataclass(frozen=True)
class DetectedFace:
    """One face of a photo as dlib sees it."""

    source: str
    image: np.ndarray  # the whole photo, RGB uint8
    shape: dlib.full_object_detection
    landmarks: np.ndarray  # [5, 2] (x, y)
    dlib_chip: np.ndarray  # dlib.get_face_chip(image, shape, 150, 0.25)


@functools.cache
def _detector() -> dlib.fhog_object_detector:
    return dlib.get_frontal_face_detector()


@functools.cache
def _landmarker() -> dlib.shape_predictor:
    return dlib.shape_predictor(str(model_file(LANDMARKS_5_MODEL)))


@functools.cache
def dlib_recognizer() -> dlib.face_recognition_model_v1:
    """dlib's own face ResNet (the reference for our ONNX export)."""
    return dlib.face_recognition_model_v1(str(model_file(RECOGNITION_MODEL)))


def load_rgb(path: Path) -> np.ndarray:
    """A photo as an RGB uint8 array."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


@functools.cache
def detect_faces(path: Path) -> tuple[DetectedFace, ...]:
    """Every face dlib's HOG detector finds in ``path`` (no upsampling: quick), with landmarks and chips."""
    image = load_rgb(path)
    faces = []
    for box in _detector()(image, 0):
        shape = _landmarker()(image, box)
        landmarks = np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], dtype=np.float64)
        chip = dlib.get_face_chip(image, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
        faces.append(DetectedFace(path.name, image, shape, landmarks, chip))
    return tuple(faces)


def faces_in(folder: Path, names: tuple[str, ...]) -> list[DetectedFace]:
    """The faces of the named photos of ``folder`` (photos that are missing are an error)."""
    faces: list[DetectedFace] = []
    for name in names:
        path = folder / name
        assert path.is_file(), f"{path} is missing"
        faces.extend(detect_faces(path))
    return faces


def dlib_descriptor(chip: np.ndarray) -> np.ndarray:
    """dlib's descriptor of an aligned chip (no jitter), as float32 like the ONNX output."""
    return np.array(dlib_recognizer().compute_face_descriptor(chip), dtype=np.float32)
