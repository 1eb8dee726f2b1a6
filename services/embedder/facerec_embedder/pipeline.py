"""From photo bytes to faces: decode, detect, landmarks, align, measure quality, embed.

The pipeline knows nothing of gRPC: the servicer turns its dataclasses into messages. The CPU-heavy part
(decoding, detection, alignment) runs in a thread executor so the event loop keeps serving other requests
meanwhile; the embedding goes through an :class:`EmbeddingRuntime` (usually a ``MicroBatcher`` in front of
Triton), so faces of concurrent photos share inference calls.

Decoding: the detector searches a copy of the photo bounded to ``FaceDetector.max_side``, while landmarks and
chips need the full-resolution pixels. A JPEG at least 4x larger than the bound (a 12 MP photo for the 640 px
default) is first decoded at 1/4 or 1/8 scale inside libjpeg (Pillow's draft mode, still at least
``max_side`` long) for detection, and decoded at full size only when a face was found: on 12 MP JPEGs that
costs 257 ms per photo with a face against 301 ms for a full decode shrunk to the bound, and 42 ms without a
face (measured in one process on the loaded 2-core machine). Smaller JPEGs, where libjpeg could only halve
the size, and other formats are decoded once at full size, and the detector shrinks that (see ``_DRAFT_FROM``).

Dropped work: each piece of work that runs in a detection thread first checks the deadline of the call it is
for (``admission.check_deadline``), and the embedding is not asked for once it has passed; a cancelled call
(its caller went away, or its deadline passed and gRPC cancelled it) cancels the pieces not started yet. Stage
timings (decode, detect, align) go to ``facerec_stage_duration_seconds`` through ``StageTimer("embedder")``;
``align`` covers landmarks, alignment and the quality measures of a photo's faces.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from facerec.runtime.stages import StageTimer
from facerec_embedder.admission import check_deadline
from facerec_embedder.detection import Box, Chip, FaceDetection, FaceDetector, Landmarks, align_chip
from facerec_embedder.detectors import ScoredBox
from facerec_embedder.images import DEFAULT_LIMITS, ImageLimits, RGBImage, decode_image, upright_size
from facerec_embedder.quality import FaceQuality, measure_quality
from facerec_embedder.runtime import EmbeddingRuntime

Embedding = npt.NDArray[np.float32]
"""One raw 128-d descriptor."""

T = TypeVar("T")

STAGES = StageTimer("embedder")


@dataclasses.dataclass(frozen=True)
class ImageSize:
    """Size of the upright (EXIF-rotated) image that boxes and landmarks refer to."""

    width: int
    height: int


@dataclasses.dataclass(frozen=True, eq=False)
class DetectedFace:
    """One face of a photo: where it is, how good it is, and its descriptor (``None`` when detection only)."""

    box: Box
    landmarks: Landmarks
    detection_score: float
    quality: FaceQuality
    chip: Chip
    embedding: Embedding | None


@dataclasses.dataclass(frozen=True, eq=False)
class PhotoFaces:
    """Every face found in a photo, largest first, and the size of the upright image."""

    image_size: ImageSize
    faces: list[DetectedFace]


class FacePipeline:
    """Turns photos into faces with descriptors.

    ``executor`` runs decoding and detection: give it as many threads as there are cores for detection
    (dlib releases the GIL, and the detector keeps one instance per thread). With ``workers`` (the executor's
    thread count) at most that many photos are decoded and searched at once, the others waiting their turn
    in arrival order: the several pieces of work of concurrent photos (decode, detection beside a second
    decode, alignment) would otherwise interleave in the executor's queue, and every photo would finish late,
    together, past its caller's deadline once there are enough of them; in turn, they finish one after another.
    """

    def __init__(
        self,
        detector: FaceDetector,
        runtime: EmbeddingRuntime,
        executor: Executor,
        limits: ImageLimits = DEFAULT_LIMITS,
        *,
        workers: int | None = None,
    ) -> None:
        self.detector = detector
        self.runtime = runtime
        self.executor = executor
        self.limits = limits
        self._detection_turns = None if workers is None else asyncio.Semaphore(workers)

    async def analyze(self, photo: bytes, *, upsample: int | None = None, detect_only: bool = False) -> PhotoFaces:
        """The faces of an encoded photo, largest first; descriptors too unless ``detect_only``.

        A photo without a face gives an empty list. Raises the errors of ``decode_image`` and
        ``FaceDetector.detect`` (bad or oversized image, bad upsampling) and of the runtime (Triton down).
        """
        if self._detection_turns is None:
            size, faces = await self._find_faces(photo, upsample)
        else:
            async with self._detection_turns:
                size, faces = await self._find_faces(photo, upsample)
        if detect_only or not faces:
            return PhotoFaces(size, faces)
        check_deadline("the embedding")
        embeddings = await self.runtime.embed(np.stack([face.chip for face in faces]))
        embedded = [
            dataclasses.replace(face, embedding=embedding) for face, embedding in zip(faces, embeddings, strict=True)
        ]
        return PhotoFaces(size, embedded)

    async def _find_faces(self, photo: bytes, upsample: int | None) -> tuple[ImageSize, list[DetectedFace]]:
        view, size = await self._in_worker("decoding", self._decode_for_detection, photo)
        if _size_of(view) == size:
            return size, await self._in_worker("detection", self._faces_in, view, upsample)
        # A reduced view: the full-resolution decode that landmarks and chips need starts now, beside detection,
        # so a large photo waits for the longer of the two rather than both; it is dropped if no face is found.
        full = self._in_worker("decoding", self._decode_full, photo)
        try:
            boxes = await self._in_worker("detection", self._boxes_in, view, size, upsample)
        except BaseException:
            _abandon(full)
            raise
        if not boxes:
            _abandon(full)
            return size, []
        image = await full
        return size, await self._in_worker("alignment", self._measured_faces, image, boxes)

    def _in_worker(self, stage: str, work: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """``work(*args)`` in a detection thread, in this call's context (request id, deadline), dropped with
        ``CallExpired`` if the call's deadline has passed by the time a thread is free for it."""
        context = contextvars.copy_context()
        return asyncio.get_running_loop().run_in_executor(
            self.executor, context.run, _unless_expired, stage, work, *args
        )

    def _faces_in(self, image: RGBImage, upsample: int | None) -> list[DetectedFace]:
        height, width = image.shape[:2]
        boxes = self._boxes_in(image, ImageSize(width, height), upsample)
        return self._measured_faces(image, boxes)

    def _boxes_in(self, view: RGBImage, size: ImageSize, upsample: int | None) -> list[ScoredBox]:
        with STAGES.time("detect"):
            return self.detector.find_boxes(view, (size.width, size.height), upsample)

    def _decode_full(self, photo: bytes) -> RGBImage:
        with STAGES.time("decode"):
            return decode_image(photo, self.limits)

    def _measured_faces(self, image: RGBImage, boxes: list[ScoredBox]) -> list[DetectedFace]:
        if not boxes:
            return []
        with STAGES.time("align"):
            faces = [self._measured(image, detection) for detection in self.detector.place_landmarks(image, boxes)]
        faces.sort(key=lambda face: (face.box.area, face.detection_score), reverse=True)
        return faces

    def _decode_for_detection(self, photo: bytes) -> tuple[RGBImage, ImageSize]:
        """The photo decoded for detection (possibly at reduced scale) and the size of the upright photo."""
        with STAGES.time("decode"):
            return self._decoded_for_detection(photo)

    def _decoded_for_detection(self, photo: bytes) -> tuple[RGBImage, ImageSize]:
        upright = upright_size(photo)
        header = None if upright is None else ImageSize(*upright)
        bound = self.detector.max_side
        reducible = header is not None and bound is not None and max(header.width, header.height) >= _DRAFT_FROM * bound
        # Bytes whose header cannot be read get no draft: decode_image then raises the error that says why.
        view = decode_image(photo, self.limits, draft_side=bound if reducible else None)
        # A view smaller than the header says was decoded at reduced scale; otherwise its own size is the truth.
        if header is not None and max(header.width, header.height) > max(view.shape[:2]):
            return view, header
        return view, _size_of(view)

    @staticmethod
    def _measured(image: RGBImage, detection: FaceDetection) -> DetectedFace:
        chip = align_chip(image, detection.landmarks)
        return DetectedFace(
            box=detection.box,
            landmarks=detection.landmarks,
            detection_score=detection.score,
            quality=measure_quality(detection.box, detection.landmarks, chip),
            chip=chip,
            embedding=None,
        )


def _unless_expired(stage: str, work: Callable[..., T], *args: Any) -> T:
    check_deadline(stage)
    return work(*args)


def _abandon(decoding: asyncio.Future[RGBImage]) -> None:
    """Drop a decode no longer needed: cancelled if it has not started, its outcome collected if it has."""
    if not decoding.cancel():
        decoding.add_done_callback(lambda done: done.cancelled() or done.exception())


def _size_of(image: RGBImage) -> ImageSize:
    height, width = image.shape[:2]
    return ImageSize(width=width, height=height)


# A JPEG is decoded at reduced scale for detection only when libjpeg can reduce it 4x or more: at 2x (a 2.5 MP
# photo and a 640 px bound) the reduced decode plus the full one cost 33 ms against 23 ms for one full decode
# and a shrunk copy (16 deepface photos); at 4x (12 MP) 257 ms against 301 ms, and 42 ms without a face.
_DRAFT_FROM = 4
