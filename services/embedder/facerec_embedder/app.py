"""The embedder process: photos -> faces -> descriptors, the model running on Triton."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from PIL import Image

from facerec.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from facerec.runtime.server import ServiceBinding
from facerec_embedder.admission import Admission
from facerec_embedder.batching import MicroBatcher
from facerec_embedder.detection import FaceDetector
from facerec_embedder.detectors import BoxDetector, HogDetector, YuNetDetector
from facerec_embedder.images import ImageLimits
from facerec_embedder.pipeline import FacePipeline
from facerec_embedder.runtime import TritonEmbedder
from facerec_embedder.servicer import EmbedderServicer
from facerec_embedder.settings import EmbedderSettings

log = logging.getLogger(__name__)


class EmbedderApp:
    """Serves facerec.embedder.v1.Embedder; healthy while Triton reports the face model ready."""

    name = "embedder"

    def __init__(self, settings: EmbedderSettings) -> None:
        self.settings = settings
        # Pillow's own bomb guard at our limit, so no decoder ever allocates more than we accept.
        Image.MAX_IMAGE_PIXELS = settings.max_image_pixels
        retry_after_s = settings.overload_retry_after_ms / 1000
        self.admission = Admission(settings.in_flight_limit(), retry_after_s)
        self.chip_admission = Admission(settings.max_chip_calls_in_flight, retry_after_s, work="chips")
        self.triton = TritonEmbedder(
            settings.triton_url,
            settings.triton_model,
            timeout_s=settings.triton_timeout_s,
            overload_retry_after_s=retry_after_s,
        )
        self.batcher = MicroBatcher(
            self.triton, max_batch=settings.batch_max_size, max_delay_s=settings.batch_max_delay_ms / 1000
        )
        self.executor = ThreadPoolExecutor(settings.detect_workers, thread_name_prefix="detect")
        self.pipeline = FacePipeline(
            face_detector(settings),
            self.batcher,
            self.executor,
            ImageLimits(max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels),
            workers=settings.detect_workers,
        )

    def bindings(self) -> Sequence[ServiceBinding]:
        return [
            ServiceBinding(
                embedder_pb2.DESCRIPTOR.services_by_name["Embedder"],
                EmbedderServicer(self.pipeline, self.batcher, self.admission, self.chip_admission),
                embedder_pb2_grpc.add_EmbedderServicer_to_server,
            )
        ]

    async def start(self) -> None:
        log.info(
            "embedding model served by Triton at %s; at most %d calls in flight",
            self.settings.triton_url,
            self.admission.max_in_flight,
        )

    async def ready(self) -> bool:
        return await self.triton.is_ready()

    async def close(self) -> None:
        await self.batcher.drain()
        await self.triton.close()
        self.executor.shutdown(wait=True, cancel_futures=True)


def face_detector(settings: EmbedderSettings) -> FaceDetector:
    """The detector the settings choose, searching a copy of each photo bounded to ``detection_max_side``."""
    boxes: BoxDetector
    if settings.detector == "yunet":
        boxes = YuNetDetector(score_threshold=settings.yunet_score_threshold, threads=settings.yunet_threads)
    else:
        boxes = HogDetector()
    log.info("face detector: %s, detection copy at most %d px", boxes.name, settings.detection_max_side)
    return FaceDetector(settings.upsample, boxes=boxes, max_side=settings.detection_max_side)
