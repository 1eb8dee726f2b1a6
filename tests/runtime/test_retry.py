"""The retry policy as gRPC applies it: a real aio server that refuses the first attempts, real channels."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from facerec.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from facerec.runtime.channels import open_channel, service_channel_options


class Flaky(embedder_pb2_grpc.EmbedderServicer):
    """Answers ``code`` to the first ``failures`` calls, then succeeds; counts every attempt."""

    def __init__(self) -> None:
        self.failures = 0
        self.code = grpc.StatusCode.UNAVAILABLE
        self.attempts = 0

    async def GetModel(self, request: embedder_pb2.GetModelRequest, context: Any) -> embedder_pb2.ModelInfo:
        self.attempts += 1
        if self.attempts <= self.failures:
            await context.abort(self.code, "not now")
        return embedder_pb2.ModelInfo(model_id="ok")

    async def EmbedPhoto(
        self, request: embedder_pb2.EmbedPhotoRequest, context: Any
    ) -> embedder_pb2.EmbedPhotoResponse:
        raise NotImplementedError

    async def EmbedChips(
        self, request: embedder_pb2.EmbedChipsRequest, context: Any
    ) -> embedder_pb2.EmbedChipsResponse:
        raise NotImplementedError


@pytest.fixture
async def flaky() -> AsyncIterator[tuple[Flaky, str]]:
    servicer = Flaky()
    server = grpc.aio.server()
    embedder_pb2_grpc.add_EmbedderServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield servicer, f"127.0.0.1:{port}"
    await server.stop(None)


async def _get_model(address: str, retry: bool = True) -> str:
    async with open_channel(address, max_message_bytes=1 << 20, retry=retry) as channel:
        answer = await embedder_pb2_grpc.EmbedderStub(channel).GetModel(embedder_pb2.GetModelRequest(), timeout=10)
    return answer.model_id


async def test_unavailable_is_retried_until_an_attempt_succeeds(flaky: tuple[Flaky, str]) -> None:
    servicer, address = flaky
    servicer.failures = 3

    assert await _get_model(address) == "ok"
    assert servicer.attempts == 4


async def test_retries_stop_after_5_attempts(flaky: tuple[Flaky, str]) -> None:
    servicer, address = flaky
    servicer.failures = 10

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _get_model(address)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert servicer.attempts == 5


async def test_other_codes_are_not_retried(flaky: tuple[Flaky, str]) -> None:
    servicer, address = flaky
    servicer.failures, servicer.code = 1, grpc.StatusCode.INTERNAL

    with pytest.raises(grpc.aio.AioRpcError):
        await _get_model(address)
    assert servicer.attempts == 1


async def test_a_channel_without_retries_tries_once(flaky: tuple[Flaky, str]) -> None:
    servicer, address = flaky
    servicer.failures = 1

    with pytest.raises(grpc.aio.AioRpcError):
        await _get_model(address, retry=False)
    assert servicer.attempts == 1


def test_the_sdk_and_the_services_reconnect_with_the_one_policy_capped_at_a_second() -> None:
    from facerec.retry import RECONNECT_OPTIONS
    from facerec.sdk.channel import channel_options

    sdk = dict(channel_options())
    reconnect = dict(RECONNECT_OPTIONS)
    assert reconnect["grpc.max_reconnect_backoff_ms"] <= 1000
    assert {name: sdk[name] for name in reconnect} == reconnect
    services = dict(service_channel_options(max_message_bytes=1024))
    assert {name: services[name] for name in reconnect} == reconnect
