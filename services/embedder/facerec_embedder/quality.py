"""Measures that tell whether a face is good enough to enroll or to trust in a match.

None of them rejects a face by itself: they are reported with every face, and callers (enrollment policy, the
gateway) set their own minimums.

- ``face_size_px``: min(width, height) of the detection box. The model sees a 150x150 chip whatever the face's
  size; below about 40-60 px the chip is an upscaled blur and descriptors drift.
- ``interocular_px``: distance between the two eye centres (each the midpoint of its two corners) in pixels of
  the photo. Less sensitive to the detector's box placement than the box size; ~0.4x the box side.
- ``sharpness``: variance of the Laplacian (4-neighbour kernel) of the chip's grey levels on the 0-255 scale.
  Measured on the aligned chip, so it does not depend on the photo's resolution. Focus or motion blur removes
  the high frequencies the Laplacian responds to: blurred chips score tens, sharp ones hundreds.
- ``frontality``: in [0, 1], from the five landmarks. ``yaw`` term: how far the nose base sits from the eye
  midpoint along the eye line, as a fraction of the interocular distance (0 for a frontal face, about 0.5
  when the nose is in line with one eye); the term falls linearly from 1 at 0 to 0 at 0.5. ``roll`` term: the
  cosine of the eye line's angle to the horizontal (0 at 90 degrees; the alignment undoes moderate roll, so it
  weighs less than yaw). ``frontality = yaw_term * roll_term``. Pitch is not measured.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facerec_embedder.detection import Box, Chip, Landmarks

# The nose offset (fraction of the interocular distance) at which the yaw term reaches 0: the nose base is
# then in line with an eye centre, a half-profile or more.
_PROFILE_OFFSET = 0.5

# ITU-R BT.601 luma weights, as Pillow's convert("L") uses.
_LUMA = np.array([0.299, 0.587, 0.114])


@dataclass(frozen=True)
class FaceQuality:
    """The four quality measures of one face (see the module's docstring for each)."""

    face_size_px: float
    interocular_px: float
    sharpness: float
    frontality: float


def measure_quality(box: Box, landmarks: Landmarks, chip: Chip) -> FaceQuality:
    """All quality measures of a face from its detection box, its landmarks and its aligned chip."""
    return FaceQuality(
        face_size_px=float(min(box.width, box.height)),
        interocular_px=interocular_distance(landmarks),
        sharpness=sharpness(chip),
        frontality=frontality(landmarks),
    )


def interocular_distance(landmarks: Landmarks) -> float:
    """Distance in pixels between the centres of the two eyes."""
    return float(np.linalg.norm(landmarks.left_eye_center - landmarks.right_eye_center))


def sharpness(chip: Chip) -> float:
    """Variance of the 4-neighbour Laplacian of the chip's grey levels (0-255 scale), over inner pixels."""
    grey = chip.astype(np.float64) @ _LUMA
    laplacian = grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4.0 * grey[1:-1, 1:-1]
    return float(laplacian.var())


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
