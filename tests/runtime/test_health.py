"""grpc.health.v1 follows the service's readiness across start-up, dependency loss and shutdown."""

from __future__ import annotations

import asyncio

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from facerec.runtime.server import ServiceRunner
from tests.runtime.conftest import probe_settings
from tests.runtime.probe import ProbeApp

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def _status(channel: grpc.aio.Channel, service: str = "") -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
    return int(response.status)


async def _wait_for(channel: grpc.aio.Channel, status: int, service: str = "") -> None:
    for _ in range(100):
        if await _status(channel, service) == status:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"health of {service!r} never became {status}")


async def test_health_is_not_serving_until_dependencies_are_ready_then_serving() -> None:
    app = ProbeApp()
    runner = ServiceRunner(app, probe_settings())
    await runner.start()
    async with grpc.aio.insecure_channel(runner.address) as channel:
        assert await _status(channel) == NOT_SERVING
        assert await _status(channel, "facerec.embedder.v1.Embedder") == NOT_SERVING
        app.is_ready = True
        await _wait_for(channel, SERVING)
        assert await _status(channel, "facerec.embedder.v1.Embedder") == SERVING
    await runner.stop(0)


async def test_health_turns_not_serving_when_a_dependency_is_lost(probe) -> None:
    app, _runner, channel = probe
    app.is_ready = True
    await _wait_for(channel, SERVING)
    app.is_ready = False
    await _wait_for(channel, NOT_SERVING)


async def test_health_turns_not_serving_during_shutdown_while_calls_still_finish() -> None:
    app = ProbeApp()
    app.is_ready = True
    runner = ServiceRunner(app, probe_settings(grace_period_s=2.0))
    await runner.start()
    async with grpc.aio.insecure_channel(runner.address) as channel:
        await _wait_for(channel, SERVING)
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
        assert (await watch.read()).status == SERVING
        stopping = asyncio.create_task(runner.stop())
        assert (await watch.read()).status == NOT_SERVING
        await stopping
    assert app.closed


async def test_liveness_stays_serving_while_dependencies_are_down(probe) -> None:
    app, _runner, channel = probe
    app.is_ready = False
    await _wait_for(channel, NOT_SERVING)
    assert await _status(channel, "liveness") == SERVING


async def test_unknown_service_name_is_not_found(probe) -> None:
    _app, _runner, channel = probe
    try:
        await _status(channel, "no.such.Service")
    except grpc.aio.AioRpcError as error:
        assert error.code() == grpc.StatusCode.NOT_FOUND
    else:
        raise AssertionError("health answered for an unknown service")
