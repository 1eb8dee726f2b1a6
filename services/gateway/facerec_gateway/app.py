"""The gateway process: its gRPC services, resources and readiness, run by facerec.runtime."""

from __future__ import annotations

from collections.abc import Sequence

from facerec.runtime.server import ServiceBinding
from facerec.v1 import facerec_pb2, facerec_pb2_grpc
from facerec_gateway.settings import GatewaySettings


class GatewayApp:
    """Serves FaceRecognition; every RPC answers UNIMPLEMENTED until its feature lands."""

    name = "gateway"

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings

    def bindings(self) -> Sequence[ServiceBinding]:
        return [
            ServiceBinding(
                facerec_pb2.DESCRIPTOR.services_by_name["FaceRecognition"],
                facerec_pb2_grpc.FaceRecognitionServicer(),  # type: ignore[abstract]
                facerec_pb2_grpc.add_FaceRecognitionServicer_to_server,
            )
        ]

    async def start(self) -> None:
        return None

    async def ready(self) -> bool:
        return True

    async def close(self) -> None:
        return None
