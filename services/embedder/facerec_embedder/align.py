"""Face alignment: a numpy port of dlib's ``get_face_chip(image, shape5, size=150, padding=0.25)``.

The embedding model was trained on chips cut exactly this way, and a different warp (OpenCV's, say) moves
embeddings by a sizeable fraction of the decision threshold. So this module follows dlib step by step
(``get_face_chip_details`` for a 5-point shape, ``chip_details``, ``extract_image_chips`` with its
``pyramid_down<2>`` and ``interpolate_bilinear``), in the same floating-point order, and produces chips
bit-identical to dlib's.

Geometry is done with Python floats (IEEE doubles, as in dlib) on a handful of points; only the per-pixel
work (the pyramid filter and the bilinear interpolation) is vectorised with numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from facerec_embedder.model import CHIP_PADDING, CHIP_SIZE

Image = npt.NDArray[np.uint8]
Point = tuple[float, float]

# dlib's mean face for the 5-point landmark model (get_face_chip_details, interpolation.h): the two corners
# of each eye, then the bottom of the nose, in units of the chip.
_MEAN_FACE_5: tuple[Point, ...] = (
    (0.8595674595992, 0.2134981538014),
    (0.6460604764104, 0.2289674387677),
    (0.1205750620789, 0.2137274526848),
    (0.3340850613712, 0.2290642403242),
    (0.4901123135679, 0.6277975316475),
)


class AlignmentError(ValueError):
    """The image or the landmarks cannot give a chip (wrong shapes, degenerate landmarks)."""


@dataclass(frozen=True)
class Rect:
    """dlib's ``drectangle``: inclusive corners; width is ``right - left + 1``."""

    left: float
    top: float
    right: float
    bottom: float

    @classmethod
    def around(cls, points: list[Point]) -> Rect:
        """The smallest rectangle holding ``points`` (dlib adds points to an empty drectangle)."""
        xs = [p[0] for p in points]
        ys = [p[1] for p in points]
        return cls(min(xs), min(ys), max(xs), max(ys))

    def is_empty(self) -> bool:
        return self.top > self.bottom or self.left > self.right

    def width(self) -> float:
        return 0.0 if self.is_empty() else self.right - self.left + 1

    def height(self) -> float:
        return 0.0 if self.is_empty() else self.bottom - self.top + 1

    def area(self) -> float:
        return self.width() * self.height()

    def center(self) -> Point:
        return ((self.left + self.right) / 2.0, (self.top + self.bottom) / 2.0)

    def corners(self) -> tuple[Point, Point, Point, Point]:
        """Top-left, top-right, bottom-left, bottom-right."""
        return (
            (self.left, self.top),
            (self.right, self.top),
            (self.left, self.bottom),
            (self.right, self.bottom),
        )

    def translated(self, dx: float, dy: float) -> Rect:
        return Rect(self.left + dx, self.top + dy, self.right + dx, self.bottom + dy)

    def grown(self, amount: float) -> Rect:
        return Rect(self.left - amount, self.top - amount, self.right + amount, self.bottom + amount)

    def intersect(self, other: Rect) -> Rect:
        return Rect(
            max(self.left, other.left),
            max(self.top, other.top),
            min(self.right, other.right),
            min(self.bottom, other.bottom),
        )

    def rounded(self) -> tuple[int, int, int, int]:
        """dlib's conversion to an integer ``rectangle``: ``floor(x + 0.5)`` on each side."""
        return (
            math.floor(self.left + 0.5),
            math.floor(self.top + 0.5),
            math.floor(self.right + 0.5),
            math.floor(self.bottom + 0.5),
        )


@dataclass(frozen=True)
class ChipDetails:
    """Where a chip lies in the image: a rectangle, rotated by ``angle`` about its centre, and its size."""

    rect: Rect
    angle: float
    rows: int
    cols: int


@dataclass(frozen=True)
class Affine2D:
    """``p -> m @ p + b``, evaluated in dlib's order: ``(m00 * x + m01 * y) + b0``."""

    m: tuple[tuple[float, float], tuple[float, float]]
    b: Point

    def __call__(self, p: Point) -> Point:
        (m00, m01), (m10, m11) = self.m
        return (m00 * p[0] + m01 * p[1] + self.b[0], m10 * p[0] + m11 * p[1] + self.b[1])


def _rotate(center: Point, p: Point, angle: float) -> Point:
    """dlib's ``rotate_point``: rotate ``p`` by ``angle`` radians about ``center``."""
    sin_a, cos_a = math.sin(angle), math.cos(angle)
    x, y = p[0] - center[0], p[1] - center[1]
    return (cos_a * x - sin_a * y + center[0], sin_a * x + cos_a * y + center[1])


def find_similarity_transform(from_points: list[Point], to_points: list[Point]) -> Affine2D:
    """Least-squares rotation + scale + translation from ``from_points`` to ``to_points`` (Umeyama).

    Same equations and order of operations as dlib's ``find_similarity_transform``.
    """
    count = len(from_points)
    mean_from = [0.0, 0.0]
    mean_to = [0.0, 0.0]
    for f, t in zip(from_points, to_points, strict=True):
        mean_from = [mean_from[0] + f[0], mean_from[1] + f[1]]
        mean_to = [mean_to[0] + t[0], mean_to[1] + t[1]]
    mean_from = [mean_from[0] / count, mean_from[1] / count]
    mean_to = [mean_to[0] / count, mean_to[1] / count]

    sigma_from = 0.0
    cov = np.zeros((2, 2))
    for f, t in zip(from_points, to_points, strict=True):
        df = (f[0] - mean_from[0], f[1] - mean_from[1])
        dt = (t[0] - mean_to[0], t[1] - mean_to[1])
        sigma_from += df[0] * df[0] + df[1] * df[1]
        cov += np.array([[dt[0] * df[0], dt[0] * df[1]], [dt[1] * df[0], dt[1] * df[1]]])
    sigma_from /= count
    cov /= count

    u, d, vt = np.linalg.svd(cov)
    s = np.eye(2)
    det_cov = cov[0, 0] * cov[1, 1] - cov[0, 1] * cov[1, 0]
    if det_cov < 0 or (det_cov == 0 and np.linalg.det(u) * np.linalg.det(vt) < 0):
        if d[1] < d[0]:
            s[1, 1] = -1
        else:
            s[0, 0] = -1
    r = u @ s @ vt
    c = 1.0 if sigma_from == 0 else 1.0 / sigma_from * float(d[0] * s[0, 0] + d[1] * s[1, 1])
    cr = c * r
    t = (
        mean_to[0] - (cr[0, 0] * mean_from[0] + cr[0, 1] * mean_from[1]),
        mean_to[1] - (cr[1, 0] * mean_from[0] + cr[1, 1] * mean_from[1]),
    )
    m = ((float(cr[0, 0]), float(cr[0, 1])), (float(cr[1, 0]), float(cr[1, 1])))
    return Affine2D(m=m, b=(float(t[0]), float(t[1])))


def _find_affine_transform(from_points: list[Point], to_points: list[Point]) -> Affine2D:
    """dlib's ``find_affine_transform``: ``Q @ pinv(P)`` with homogeneous ``from`` points."""
    p = np.array([[f[0] for f in from_points], [f[1] for f in from_points], [1.0] * len(from_points)])
    q = np.array([[t[0] for t in to_points], [t[1] for t in to_points]])
    m = q @ np.linalg.pinv(p)
    return Affine2D(
        m=((float(m[0, 0]), float(m[0, 1])), (float(m[1, 0]), float(m[1, 1]))),
        b=(float(m[0, 2]), float(m[1, 2])),
    )


def face_chip_details(landmarks: npt.ArrayLike, size: int = CHIP_SIZE, padding: float = CHIP_PADDING) -> ChipDetails:
    """dlib's ``get_face_chip_details`` for a 5-point shape: where the chip lies in the image."""
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (5, 2):
        raise AlignmentError(f"expected 5 landmarks as a [5, 2] array, got shape {points.shape}")
    if not np.isfinite(points).all():
        raise AlignmentError("landmarks must be finite numbers")
    chip_points = [
        ((padding + x) / (2 * padding + 1) * size, (padding + y) / (2 * padding + 1) * size) for x, y in _MEAN_FACE_5
    ]
    image_points = [(float(x), float(y)) for x, y in points]
    tform = find_similarity_transform(chip_points, image_points)
    # chip_details(chip_points, img_points, dims): only rotation, scale and the chip centre are kept.
    px, py = tform.m[0][0], tform.m[1][0]
    angle = math.atan2(py, px)
    scale = math.sqrt(px * px + py * py)
    if scale == 0 or not math.isfinite(scale):
        raise AlignmentError("the landmarks are degenerate (all at one point)")
    cx, cy = tform((size / 2.0, size / 2.0))
    width, height = size * scale - 1, size * scale - 1  # centered_drect takes one off each side
    rect = Rect(cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2)
    return ChipDetails(rect=rect, angle=angle, rows=size, cols=size)


def _point_down(p: Point) -> Point:
    """``pyramid_down<2>::point_down``."""
    return (p[0] / 2.0 - 1.25, p[1] / 2.0 - 0.75)


def _rect_down(rect: Rect) -> Rect:
    left, top = _point_down((rect.left, rect.top))
    right, bottom = _point_down((rect.right, rect.bottom))
    return Rect.around([(left, top), (right, bottom)])


def pyramid_down(image: Image) -> Image:
    """dlib's ``pyramid_down<2>`` on an RGB image: a [1 4 6 4 1] filter each way, every other pixel kept."""
    rows, cols = image.shape[:2]
    if rows <= 8 or cols <= 8:
        return np.zeros((0, 0, 3), dtype=np.uint8)
    out_rows, out_cols = (rows - 3) // 2, (cols - 3) // 2
    pixels = image.astype(np.uint32)
    # Row filter on columns 2c .. 2c+4, for every row.
    span = 2 * out_cols
    filtered = (
        pixels[:, 0:span:2]
        + 4 * pixels[:, 1 : span + 1 : 2]
        + 6 * pixels[:, 2 : span + 2 : 2]
        + 4 * pixels[:, 3 : span + 3 : 2]
        + pixels[:, 4 : span + 4 : 2]
    )
    # Column filter on rows 2r .. 2r+4; integer division by 256 as dlib does.
    span = 2 * out_rows
    down = (
        filtered[0:span:2]
        + 4 * filtered[1 : span + 1 : 2]
        + 6 * filtered[2 : span + 2 : 2]
        + 4 * filtered[3 : span + 3 : 2]
        + filtered[4 : span + 4 : 2]
    ) // 256
    return down.astype(np.uint8)


def _transform_bilinear(source: Image, rows: int, cols: int, tform: Affine2D) -> Image:
    """dlib's ``transform_image`` with ``interpolate_bilinear``; pixels mapping outside are black."""
    if source.shape[0] < 2 or source.shape[1] < 2:  # nothing to interpolate from (face off the image)
        return np.zeros((rows, cols, 3), dtype=np.uint8)
    (m00, m01), (m10, m11) = tform.m
    r, c = np.meshgrid(np.arange(rows, dtype=np.float64), np.arange(cols, dtype=np.float64), indexing="ij")
    x = m00 * c + m01 * r + tform.b[0]
    y = m10 * c + m11 * r + tform.b[1]
    left = np.floor(x)
    top = np.floor(y)
    inside = (left >= 0) & (top >= 0) & (left + 1 < source.shape[1]) & (top + 1 < source.shape[0])
    li = np.where(inside, left, 0).astype(np.intp)
    ti = np.where(inside, top, 0).astype(np.intp)
    lr = (x - left)[..., None]
    tb = (y - top)[..., None]
    pixels = source.astype(np.float64)
    tl, tr = pixels[ti, li], pixels[ti, li + 1]
    bl, br = pixels[ti + 1, li], pixels[ti + 1, li + 1]
    value = (1 - tb) * ((1 - lr) * tl + lr * tr) + tb * ((1 - lr) * bl + lr * br)
    # assign_pixel(unsigned char&, double) truncates (the value is already within 0..255).
    chip = np.clip(value, 0, 255).astype(np.uint8)
    chip[~inside] = 0
    return chip


def _copy_chip(image: Image, rect: Rect) -> Image:
    """dlib's ``basic_extract_image_chip`` (no rotation, no scaling): a copy with zeros outside the image."""
    left, top, right, bottom = rect.rounded()
    chip = np.zeros((bottom - top + 1, right - left + 1, 3), dtype=np.uint8)
    src_top, src_left = max(top, 0), max(left, 0)
    src_bottom, src_right = min(bottom, image.shape[0] - 1), min(right, image.shape[1] - 1)
    if src_top <= src_bottom and src_left <= src_right:
        chip[src_top - top : src_bottom - top + 1, src_left - left : src_right - left + 1] = image[
            src_top : src_bottom + 1, src_left : src_right + 1
        ]
    return chip


def extract_chip(image: Image, details: ChipDetails) -> Image:
    """dlib's ``extract_image_chip(img, details)`` with bilinear interpolation, for an RGB image."""
    if details.angle == 0 and details.rows == details.rect.height() and details.cols == details.rect.width():
        return _copy_chip(image, details.rect)
    size = details.rows * details.cols
    # How deep a pyramid the chip needs: bilinear sampling of a much larger area would alias.
    depth, grow = 0, 2.0
    rect = _rect_down(details.rect)
    while rect.area() > size:
        rect = _rect_down(rect)
        depth += 1
        grow = grow * 2 + 2
    centre = details.rect.center()
    rotated = Rect.around([_rotate(centre, corner, details.angle) for corner in details.rect.corners()])
    image_rect = Rect(0, 0, image.shape[1] - 1, image.shape[0] - 1)
    box_left, box_top, box_right, box_bottom = rotated.grown(grow).intersect(image_rect).rounded()
    region = image[box_top : box_bottom + 1, box_left : box_right + 1]
    levels: list[Image] = []
    for _ in range(depth):
        levels.append(pyramid_down(levels[-1] if levels else region))

    level = -1
    rect = details.rect.translated(-box_left, -box_top)
    while _rect_down(rect).area() > size:
        level += 1
        rect = _rect_down(rect)
    centre = rect.center()
    tl, tr, bl, _ = rect.corners()
    chip_corners = [(0.0, 0.0), (details.cols - 1.0, 0.0), (0.0, details.rows - 1.0)]
    source_corners = [_rotate(centre, corner, details.angle) for corner in (tl, tr, bl)]
    tform = _find_affine_transform(chip_corners, source_corners)
    source = region if level == -1 else levels[level]
    return _transform_bilinear(source, details.rows, details.cols, tform)


def face_chip(image: Image, landmarks: npt.ArrayLike, size: int = CHIP_SIZE, padding: float = CHIP_PADDING) -> Image:
    """Cut the aligned face chip the embedding model expects, bit-identical to ``dlib.get_face_chip``.

    ``image`` is an RGB ``uint8`` array ``[H, W, 3]``; ``landmarks`` the 5 points of dlib's
    ``shape_predictor_5_face_landmarks`` as ``[5, 2]`` (x, y) in pixels. Returns ``[size, size, 3]`` uint8.
    """
    pixels = np.asarray(image)
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise AlignmentError(f"expected an RGB uint8 image [H, W, 3], got {pixels.dtype} {pixels.shape}")
    return extract_chip(pixels, face_chip_details(landmarks, size=size, padding=padding))
