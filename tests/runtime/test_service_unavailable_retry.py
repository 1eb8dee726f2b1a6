"""An UNAVAILABLE answered by a service itself (not a refused connection) is retried by the services' channels, so
another replica can serve the call; the request id still comes back, in the trailers of every call."""

from __future__ import annotations

import grpc
import pytest

from facerec.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from facerec.runtime.channels import open_channel
from facerec.runtime.server import ServiceRunner
from tests.runtime.probe import ProbeApp


async def test_a_service_answering_unavailable_is_tried_again_by_the_channel(
    probe: tuple[ProbeApp, ServiceRunner, grpc.aio.Channel],
) -> None:
    app, runner, _channel = probe
    app.unavailable_calls = 2
    async with open_channel(runner.address, max_message_bytes=1 << 20) as channel:
        call = embedder_pb2_grpc.EmbedderStub(channel).GetModel(embedder_pb2.GetModelRequest(), timeout=10)
        response = await call
    # Three attempts reached the service: headers are not sent before the answer, so the call was not committed.
    assert len(app.seen_request_ids) == 3
    assert response.model_id == app.seen_request_ids[-1]
    assert ("x-request-id", response.model_id) in tuple(await call.initial_metadata())


async def test_an_error_carries_the_request_id_in_its_trailers(
    probe: tuple[ProbeApp, ServiceRunner, grpc.aio.Channel],
) -> None:
    app, _runner, channel = probe
    app.unavailable_calls = 1
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await embedder_pb2_grpc.EmbedderStub(channel).GetModel(
            embedder_pb2.GetModelRequest(), metadata=(("x-request-id", "req-failed"),), timeout=5
        )
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert ("x-request-id", "req-failed") in tuple(raised.value.trailing_metadata() or ())
