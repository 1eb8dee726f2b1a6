"""The registry process: its gRPC services, resources and readiness, run by facerec.runtime."""

from __future__ import annotations

from collections.abc import Sequence

from facerec.registry.v1 import registry_pb2, registry_pb2_grpc
from facerec.runtime.server import ServiceBinding
from facerec_registry.settings import RegistrySettings


class RegistryApp:
    """Serves Registry; every RPC answers UNIMPLEMENTED until its feature lands."""

    name = "registry"

    def __init__(self, settings: RegistrySettings) -> None:
        self.settings = settings

    def bindings(self) -> Sequence[ServiceBinding]:
        return [
            ServiceBinding(
                registry_pb2.DESCRIPTOR.services_by_name["Registry"],
                registry_pb2_grpc.RegistryServicer(),  # type: ignore[abstract]
                registry_pb2_grpc.add_RegistryServicer_to_server,
            )
        ]

    async def start(self) -> None:
        return None

    async def ready(self) -> bool:
        return True

    async def close(self) -> None:
        return None
