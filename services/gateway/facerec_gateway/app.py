"""The gateway process: the public API over the embedder and the registry."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from facerec.runtime.deadlines import Deadline
from facerec.runtime.server import ServiceBinding
from facerec.v1 import facerec_pb2, facerec_pb2_grpc
from facerec_gateway.auth import ApiKeys
from facerec_gateway.clients import EmbedderClient, RegistryClient
from facerec_gateway.enrollment import QualityPolicy
from facerec_gateway.policy import RecognitionPolicy
from facerec_gateway.recognition import FaceRecognition
from facerec_gateway.servicer import FaceRecognitionServicer
from facerec_gateway.settings import GatewaySettings

log = logging.getLogger(__name__)


def quality_policy(settings: GatewaySettings) -> QualityPolicy:
    """The enrollment gates the settings ask for (also what a benchmark expects the gateway to accept)."""
    return QualityPolicy(settings.min_face_size_px, settings.min_sharpness, settings.min_frontality)


class GatewayApp:
    """Serves facerec.v1.FaceRecognition (the public API); healthy while the embedder and registry are."""

    name = "gateway"

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.keys = ApiKeys.load(settings.api_keys_file, settings.api_keys)
        if not len(self.keys):
            log.warning("no API key is configured: every call will be refused with UNAUTHENTICATED")
        self.embedder = EmbedderClient(settings.embedder_address, settings.max_message_bytes)
        self.registry = RegistryClient(settings.registry_address, settings.max_message_bytes)
        self.recognition = FaceRecognition(
            self.embedder,
            self.registry,
            RecognitionPolicy(
                default_threshold=settings.default_threshold,
                default_collection=settings.default_collection,
                quality=quality_policy(settings),
                stream_message_timeout_s=settings.stream_message_timeout_s,
            ),
        )

    def bindings(self) -> Sequence[ServiceBinding]:
        servicer = FaceRecognitionServicer(self.recognition, self.keys, self.settings.downstream_timeout_s)
        return [
            ServiceBinding(
                facerec_pb2.DESCRIPTOR.services_by_name["FaceRecognition"],
                servicer,
                facerec_pb2_grpc.add_FaceRecognitionServicer_to_server,
            )
        ]

    async def start(self) -> None:
        return None

    async def ready(self) -> bool:
        embedder, registry = await asyncio.gather(self.embedder.serving(), self.registry.serving())
        if embedder and registry:
            await self.recognition.collections.model(Deadline.after(5.0))
        return embedder and registry

    async def close(self) -> None:
        await self.embedder.close()
        await self.registry.close()
