"""Faces of a photo: boxes from a detector run on a copy bounded in size, landmarks and chips at full resolution.

Detection cost grows with the pixels it searches, so the detector sees a copy of the photo whose longest side
is at most ``max_side`` (shrunk with Pillow: an integer box reduction, then a bilinear resize to the bound).
Its boxes are mapped back to the photo's pixels; dlib's 5-point shape predictor then places the landmarks on
the full-resolution photo, and the chip is cut from it, so chips are exactly ``dlib.get_face_chip``'s on
those landmarks and a face's descriptor does not depend on the bound (only whether it is found does).

The smallest face found, in pixels of the original photo, is the detector's minimum in the copy times
``longest side / max_side``. Measured with the defaults (bound 640, YuNet at 0.9, HOG upsampling once) on the
obama sample scaled onto a plain canvas, face width as HOG's box: YuNet 128 px in a 4032x3024 photo (112
missed), 40 px at 1280x960 (32 missed), 20 px at 640x480 (16 missed); HOG 200 px (160 missed), 56 px (48)
and 28 px (24). tests/embedder_domain/test_detectors.py checks each figure.

The shape predictor's prediction is read-only (``const`` in dlib): one instance is shared by all threads;
each detector is safe to call from several threads (see ``facerec_embedder.detectors``).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import dlib
import numpy as np
import numpy.typing as npt
from PIL import Image

from facerec_embedder.detectors import Box, BoxDetector, HogDetector, ScoredBox
from facerec_embedder.errors import ImageTooLarge, InvalidUpsample
from facerec_embedder.images import RGBImage
from facerec_embedder.model import CHIP_PADDING, CHIP_SIZE

__all__ = ["Box", "Chip", "FaceDetection", "FaceDetector", "Landmarks", "align_chip", "bounded_copy"]

LANDMARKS_MODEL_FILE = "shape_predictor_5_face_landmarks.dat"

Chip = npt.NDArray[np.uint8]
"""An aligned face: a (150, 150, 3) uint8 RGB array."""


@dataclass(frozen=True, eq=False)
class Landmarks:
    """The five points of dlib's 5-point model, as a (5, 2) float array of (x, y) in dlib's part order.

    Part 0 and 1 are the subject's left eye (outer, inner corner), 2 and 3 the right eye (outer, inner),
    4 the base of the nose. The subject's left eye appears on the image's right for a face looking at the
    camera.
    """

    points: npt.NDArray[np.float64]

    @property
    def left_eye_outer(self) -> tuple[float, float]:
        """dlib part 0."""
        return self._point(0)

    @property
    def left_eye_inner(self) -> tuple[float, float]:
        """dlib part 1."""
        return self._point(1)

    @property
    def right_eye_outer(self) -> tuple[float, float]:
        """dlib part 2."""
        return self._point(2)

    @property
    def right_eye_inner(self) -> tuple[float, float]:
        """dlib part 3."""
        return self._point(3)

    @property
    def nose_base(self) -> tuple[float, float]:
        """dlib part 4."""
        return self._point(4)

    @property
    def left_eye_center(self) -> npt.NDArray[np.float64]:
        """Midpoint of the subject's left eye corners."""
        return np.asarray(self.points[0:2].mean(axis=0), dtype=np.float64)

    @property
    def right_eye_center(self) -> npt.NDArray[np.float64]:
        """Midpoint of the subject's right eye corners."""
        return np.asarray(self.points[2:4].mean(axis=0), dtype=np.float64)

    def _point(self, part: int) -> tuple[float, float]:
        return float(self.points[part, 0]), float(self.points[part, 1])


@dataclass(frozen=True, eq=False)
class FaceDetection:
    """One face: its box and landmarks in pixels of the photo, and the detector's score (its scale is the detector's:
    YuNet's confidence in [0, 1], HOG's SVM score with 0 as the decision boundary)."""

    box: Box
    score: float
    landmarks: Landmarks


def landmarks_model_path() -> Path:
    """Where the installed ``face-recognition-models`` package keeps the 5-point landmark model.

    The package is located without importing it: its ``__init__`` imports ``pkg_resources``, which recent
    setuptools no longer ship.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the face-recognition-models package is not installed")
    return Path(spec.submodule_search_locations[0]) / "models" / LANDMARKS_MODEL_FILE


class FaceDetector:
    """Finds the faces of a photo with a :class:`BoxDetector` and places the five landmarks on each.

    ``boxes`` is the detector (dlib's HOG when not given); ``upsample`` the default number of times the
    detection copy is doubled before detecting (the detector's own default when not given); ``max_side``
    bounds the detection copy's longest side (``None``: detect on the photo itself). ``max_detection_pixels``
    bounds the copy once upsampled, since each upsampling multiplies memory and time by four.
    """

    def __init__(
        self,
        upsample: int | None = None,
        *,
        boxes: BoxDetector | None = None,
        max_side: int | None = None,
        max_upsample: int = 3,
        max_detection_pixels: int = 160_000_000,
        landmarks_model: Path | None = None,
    ) -> None:
        if max_side is not None and max_side < 1:
            raise ValueError(f"max_side must be at least 1, not {max_side}")
        self.boxes = boxes or HogDetector(1 if upsample is None else upsample)
        self.max_side = max_side
        self.max_upsample = max_upsample
        self.default_upsample = self._checked_upsample(self.boxes.default_upsample if upsample is None else upsample)
        self.max_detection_pixels = max_detection_pixels
        self._shape_predictor = dlib.shape_predictor(str(landmarks_model or landmarks_model_path()))

    def detect(self, image: RGBImage, upsample: int | None = None) -> list[FaceDetection]:
        """Every face in ``image``, in the detector's order. Blocking and CPU-heavy: call it from a thread."""
        height, width = image.shape[:2]
        return self.place_landmarks(image, self.find_boxes(image, (width, height), upsample))

    def find_boxes(self, view: RGBImage, photo_size: tuple[int, int], upsample: int | None = None) -> list[ScoredBox]:
        """The face boxes of a photo of ``photo_size`` (width, height), in its pixels, found in ``view``.

        ``view`` is the photo itself or a smaller decode of it (same aspect ratio, e.g. a JPEG decoded at 1/4
        scale); the detector searches it shrunk further to ``max_side`` where it is larger.
        """
        times = self.default_upsample if upsample is None else self._checked_upsample(upsample)
        copy = bounded_copy(view, self.max_side)
        self._check_detection_size(copy, times)
        scale_x, scale_y = photo_size[0] / copy.shape[1], photo_size[1] / copy.shape[0]
        return [
            ScoredBox(box=found.box.scaled(scale_x, scale_y), score=found.score)
            for found in self.boxes.find(copy, times)
        ]

    def place_landmarks(self, image: RGBImage, boxes: list[ScoredBox]) -> list[FaceDetection]:
        """The five landmarks of each face box, placed by dlib's shape predictor on the full-resolution photo."""
        return [FaceDetection(box=b.box, score=b.score, landmarks=self._landmarks(image, b.box)) for b in boxes]

    def _landmarks(self, image: RGBImage, box: Box) -> Landmarks:
        rect = dlib.rectangle(box.x, box.y, box.x + box.width - 1, box.y + box.height - 1)
        shape = self._shape_predictor(image, rect)
        points = np.array([(part.x, part.y) for part in shape.parts()], dtype=np.float64)
        return Landmarks(points=points)

    def _checked_upsample(self, upsample: int) -> int:
        if not 0 <= upsample <= self.max_upsample:
            raise InvalidUpsample(f"upsample must be between 0 and {self.max_upsample}, not {upsample}")
        return upsample

    def _check_detection_size(self, copy: RGBImage, upsample: int) -> None:
        height, width = copy.shape[:2]
        pixels = width * height * 4**upsample
        if pixels > self.max_detection_pixels:
            raise ImageTooLarge(
                f"a {width}x{height} image upsampled {upsample} time(s) is {pixels:,} pixels; at most "
                f"{self.max_detection_pixels:,} are searched for faces (send a smaller photo or upsample less)"
            )


def bounded_copy(image: RGBImage, max_side: int | None) -> RGBImage:
    """``image`` itself if its longest side is within ``max_side`` (or there is no bound), else a copy shrunk
    to that longest side: first by an integer box reduction (fast, and it averages away the aliasing a
    detector would see), then bilinear to the exact bound."""
    height, width = image.shape[:2]
    longest = max(width, height)
    if max_side is None or longest <= max_side:
        return image
    size = (max(1, round(width * max_side / longest)), max(1, round(height * max_side / longest)))
    shrunk = Image.fromarray(image)
    factor = longest // max_side
    if factor >= 2:
        shrunk = shrunk.reduce(factor)
    if shrunk.size != size:
        shrunk = shrunk.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(shrunk)


def align_chip(image: RGBImage, landmarks: Landmarks) -> Chip:
    """The 150x150 chip dlib's ResNet expects: the face rotated upright, scaled and centred (padding 0.25).

    Uses ``dlib.get_face_chip`` until the numpy port (``facerec_embedder.align``) replaces it; the port is
    bit-identical, so the switch changes no embedding.
    """
    parts = [dlib.point(round(x), round(y)) for x, y in landmarks.points]
    xs = [part.x for part in parts]
    ys = [part.y for part in parts]
    # get_face_chip reads only the parts of a 5-point shape; the rectangle just has to hold them.
    shape = dlib.full_object_detection(dlib.rectangle(min(xs), min(ys), max(xs), max(ys)), parts)
    chip: Chip = dlib.get_face_chip(image, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
    return chip
