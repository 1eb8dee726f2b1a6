"""Measures that tell whether a face is good enough to enroll or to trust in a match.

None of them rejects a face by itself: they are reported with every face, and callers (enrollment policy, the
gateway) set their own minimums. Each is defined on the aligned chip and the five landmarks, not on the detector's
box, so that it does not depend on the detector nor on the photo's resolution:

- ``face_size_px``: the face's real resolution. The chip is a 150x150 image of a face square of 100x100 chip
  pixels (dlib's mean-face template) with 25 pixels of padding on each side; ``face_size_px`` is the side of that
  face square in pixels of the photo, i.e. 100 x (photo pixels per chip pixel), with the scale the alignment
  itself computes from the landmarks. About 0.75x the side of a HOG box and 1.9x the interocular distance. The
  model sees 150x150 whatever the face's size; measured on LFW copies (``benchmarks/quality_gates.py``),
  recognition holds down to about 20 px (genuine-pair accuracy 97-99 %) and drops below (about 90 % at 12-20 px).
- ``interocular_px``: distance between the two eye centres (each the midpoint of its two corners) in pixels of
  the photo. Reported for callers that think in ISO/IEC 19794-5 terms; it shrinks as the head turns.
- ``sharpness``: how much fine detail the face holds at its own resolution: the mean squared 4-neighbour
  Laplacian over the mean squared gradient of the grey levels of the chip's face square, resampled (area
  average) to the face's native size when the chip is an upscale (``face_size_px`` < 100) and taken as is
  otherwise (the chip is then all the model sees). A ratio, so neither contrast nor lighting moves it, and at
  native scale, so an upscaled small face is not called blurry: a small face is too small, not blurred. Measured
  on photos downscaled 2x to 6x: a sharp face 2.3-3.3 at every size, the same photo after a Gaussian blur of
  sigma 1 native pixel about 1.0, sigma 2 about 0.45, sigma 3 about 0.3; LFW's web photos have a median of 2.2.
- ``frontality``: in [0, 1], from the five landmarks. ``yaw`` term: how far the nose base sits from the eye
  midpoint along the eye line, as a fraction of the interocular distance (0 for a frontal face, about 0.5
  when the nose is in line with one eye); the term falls linearly from 1 at 0 to 0 at 0.5. ``roll`` term: the
  cosine of the eye line's angle to the horizontal (0 at 90 degrees; the alignment undoes moderate roll, so it
  weighs less than yaw). ``frontality = yaw_term * roll_term``. Pitch is not measured.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image

from facerec_embedder.align import face_chip_details
from facerec_embedder.detection import Box, Chip, Landmarks
from facerec_embedder.model import CHIP_PADDING, CHIP_SIZE

# The nose offset (fraction of the interocular distance) at which the yaw term reaches 0: the nose base is
# then in line with an eye centre, a half-profile or more.
_PROFILE_OFFSET = 0.5

# ITU-R BT.601 luma weights, as Pillow's convert("L") uses.
_LUMA = np.array([0.299, 0.587, 0.114])

# The face square inside the chip: the mean-face template without the padding (100 px at offset 25 for a
# 150 px chip with padding 0.25).
FACE_SQUARE_PX = round(CHIP_SIZE / (1 + 2 * CHIP_PADDING))
_FACE_OFFSET = (CHIP_SIZE - FACE_SQUARE_PX) // 2

# Below this many pixels a side there is too little left to measure detail on; size gates reject long before.
_MIN_MEASURED_SIDE = 8

Grey = npt.NDArray[np.float64]


@dataclass(frozen=True)
class FaceQuality:
    """The four quality measures of one face (see the module's docstring for each)."""

    face_size_px: float
    interocular_px: float
    sharpness: float
    frontality: float


def measure_quality(box: Box, landmarks: Landmarks, chip: Chip) -> FaceQuality:
    """All quality measures of a face from its landmarks and its aligned chip.

    ``box`` is accepted for the callers' convenience and deliberately unused: boxes differ between detectors,
    the landmarks and the chip do not.
    """
    del box
    size = face_size(landmarks)
    return FaceQuality(
        face_size_px=size,
        interocular_px=interocular_distance(landmarks),
        sharpness=sharpness(chip, size),
        frontality=frontality(landmarks),
    )


def face_size(landmarks: Landmarks) -> float:
    """Side in photo pixels of the face square the chip is made of (100 x photo pixels per chip pixel)."""
    details = face_chip_details(landmarks.points)
    # The chip's rectangle in the photo spans cols x (photo pixels per chip pixel), dlib's inclusive width.
    photo_px_per_chip_px = details.rect.width() / details.cols
    return float(FACE_SQUARE_PX * photo_px_per_chip_px)


def interocular_distance(landmarks: Landmarks) -> float:
    """Distance in pixels between the centres of the two eyes."""
    return float(np.linalg.norm(landmarks.left_eye_center - landmarks.right_eye_center))


def sharpness(chip: Chip, face_size_px: float) -> float:
    """Mean squared Laplacian over mean squared gradient of the chip's face square at the face's native scale.

    0.0 for a flat face square (no gradient at all).
    """
    face = _native_face_square(chip, face_size_px)
    laplacian = face[:-2, 1:-1] + face[2:, 1:-1] + face[1:-1, :-2] + face[1:-1, 2:] - 4.0 * face[1:-1, 1:-1]
    # Mean over the two directions, so that a single step edge gives the same energy in either orientation.
    gradient = (float(np.mean(np.diff(face, axis=0) ** 2)) + float(np.mean(np.diff(face, axis=1) ** 2))) / 2.0
    if gradient == 0.0:
        return 0.0
    return float(np.mean(laplacian**2)) / gradient


def _native_face_square(chip: Chip, face_size_px: float) -> Grey:
    """The chip's face square in grey levels, area-averaged down to the face's size in the photo if smaller."""
    end = _FACE_OFFSET + FACE_SQUARE_PX
    grey: Grey = chip[_FACE_OFFSET:end, _FACE_OFFSET:end].astype(np.float64) @ _LUMA
    side = max(_MIN_MEASURED_SIDE, round(min(face_size_px, FACE_SQUARE_PX)))
    if side >= FACE_SQUARE_PX:
        return grey
    # An upscaled chip only interpolates the photo's pixels: measure detail on as many pixels as there were.
    resized = Image.fromarray(grey.astype(np.float32)).resize((side, side), Image.Resampling.BOX)
    return np.asarray(resized, dtype=np.float64)


def frontality(landmarks: Landmarks) -> float:
    """1.0 for a face looking at the camera with level eyes, towards 0.0 for a profile or a tilted head."""
    right_eye, left_eye = landmarks.right_eye_center, landmarks.left_eye_center
    # From the subject's right eye to the left one: points to the image's right on an upright face.
    eye_axis = left_eye - right_eye
    interocular = float(np.linalg.norm(eye_axis))
    if interocular == 0.0:
        return 0.0
    direction = eye_axis / interocular
    eye_midpoint = (left_eye + right_eye) / 2.0
    nose_offset = float(np.dot(np.asarray(landmarks.points[4]) - eye_midpoint, direction)) / interocular
    yaw_term = max(0.0, 1.0 - abs(nose_offset) / _PROFILE_OFFSET)
    # The cosine of the eye line's angle to the horizontal is the x component of its unit vector.
    roll_term = max(0.0, float(direction[0]))
    return yaw_term * roll_term
