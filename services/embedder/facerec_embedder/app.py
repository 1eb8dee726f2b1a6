"""The embedder process: its gRPC services, resources and readiness, run by facerec.runtime."""

from __future__ import annotations

from collections.abc import Sequence

from facerec.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from facerec.runtime.server import ServiceBinding
from facerec_embedder.settings import EmbedderSettings


class EmbedderApp:
    """Serves Embedder; every RPC answers UNIMPLEMENTED until its feature lands."""

    name = "embedder"

    def __init__(self, settings: EmbedderSettings) -> None:
        self.settings = settings

    def bindings(self) -> Sequence[ServiceBinding]:
        return [
            ServiceBinding(
                embedder_pb2.DESCRIPTOR.services_by_name["Embedder"],
                embedder_pb2_grpc.EmbedderServicer(),  # type: ignore[abstract]
                embedder_pb2_grpc.add_EmbedderServicer_to_server,
            )
        ]

    async def start(self) -> None:
        return None

    async def ready(self) -> bool:
        return True

    async def close(self) -> None:
        return None
