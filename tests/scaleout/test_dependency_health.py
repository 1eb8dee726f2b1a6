"""The gateway's health says whether the gateway can serve; each dependency's state shows under its own name and
in ``facerec_dependency_up``; while one is down, the calls that need it fail fast naming it and the others work.

The real parts: a registry (embedded store on ``tmp_path``) and an embedder (on the session's real Triton), each
in this process so that a test can stop it, and a gateway process (its console script: its metrics endpoint is
its own) in front of them, checking its dependencies every 0.2 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from facerec.runtime.net import free_port
from facerec.runtime.server import ServiceRunner
from facerec.sdk import AlreadyExists, AsyncClient
from facerec.v1 import facerec_pb2, facerec_pb2_grpc
from facerec_embedder.app import EmbedderApp
from facerec_embedder.settings import EmbedderSettings
from facerec_embedder.triton.launcher import TritonServer
from facerec_gateway.app import EMBEDDER_SERVICE, REGISTRY_SERVICE
from facerec_registry.app import RegistryApp
from facerec_registry.settings import RegistrySettings
from tests.fixtures.stack import ALPHA_KEY, API_KEYS, QUICK, start, wait_serving
from tests.scaleout.replicas import Replica, counter_value

pytestmark = pytest.mark.slow

GATEWAY = "facerec.v1.FaceRecognition"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
HEALTH_INTERVAL_S = 0.2
FAST_S = 2.0  # a call that needs a dependency that is down is refused within this (the inner retries: 0.75 s)
COLLECTION = "deps"


@dataclass
class Parts:
    """The registry and the embedder on fixed ports (a test may stop either: the next one finds it started again),
    and the gateway process in front of them for the whole module."""

    triton: TritonServer
    data_dir: Path
    registry_port: int
    embedder_port: int
    gateway: Replica
    registry: ServiceRunner | None = None
    embedder: ServiceRunner | None = None

    async def start_registry(self) -> None:
        settings = RegistrySettings(**{**QUICK, "port": self.registry_port}, data_dir=self.data_dir)  # type: ignore[arg-type]
        self.registry = await start(RegistryApp(settings), settings)
        await wait_serving(self.registry.address)

    async def start_embedder(self) -> None:
        settings = EmbedderSettings(**{**QUICK, "port": self.embedder_port}, triton_url=self.triton.grpc_url)  # type: ignore[arg-type]
        self.embedder = await start(EmbedderApp(settings), settings)
        await wait_serving(self.embedder.address)

    async def stop_registry(self) -> None:
        registry, self.registry = self.registry, None
        if registry is not None:
            await registry.stop(0)

    async def stop_embedder(self) -> None:
        embedder, self.embedder = self.embedder, None
        if embedder is not None:
            await embedder.stop(0)

    async def status(self, service: str = "") -> int:
        async with grpc.aio.insecure_channel(self.gateway.address) as channel:
            answer = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=2
            )
        return int(answer.status)

    async def wait_status(self, service: str, status: int, timeout_s: float = 5.0) -> float:
        """Seconds until the gateway's health answers ``status`` for ``service``."""
        started = time.monotonic()
        while (await self.status(service)) != status:
            assert time.monotonic() - started < timeout_s, f"{service} never became {status}"
            await asyncio.sleep(0.05)
        return time.monotonic() - started

    def dependency_up(self, dependency: str) -> int:
        url = f"http://127.0.0.1:{self.gateway.metrics_port}/metrics"
        return counter_value(url, "facerec_dependency_up", {"service": "gateway", "dependency": dependency})


@pytest.fixture(scope="module")
async def running(triton_server: TritonServer, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Parts]:
    folder = tmp_path_factory.mktemp("dependencies")
    registry_port, embedder_port = free_port(), free_port()
    env = {
        "EMBEDDER_ADDRESS": f"127.0.0.1:{embedder_port}",
        "REGISTRY_ADDRESS": f"127.0.0.1:{registry_port}",
        "API_KEYS": json.dumps(API_KEYS),
        "HEALTH_INTERVAL_S": str(HEALTH_INTERVAL_S),
        "GRACE_PERIOD_S": "1",
    }
    gateway = Replica("facerec-gateway", "127.0.0.1", free_port(), env, folder / "gateway.log")
    found = Parts(triton_server, folder / "registry", registry_port, embedder_port, gateway)
    try:
        await found.start_registry()
        await found.start_embedder()
        await asyncio.to_thread(gateway.start)
        yield found
    finally:
        gateway.kill()
        await found.stop_embedder()
        await found.stop_registry()


@pytest.fixture
async def parts(running: Parts, samples_dir: Path) -> Parts:
    """Everything up, the gateway's health saying so, and Obama enrolled in the test collection."""
    if running.registry is None:
        await running.start_registry()
    if running.embedder is None:
        await running.start_embedder()
    await running.wait_status(EMBEDDER_SERVICE, SERVING)
    await running.wait_status(REGISTRY_SERVICE, SERVING)
    async with AsyncClient(running.gateway.address, ALPHA_KEY, timeout=30) as client:
        with contextlib.suppress(AlreadyExists):
            await client.create_collection(COLLECTION)
        await client.enroll("obama", samples_dir / "obama.jpg", collection=COLLECTION)  # the same face id again
    return running


METADATA = (("authorization", f"Bearer {ALPHA_KEY}"),)


def raw_channel(parts: Parts) -> grpc.aio.Channel:
    """A channel to the gateway without retries: what the gateway answers is seen as it is. (aio: the registry
    and the embedder serve in this event loop.)"""
    return grpc.aio.insecure_channel(parts.gateway.address, options=[("grpc.enable_retries", 0)])


async def refused(call: Callable[..., Any], request: object) -> tuple[grpc.aio.AioRpcError, float]:
    """The error a call gets, and how long it took."""
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call(request, timeout=10, metadata=METADATA)
    return raised.value, time.monotonic() - started


async def test_the_gateway_reports_itself_and_each_dependency_under_its_own_name_and_in_a_metric(
    parts: Parts,
) -> None:
    assert await parts.status() == SERVING
    assert await parts.status(GATEWAY) == SERVING
    assert await parts.status(EMBEDDER_SERVICE) == SERVING
    assert await parts.status(REGISTRY_SERVICE) == SERVING
    assert (parts.dependency_up("embedder"), parts.dependency_up("registry")) == (1, 1)


async def test_with_the_embedder_down_the_gateway_stays_serving_and_reports_the_embedder_not_serving(
    parts: Parts,
) -> None:
    await parts.stop_embedder()
    noticed_s = await parts.wait_status(EMBEDDER_SERVICE, NOT_SERVING)
    print(f"\nembedder down: the gateway's health said so after {noticed_s:.2f} s")
    assert await parts.status() == SERVING
    assert await parts.status(GATEWAY) == SERVING
    assert await parts.status(REGISTRY_SERVICE) == SERVING
    assert (parts.dependency_up("embedder"), parts.dependency_up("registry")) == (0, 1)
    assert noticed_s <= 1.0 + 5 * HEALTH_INTERVAL_S


async def test_with_the_embedder_down_people_are_listed_and_erased_and_photo_calls_fail_fast_naming_it(
    parts: Parts, samples_dir: Path
) -> None:
    await parts.stop_embedder()
    await parts.wait_status(EMBEDDER_SERVICE, NOT_SERVING)
    photo = (samples_dir / "obama2.jpg").read_bytes()
    async with raw_channel(parts) as channel:
        stub = facerec_pb2_grpc.FaceRecognitionStub(channel)
        listing = facerec_pb2.ListPeopleRequest(collection=COLLECTION)
        people = await stub.ListPeople(listing, timeout=10, metadata=METADATA)
        error, took_s = await refused(stub.Identify, facerec_pb2.IdentifyRequest(collection=COLLECTION, image=photo))
        detect_error, detect_s = await refused(stub.Detect, facerec_pb2.DetectRequest(image=photo))
        erasure = facerec_pb2.DeletePersonRequest(collection=COLLECTION, person_id="obama")
        erased = await stub.DeletePerson(erasure, timeout=10, metadata=METADATA)
    print(f"\nembedder down: Identify refused after {took_s:.2f} s, Detect after {detect_s:.2f} s: {error.details()}")
    assert [p.person_id for p in people.people] == ["obama"]
    assert erased.faces_deleted == 1
    for failure, seconds in ((error, took_s), (detect_error, detect_s)):
        assert failure.code() == grpc.StatusCode.UNAVAILABLE
        assert (failure.details() or "").startswith("embedder is unavailable")
        assert seconds < FAST_S


async def test_with_the_registry_down_detect_works_and_identify_fails_fast_naming_it(
    parts: Parts, samples_dir: Path
) -> None:
    await parts.stop_registry()
    await parts.wait_status(REGISTRY_SERVICE, NOT_SERVING)
    assert await parts.status() == SERVING
    assert parts.dependency_up("registry") == 0
    photo = (samples_dir / "obama2.jpg").read_bytes()
    async with raw_channel(parts) as channel:
        stub = facerec_pb2_grpc.FaceRecognitionStub(channel)
        detected = await stub.Detect(facerec_pb2.DetectRequest(image=photo), timeout=10, metadata=METADATA)
        error, took_s = await refused(stub.Identify, facerec_pb2.IdentifyRequest(collection=COLLECTION, image=photo))
    assert len(detected.faces) == 1
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert (error.details() or "").startswith("registry is unavailable")
    assert took_s < FAST_S


async def test_an_embedder_back_on_its_address_is_serving_again_in_the_gateways_health(
    parts: Parts, samples_dir: Path
) -> None:
    await parts.stop_embedder()
    await parts.wait_status(EMBEDDER_SERVICE, NOT_SERVING)
    await parts.start_embedder()
    back_s = await parts.wait_status(EMBEDDER_SERVICE, SERVING)
    print(f"\nembedder back: SERVING in the gateway's health after {back_s:.2f} s")
    assert parts.dependency_up("embedder") == 1
    async with AsyncClient(parts.gateway.address, ALPHA_KEY, timeout=30) as client:
        result = await client.identify(samples_dir / "obama2.jpg", collection=COLLECTION)
    assert result.faces[0].match is not None and result.faces[0].match.person_id == "obama"
