"""The detector seam: what every face detector gives the pipeline (boxes and scores, nothing else)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from facerec_embedder.images import RGBImage


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

    def scaled(self, sx: float, sy: float) -> Box:
        """The same box in an image ``sx`` times wider and ``sy`` times taller (rounded to whole pixels)."""
        left, top = round(self.x * sx), round(self.y * sy)
        right, bottom = round((self.x + self.width) * sx), round((self.y + self.height) * sy)
        return Box(x=left, y=top, width=right - left, height=bottom - top)


@dataclass(frozen=True)
class ScoredBox:
    """A face box a detector found, with the detector's confidence (its scale depends on the detector)."""

    box: Box
    score: float


class BoxDetector(Protocol):
    """Finds face boxes in an RGB image. Implementations must be safe to call from several threads at once.

    ``upsample`` asks for faces smaller than the detector finds at the image's own size: each step doubles
    the image's width and height before detecting (faces half as small, about 4x the time). Boxes come back
    in pixels of ``image`` and are HOG-like (a square around eyes, nose and mouth), whatever the detector's
    own box shape, because dlib's 5-point landmark model was trained on such boxes.
    """

    @property
    def name(self) -> str:
        """The detector's name as the settings spell it (``yunet``, ``hog``)."""
        ...

    @property
    def default_upsample(self) -> int:
        """The upsampling used when a request sets none."""
        ...

    def find(self, image: RGBImage, upsample: int) -> list[ScoredBox]:
        """Every face box in ``image``, in the detector's order. Blocking and CPU-heavy: call it from a thread."""
        ...
