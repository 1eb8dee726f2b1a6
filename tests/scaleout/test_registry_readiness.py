"""The registry's readiness checks its store: the embedded one while it is open, a Qdrant server while it answers
(in bounded time).

No Qdrant server can run on this machine (no binary, no Docker daemon): where neither ``QDRANT_URL`` nor Docker
is there, the real-server test skips, and the registry's turns between ready and not ready are shown against an
endpoint that speaks Qdrant's gRPC health check (``qdrant.Qdrant/HealthCheck``) and lists no collection (what
the registry asks at start), served from qdrant-client's own generated services, started and stopped by the
test: the fault (a server that stops answering, then answers again) cannot be produced otherwise here.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import qdrant_client.grpc as qdrant_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from facerec.runtime.net import free_port
from facerec.runtime.server import LIVENESS, ServiceRunner
from facerec_registry.app import RegistryApp
from facerec_registry.readiness import READINESS_TIMEOUT_S
from facerec_registry.settings import RegistrySettings
from tests.registry.conftest import qdrant_server_url  # noqa: F401  (a fixture: a real server, or skip)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class QdrantHealth(qdrant_grpc.QdrantServicer):
    async def HealthCheck(self, request: Any, context: Any) -> Any:
        return qdrant_grpc.HealthCheckReply(title="qdrant - vector search engine", version="1.20.0")


class NoCollections(qdrant_grpc.CollectionsServicer):
    async def List(self, request: Any, context: Any) -> Any:
        return qdrant_grpc.ListCollectionsResponse()


class QdrantHealthEndpoint:
    """Qdrant's gRPC health check on a fixed loopback port, which the test can stop and start again."""

    def __init__(self) -> None:
        self.port = free_port()
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        self._server = grpc.aio.server()
        qdrant_grpc.add_QdrantServicer_to_server(QdrantHealth(), self._server)
        qdrant_grpc.add_CollectionsServicer_to_server(NoCollections(), self._server)
        self._server.add_insecure_port(f"127.0.0.1:{self.port}")
        await self._server.start()

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop(0)


def server_settings(grpc_port: int, **overrides: Any) -> RegistrySettings:
    values: dict[str, Any] = {
        **{"port": 0, "metrics_port": 0, "health_interval_s": 0.1, "log_format": "text"},
        **{"qdrant_url": f"http://127.0.0.1:{free_port()}", "qdrant_grpc_port": grpc_port},
    }
    return RegistrySettings(**{**values, **overrides})


async def status(address: str, service: str = "") -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return int((await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)).status)


async def wait_status(address: str, wanted: int, timeout_s: float = 10.0) -> float:
    started = time.monotonic()
    while await status(address) != wanted:
        assert time.monotonic() - started < timeout_s, f"the registry's health never became {wanted}"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


@pytest.fixture
async def endpoint() -> AsyncIterator[QdrantHealthEndpoint]:
    health = QdrantHealthEndpoint()
    await health.start()
    yield health
    await health.stop()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers (a hung server, or a firewall that drops)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield int(listener.getsockname()[1])


async def runner_for(settings: RegistrySettings) -> ServiceRunner:
    runner = ServiceRunner(RegistryApp(settings), settings)
    await runner.start()
    return runner


async def test_the_embedded_store_is_ready_while_it_is_open(tmp_path: Path) -> None:
    app = RegistryApp(RegistrySettings(port=0, metrics_port=0, data_dir=tmp_path / "registry"))
    assert await app.ready()
    await app.close()
    assert not await app.ready()


async def test_with_its_qdrant_server_unreachable_the_registry_is_not_serving_but_alive() -> None:
    runner = await runner_for(server_settings(free_port()))
    try:
        await asyncio.sleep(0.3)
        assert await status(runner.address) == NOT_SERVING
        assert await status(runner.address, LIVENESS) == SERVING
    finally:
        await runner.stop(0)


async def test_a_qdrant_server_that_never_answers_makes_it_not_ready_within_the_readiness_timeout(
    silent_port: int,
) -> None:
    app = RegistryApp(server_settings(silent_port))
    try:
        started = time.monotonic()
        assert not await app.ready()
        took_s = time.monotonic() - started
    finally:
        await app.close()
    print(f"\nsilent Qdrant server: not ready after {took_s:.2f} s")
    assert took_s <= READINESS_TIMEOUT_S + 0.5


async def test_the_registry_is_serving_while_its_qdrant_server_answers_and_not_while_it_does_not(
    endpoint: QdrantHealthEndpoint,
) -> None:
    runner = await runner_for(server_settings(endpoint.port))
    try:
        await wait_status(runner.address, SERVING)
        await endpoint.stop()
        down_s = await wait_status(runner.address, NOT_SERVING)
        await endpoint.start()
        back_s = await wait_status(runner.address, SERVING)
    finally:
        await runner.stop(0)
    print(f"\nQdrant stopped: NOT_SERVING after {down_s:.2f} s; back: SERVING after {back_s:.2f} s")
    assert down_s <= 1.0 and back_s <= 2.0


async def test_with_a_real_qdrant_server_the_registry_is_serving(qdrant_server_url: str) -> None:  # noqa: F811
    # As the registry's contract tests reach it: gRPC on Qdrant's own port, the API key from the environment.
    settings = server_settings(6334, qdrant_url=qdrant_server_url, qdrant_api_key=os.environ.get("QDRANT_API_KEY"))
    runner = await runner_for(settings)
    try:
        await wait_status(runner.address, SERVING)
    finally:
        await runner.stop(0)
