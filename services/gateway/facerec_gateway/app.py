"""The gateway process: the public API over the embedder and the registry."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from facerec.embedder.v1 import embedder_pb2
from facerec.registry.v1 import registry_pb2
from facerec.runtime import tls
from facerec.runtime.deadlines import Deadline
from facerec.runtime.server import Dependency, ServiceBinding
from facerec.v1 import facerec_pb2, facerec_pb2_grpc
from facerec_gateway.auth import ApiKeys
from facerec_gateway.clients import EmbedderClient, RegistryClient
from facerec_gateway.enrollment import QualityPolicy
from facerec_gateway.policy import RecognitionPolicy
from facerec_gateway.recognition import FaceRecognition
from facerec_gateway.servicer import FaceRecognitionServicer
from facerec_gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

# The names under which the gateway's health reports its dependencies: their own gRPC service names.
EMBEDDER_SERVICE: str = embedder_pb2.DESCRIPTOR.services_by_name["Embedder"].full_name
REGISTRY_SERVICE: str = registry_pb2.DESCRIPTOR.services_by_name["Registry"].full_name


def quality_policy(settings: GatewaySettings) -> QualityPolicy:
    """The enrollment gates the settings ask for (also what a benchmark expects the gateway to accept)."""
    return QualityPolicy(settings.min_face_size_px, settings.min_sharpness, settings.min_frontality)


class GatewayApp:
    """Serves facerec.v1.FaceRecognition (the public API) over the embedder and the registry.

    Its health ("" and its own service name) says whether the gateway itself can serve: SERVING once it runs
    with its keys loaded, whatever its dependencies; a load balancer keeps sending it the calls that need only
    the one still up (Detect without the registry, listing and erasure without the embedder). Each dependency's
    state is in the same health service under the dependency's own name.
    """

    name = "gateway"

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.keys = ApiKeys.load(settings.api_keys_file, settings.api_keys)
        if not len(self.keys):
            log.warning("no API key is configured: every call will be refused with UNAUTHENTICATED")
        credentials = tls.channel_credentials(settings)  # None: plaintext to the embedder and registry
        self.embedder = EmbedderClient(settings.embedder_address, settings.max_message_bytes, credentials)
        self.registry = RegistryClient(settings.registry_address, settings.max_message_bytes, credentials)
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
        """Always: the keys were loaded by the constructor (which fails otherwise), the rest is the server's."""
        return True

    def dependencies(self) -> Sequence[Dependency]:
        return [
            Dependency("embedder", EMBEDDER_SERVICE, self._embedder_up),
            Dependency("registry", REGISTRY_SERVICE, self.registry.serving),
        ]

    async def _embedder_up(self) -> bool:
        """Whether the embedder can serve; its model is then asked once, before the first call needs it."""
        if not await self.embedder.serving():
            return False
        await self.recognition.collections.model(Deadline.after(5.0))
        return True

    async def close(self) -> None:
        await self.embedder.close()
        await self.registry.close()
