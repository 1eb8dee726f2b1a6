"""``facerec health`` against a real grpc.aio server serving grpc-health-checking's own health servicer."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from facerec.cli import exit_codes
from facerec.cli.main import main

EMBEDDER = "facerec.embedder.v1.Embedder"


@pytest.fixture
async def health_server() -> AsyncIterator[tuple[str, health.aio.HealthServicer]]:
    servicer = health.aio.HealthServicer()
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}", servicer
    await server.stop(0)


async def facerec(*argv: str) -> int:
    # main() blocks; run it off the event loop that serves the health server.
    return await asyncio.to_thread(main, list(argv))


async def test_a_serving_server_exits_0(health_server, capsys: pytest.CaptureFixture[str]):
    address, _ = health_server
    assert await facerec("health", "--address", address) == exit_codes.OK
    assert "SERVING" in capsys.readouterr().out


async def test_a_serving_service_exits_0_with_json(health_server, capsys: pytest.CaptureFixture[str]):
    address, servicer = health_server
    await servicer.set(EMBEDDER, health_pb2.HealthCheckResponse.SERVING)
    assert await facerec("health", "--address", address, "--service", EMBEDDER, "--json") == exit_codes.OK
    assert json.loads(capsys.readouterr().out) == {"address": address, "service": EMBEDDER, "status": "SERVING"}


async def test_a_not_serving_service_exits_non_zero(health_server):
    address, servicer = health_server
    await servicer.set(EMBEDDER, health_pb2.HealthCheckResponse.NOT_SERVING)
    assert await facerec("health", "--address", address, "--service", EMBEDDER) == exit_codes.UNAVAILABLE


async def test_a_server_shutting_down_exits_non_zero(health_server):
    address, servicer = health_server
    await servicer.enter_graceful_shutdown()
    assert await facerec("health", "--address", address) == exit_codes.UNAVAILABLE


async def test_an_unknown_service_exits_not_found(health_server):
    address, _ = health_server
    assert await facerec("health", "--address", address, "--service", "no.such.Service") == exit_codes.NOT_FOUND


async def test_the_gateway_flag_is_the_default_address(health_server):
    address, _ = health_server
    assert await facerec("--gateway", address, "health") == exit_codes.OK


def test_nothing_listening_exits_non_zero_quickly(capsys: pytest.CaptureFixture[str]):
    started = time.monotonic()
    assert main(["health", "--address", "127.0.0.1:1"]) == exit_codes.UNAVAILABLE
    assert time.monotonic() - started < 2
    assert "UNAVAILABLE" in capsys.readouterr().err
