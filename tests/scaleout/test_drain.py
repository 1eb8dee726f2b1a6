"""A drain with ``shutdown_delay_s``: after SIGTERM the service keeps serving for the delay while its health
answers NOT_SERVING (instead of refusing the check), then refuses new calls and drains as before.

gRPC stops answering every call, health checks included, once the server's own shutdown begins (a health check
during the grace period is refused, measured: UNAVAILABLE); the delay is the time before it, when health can say
NOT_SERVING and a load balancer or a client that watches health moves away while calls still succeed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from facerec.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from facerec.runtime.server import ServiceRunner
from tests.runtime.conftest import probe_settings
from tests.runtime.probe import ProbeApp
from tests.runtime.test_console_scripts import start_console_script

SERVING = health_pb2.HealthCheckResponse.SERVING
DELAY_S = 1.0


async def answer(address: str) -> str:
    """What the server's health says now, or the code it refuses the check with."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
        except grpc.aio.AioRpcError as error:
            return error.code().name
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


async def until_serving(address: str, timeout_s: float = 30.0) -> None:
    for _ in range(round(timeout_s / 0.05)):
        if await answer(address) == "SERVING":
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{address} never answered SERVING")


async def model_call(address: str) -> str:
    async with grpc.aio.insecure_channel(address, options=[("grpc.enable_retries", 0)]) as channel:
        try:
            await embedder_pb2_grpc.EmbedderStub(channel).GetModel(embedder_pb2.GetModelRequest(), timeout=1)
        except grpc.aio.AioRpcError as error:
            return error.code().name
    return "OK"


async def test_during_the_shutdown_delay_health_answers_not_serving_and_calls_are_still_served() -> None:
    app = ProbeApp()
    app.is_ready = True
    runner = ServiceRunner(app, probe_settings())
    await runner.start()
    await until_serving(runner.address)
    stopping = asyncio.create_task(runner.stop(delay_s=DELAY_S))
    await asyncio.sleep(DELAY_S / 4)
    during = (await answer(runner.address), await model_call(runner.address))
    await stopping
    after = (await answer(runner.address), await model_call(runner.address))
    assert during == ("NOT_SERVING", "OK")
    assert after == ("UNAVAILABLE", "UNAVAILABLE")


@pytest.mark.timeout(60)
def test_a_service_signalled_with_a_shutdown_delay_says_not_serving_for_the_delay_then_exits_0(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "FACEREC_REGISTRY_PORT": "0",
        "FACEREC_REGISTRY_METRICS_PORT": "0",
        "FACEREC_REGISTRY_LOG_FORMAT": "json",
        "FACEREC_REGISTRY_DATA_DIR": str(tmp_path / "registry"),
        "FACEREC_REGISTRY_HEALTH_INTERVAL_S": "0.1",
        "FACEREC_REGISTRY_SHUTDOWN_DELAY_S": str(DELAY_S),
    }
    script = Path(sys.executable).parent / "facerec-registry"
    process, address = start_console_script(script, env, tmp_path / "registry.log")
    try:

        async def scenario() -> tuple[list[str], float]:
            await until_serving(address)
            signalled = time.monotonic()
            process.send_signal(signal.SIGTERM)
            seen = []
            while time.monotonic() - signalled < DELAY_S * 0.8:
                await asyncio.sleep(0.1)
                seen.append(await answer(address))
            exit_code = await asyncio.to_thread(process.wait, 30)
            assert exit_code == 0
            return seen, time.monotonic() - signalled

        seen, exited_after_s = asyncio.run(scenario())
    finally:
        if process.poll() is None:
            process.kill()
    print(f"\nshutdown delay {DELAY_S} s: health during it {sorted(set(seen))}, exited after {exited_after_s:.2f} s")
    assert set(seen[1:]) == {"NOT_SERVING"}  # the first check may come before the signal handler ran
    assert exited_after_s >= DELAY_S
