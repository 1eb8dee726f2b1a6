"""The three real services in-process, each with its own /metrics endpoint (and tracing when asked), and an
Identify sent with a request id of the test's choosing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc

from facerec.runtime.net import free_port
from facerec.runtime.server import ServiceRunner
from facerec.sdk import AsyncClient
from facerec.v1 import facerec_pb2, facerec_pb2_grpc
from facerec_embedder.app import EmbedderApp
from facerec_embedder.settings import EmbedderSettings
from facerec_gateway.app import GatewayApp
from facerec_registry.app import RegistryApp
from facerec_registry.settings import RegistrySettings
from tests.fixtures.stack import ALPHA_KEY, QUICK, Stack, gateway_settings, start, wait_serving

COLLECTION = "observed"


@dataclass
class ObservedStack(Stack):
    """The stack and the URL of each service's /metrics."""

    metrics_urls: dict[str, str]

    async def identify(self, photo: bytes, rid: str) -> facerec_pb2.IdentifyResponse:
        """One Identify of ``photo`` in :data:`COLLECTION`, sent with ``x-request-id: rid``."""
        metadata = (("authorization", f"Bearer {ALPHA_KEY}"), ("x-request-id", rid))
        async with grpc.aio.insecure_channel(self.gateway.address) as channel:
            stub = facerec_pb2_grpc.FaceRecognitionStub(channel)
            request = facerec_pb2.IdentifyRequest(collection=COLLECTION, image=photo)
            response: facerec_pb2.IdentifyResponse = await stub.Identify(request, timeout=60, metadata=metadata)
            return response


def _observed(tracing: str) -> dict[str, object]:
    return {**QUICK, "metrics_port": free_port(), "tracing": tracing}


@asynccontextmanager
async def observed_stack(
    triton_url: str, data_dir: Path, enrolled: dict[str, Path], tracing: str = "off"
) -> AsyncIterator[ObservedStack]:
    """Registry, embedder and gateway with metrics endpoints (and ``tracing``), with ``enrolled`` people (person id
    -> photo) in :data:`COLLECTION`."""
    registry_settings = RegistrySettings(**_observed(tracing), data_dir=data_dir)  # type: ignore[arg-type]
    embedder_settings = EmbedderSettings(**_observed(tracing), triton_url=triton_url)  # type: ignore[arg-type]
    registry = await start(RegistryApp(registry_settings), registry_settings)
    embedder = await start(EmbedderApp(embedder_settings), embedder_settings)
    runners: list[ServiceRunner] = [registry, embedder]
    try:
        await wait_serving(registry.address)
        await wait_serving(embedder.address)
        settings = gateway_settings(embedder.address, registry.address, **_observed(tracing))
        gateway = await start(GatewayApp(settings), settings)
        runners.append(gateway)
        await wait_serving(gateway.address)
        async with AsyncClient(gateway.address, ALPHA_KEY, timeout=60) as client:
            await client.create_collection(COLLECTION)
            for person_id, photo in enrolled.items():
                await client.enroll(person_id, photo, collection=COLLECTION)
        urls = {
            runner.app.name: f"http://127.0.0.1:{runner.settings.metrics_port}/metrics"
            for runner in (registry, embedder, gateway)
        }
        yield ObservedStack(registry, embedder, gateway, urls)
    finally:
        for runner in reversed(runners):
            await runner.stop(0)
