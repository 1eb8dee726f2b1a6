"""API keys and tenants through the real gateway; dependencies that are down; deadlines."""

from __future__ import annotations

import time
import uuid

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from facerec.runtime.net import free_port
from facerec.runtime.server import ServiceRunner
from facerec.sdk import AsyncClient, DeadlineExceeded, NotFound, PermissionDenied, Unauthenticated, Unavailable
from facerec_gateway.app import EMBEDDER_SERVICE, GatewayApp
from tests.fixtures.stack import ALPHA_KEY, Stack, gateway_settings, wait_serving


@pytest.fixture
async def alpha_private(alpha: AsyncClient, samples_dir) -> str:
    name = f"alpha-{uuid.uuid4().hex[:8]}"
    await alpha.create_collection(name)
    await alpha.enroll("obama", samples_dir / "obama.jpg", collection=name)
    return name


async def test_call_without_a_key_is_unauthenticated(stack: Stack, samples_dir) -> None:
    async with AsyncClient(stack.gateway.address, None, timeout=30) as anonymous:
        with pytest.raises(Unauthenticated):
            await anonymous.identify(samples_dir / "obama.jpg")
    async with AsyncClient(stack.gateway.address, "not-a-key", timeout=30) as stranger:
        with pytest.raises(Unauthenticated):
            await stranger.list_collections()


async def test_tenant_cannot_read_identify_against_or_delete_in_another_tenants_collection(
    alpha: AsyncClient, beta: AsyncClient, alpha_private: str, samples_dir
) -> None:
    with pytest.raises(PermissionDenied):
        await beta.get_collection(alpha_private)
    with pytest.raises(PermissionDenied):
        await beta.list_people(collection=alpha_private)
    with pytest.raises(PermissionDenied):
        await beta.identify(samples_dir / "obama2.jpg", collection=alpha_private)
    with pytest.raises(PermissionDenied):
        await beta.delete_person("obama", collection=alpha_private)
    with pytest.raises(PermissionDenied):
        await beta.delete_collection(alpha_private)
    assert alpha_private not in {c.name for c in await beta.list_collections()}
    # Alpha's data is untouched.
    assert (await alpha.get_person("obama", collection=alpha_private)).face_count == 1


async def test_tenant_allowed_every_name_still_only_reaches_its_own_collections(
    alpha: AsyncClient, gamma: AsyncClient, alpha_private: str, samples_dir
) -> None:
    with pytest.raises(NotFound):
        await gamma.get_collection(alpha_private)
    with pytest.raises(NotFound):
        await gamma.delete_person("obama", collection=alpha_private)
    assert alpha_private not in {c.name for c in await gamma.list_collections()}
    assert alpha_private in {c.name for c in await alpha.list_collections()}


async def test_same_collection_name_in_two_tenants_holds_separate_people(alpha, beta, samples_dir) -> None:
    await beta.create_collection("beta-staff")
    await beta.enroll("biden", samples_dir / "biden.jpg", collection="beta-staff")
    await alpha.create_collection("beta-staff")
    result = await alpha.identify(samples_dir / "biden.jpg", collection="beta-staff")
    assert all(f.match is None and not f.candidates for f in result.faces)


async def test_dependency_down_is_unavailable_naming_it_within_the_deadline(stack: Stack, samples_dir) -> None:
    dead = f"127.0.0.1:{free_port()}"
    settings = gateway_settings(dead, stack.registry.address)
    gateway = ServiceRunner(GatewayApp(settings), settings)
    await gateway.start()
    try:
        async with grpc.aio.insecure_channel(gateway.address) as channel:
            # The gateway itself can serve (calls that need only the registry); the embedder is reported down.
            await wait_serving(gateway.address, timeout_s=5)
            stub = health_pb2_grpc.HealthStub(channel)
            embedder = await stub.Check(health_pb2.HealthCheckRequest(service=EMBEDDER_SERVICE), timeout=5)
            assert embedder.status == health_pb2.HealthCheckResponse.NOT_SERVING
        async with AsyncClient(gateway.address, ALPHA_KEY, timeout=5) as client:
            started = time.monotonic()
            with pytest.raises(Unavailable) as raised:
                await client.detect(samples_dir / "obama.jpg", timeout=5)
            assert time.monotonic() - started < 5
            assert "embedder" in raised.value.message
    finally:
        await gateway.stop(0)


async def test_registry_down_is_unavailable_naming_the_registry(stack: Stack, samples_dir) -> None:
    settings = gateway_settings(stack.embedder.address, f"127.0.0.1:{free_port()}")
    gateway = ServiceRunner(GatewayApp(settings), settings)
    await gateway.start()
    try:
        async with AsyncClient(gateway.address, ALPHA_KEY, timeout=5) as client:
            with pytest.raises(Unavailable) as raised:
                await client.identify(samples_dir / "obama.jpg", timeout=5)
            assert "registry" in raised.value.message
    finally:
        await gateway.stop(0)


async def test_a_deadline_too_short_for_the_work_is_deadline_exceeded(alpha, samples_dir) -> None:
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        await alpha.identify(samples_dir / "obama.jpg", timeout=0.02)
    assert time.monotonic() - started < 2


async def test_gateway_is_serving_while_its_dependencies_are(stack: Stack) -> None:
    async with grpc.aio.insecure_channel(stack.gateway.address) as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
