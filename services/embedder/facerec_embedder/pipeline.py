"""From photo bytes to faces: decode, detect, landmarks, align, measure quality, embed.

The pipeline knows nothing of gRPC: the servicer turns its dataclasses into messages. The CPU-heavy part
(decoding, HOG detection, alignment) runs in a thread executor so the event loop keeps serving other requests
meanwhile; the embedding goes through an :class:`EmbeddingRuntime` (usually a ``MicroBatcher`` in front of
Triton), so faces of concurrent photos share inference calls.
"""

from __future__ import annotations

import asyncio
import dataclasses
from concurrent.futures import Executor

import numpy as np
import numpy.typing as npt

from facerec_embedder.detection import Box, Chip, FaceDetection, FaceDetector, Landmarks, align_chip
from facerec_embedder.images import DEFAULT_LIMITS, ImageLimits, RGBImage, decode_image
from facerec_embedder.quality import FaceQuality, measure_quality
from facerec_embedder.runtime import EmbeddingRuntime

Embedding = npt.NDArray[np.float32]
"""One raw 128-d descriptor."""


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
    (dlib releases the GIL, and the detector keeps one instance per thread).
    """

    def __init__(
        self,
        detector: FaceDetector,
        runtime: EmbeddingRuntime,
        executor: Executor,
        limits: ImageLimits = DEFAULT_LIMITS,
    ) -> None:
        self.detector = detector
        self.runtime = runtime
        self.executor = executor
        self.limits = limits

    async def analyze(self, photo: bytes, *, upsample: int | None = None, detect_only: bool = False) -> PhotoFaces:
        """The faces of an encoded photo, largest first; descriptors too unless ``detect_only``.

        A photo without a face gives an empty list. Raises the errors of ``decode_image`` and
        ``FaceDetector.detect`` (bad or oversized image, bad upsampling) and of the runtime (Triton down).
        """
        loop = asyncio.get_running_loop()
        size, faces = await loop.run_in_executor(self.executor, self._find_faces, photo, upsample)
        if detect_only or not faces:
            return PhotoFaces(size, faces)
        embeddings = await self.runtime.embed(np.stack([face.chip for face in faces]))
        embedded = [
            dataclasses.replace(face, embedding=embedding) for face, embedding in zip(faces, embeddings, strict=True)
        ]
        return PhotoFaces(size, embedded)

    def _find_faces(self, photo: bytes, upsample: int | None) -> tuple[ImageSize, list[DetectedFace]]:
        image = decode_image(photo, self.limits)
        faces = [self._measured(image, detection) for detection in self.detector.detect(image, upsample)]
        faces.sort(key=lambda face: (face.box.area, face.detection_score), reverse=True)
        height, width = image.shape[:2]
        return ImageSize(width=width, height=height), faces

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
