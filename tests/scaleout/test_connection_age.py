"""The servers' maximum connection age: connections end (GOAWAY), calls in flight finish within the grace, and the
services' channels reconnect without failing a call.

A real facerec server (``ServiceRunner``: our server factory, interceptors and options) whose one method takes
the time the test asks for; the clients are the services' own channels (``open_channel``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
import pytest

from facerec.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from facerec.runtime.channels import open_channel
from facerec.runtime.server import ServiceBinding, ServiceRunner, grpc_options
from facerec.runtime.settings import ServiceSettings

AGE_S = 0.5


class Slow(embedder_pb2_grpc.EmbedderServicer):
    """GetModel sleeps ``model_id`` seconds (a number) and answers with the client's address as the server saw it."""

    async def GetModel(self, request: embedder_pb2.GetModelRequest, context: Any) -> embedder_pb2.ModelInfo:
        await asyncio.sleep(float(request_delay(context)))
        return embedder_pb2.ModelInfo(model_id=context.peer())

    async def EmbedPhoto(self, request: embedder_pb2.EmbedPhotoRequest, context: Any) -> Any:
        raise NotImplementedError

    async def EmbedChips(self, request: embedder_pb2.EmbedChipsRequest, context: Any) -> Any:
        raise NotImplementedError


def request_delay(context: Any) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "x-delay-s":
            return str(value)
    return "0"


class SlowApp:
    name = "slow"

    def bindings(self) -> Sequence[ServiceBinding]:
        descriptor = embedder_pb2.DESCRIPTOR.services_by_name["Embedder"]
        return [ServiceBinding(descriptor, Slow(), embedder_pb2_grpc.add_EmbedderServicer_to_server)]

    async def start(self) -> None:
        return None

    async def ready(self) -> bool:
        return True

    async def close(self) -> None:
        return None


def aged_settings(grace_s: float | None) -> ServiceSettings:
    return ServiceSettings(
        port=0, metrics_port=0, max_connection_age_s=AGE_S, max_connection_age_grace_s=grace_s, log_format="text"
    )


@pytest.fixture
async def server(request: pytest.FixtureRequest) -> AsyncIterator[ServiceRunner]:
    runner = ServiceRunner(SlowApp(), aged_settings(getattr(request, "param", 3.0)))
    await runner.start()
    yield runner
    await runner.stop(0)


async def get_model(channel: grpc.aio.Channel, delay_s: float = 0.0) -> str:
    stub = embedder_pb2_grpc.EmbedderStub(channel)
    request = embedder_pb2.GetModelRequest()
    answer = await stub.GetModel(request, timeout=10, metadata=(("x-delay-s", str(delay_s)),))
    return str(answer.model_id)


def test_the_age_and_its_grace_become_grpc_options_and_0_turns_the_age_off() -> None:
    options = dict(grpc_options(aged_settings(2.5)))
    assert (options["grpc.max_connection_age_ms"], options["grpc.max_connection_age_grace_ms"]) == (500, 2500)
    assert "grpc.max_connection_age_grace_ms" not in dict(grpc_options(aged_settings(None)))  # gRPC: unlimited
    off = ServiceSettings(max_connection_age_s=0)
    assert "grpc.max_connection_age_ms" not in dict(grpc_options(off))


def test_every_service_ends_connections_after_30_s_with_10_s_of_grace_and_the_gateway_never_cuts_a_stream() -> None:
    from facerec_embedder.settings import EmbedderSettings
    from facerec_gateway.settings import GatewaySettings
    from facerec_registry.settings import RegistrySettings

    for settings in (EmbedderSettings(), RegistrySettings()):
        assert (settings.max_connection_age_s, settings.max_connection_age_grace_s) == (30.0, 10.0)
    gateway = GatewaySettings()
    assert (gateway.max_connection_age_s, gateway.max_connection_age_grace_s) == (30.0, None)


async def test_a_call_in_flight_when_its_connection_ages_out_finishes_within_the_grace(server: ServiceRunner) -> None:
    async with open_channel(server.address, max_message_bytes=1 << 20) as channel:
        first = await get_model(channel)
        started = time.monotonic()
        # Sent at once on the connection just opened: in flight when the age (0.45-0.55 s) ends it.
        peer_of_slow_call = await get_model(channel, delay_s=1.5)
        assert time.monotonic() - started >= 1.5
        later = await get_model(channel)
    assert peer_of_slow_call == first  # it ran on the aged connection to its end
    assert later != first  # the channel had reconnected (another client port), and the call did not fail


@pytest.mark.parametrize("server", [0.2], indirect=True)
async def test_the_grace_is_what_lets_it_finish_past_the_grace_the_connection_is_closed(server: ServiceRunner) -> None:
    async with open_channel(server.address, max_message_bytes=1 << 20) as channel:
        await get_model(channel)
        with pytest.raises(grpc.aio.AioRpcError) as cut:
            await get_model(channel, delay_s=2.0)  # outlives age + grace (0.7 s)
    assert cut.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_calls_keep_succeeding_across_many_connection_ages(server: ServiceRunner) -> None:
    peers: set[str] = set()
    failures: list[str] = []
    async with open_channel(server.address, max_message_bytes=1 << 20) as channel:

        async def caller() -> None:
            deadline = time.monotonic() + 6 * AGE_S
            while time.monotonic() < deadline:
                try:
                    peers.add(await get_model(channel, delay_s=0.02))
                except grpc.aio.AioRpcError as error:
                    failures.append(f"{error.code().name}: {error.details()}")

        await asyncio.gather(*(caller() for _ in range(4)))
    print(f"\n{6 * AGE_S:.0f} s of calls: {len(peers)} connections, {len(failures)} failed")
    assert not failures, failures[:3]
    assert len(peers) >= 4  # the connection was replaced again and again
