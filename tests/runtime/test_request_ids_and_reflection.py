"""Request ids are accepted, echoed and forwarded; reflection lists the services; metrics count calls."""

from __future__ import annotations

import asyncio
import urllib.request

import grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from facerec.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from facerec.runtime.net import free_port
from facerec.runtime.server import ServiceRunner
from tests.runtime.conftest import probe_settings
from tests.runtime.probe import ProbeApp


async def test_caller_request_id_is_used_and_echoed(probe) -> None:
    _app, _runner, channel = probe
    call = embedder_pb2_grpc.EmbedderStub(channel).GetModel(
        embedder_pb2.GetModelRequest(), metadata=(("x-request-id", "req-42"),), timeout=5
    )
    response = await call
    assert response.model_id == "req-42"
    assert ("x-request-id", "req-42") in tuple(await call.initial_metadata())


async def test_request_id_is_generated_when_the_caller_sends_none(probe) -> None:
    app, _runner, channel = probe
    response = await embedder_pb2_grpc.EmbedderStub(channel).GetModel(embedder_pb2.GetModelRequest(), timeout=5)
    assert len(response.model_id) == 32
    assert app.seen_request_ids == [response.model_id]


async def test_request_id_is_forwarded_to_downstream_services(probe) -> None:
    downstream_app, downstream, _channel = probe
    upstream_app = ProbeApp()
    upstream_app.forward_to = downstream.address
    upstream = ServiceRunner(upstream_app, probe_settings())
    await upstream.start()
    try:
        async with grpc.aio.insecure_channel(upstream.address) as channel:
            await embedder_pb2_grpc.EmbedderStub(channel).GetModel(
                embedder_pb2.GetModelRequest(), metadata=(("x-request-id", "trace-7"),), timeout=5
            )
    finally:
        await upstream.stop(0)
    assert upstream_app.seen_request_ids == ["trace-7"]
    assert downstream_app.seen_request_ids == ["trace-7"]


async def list_services(address: str) -> set[str]:
    """Service names listed by server reflection at ``address``."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        async for response in stub.ServerReflectionInfo(iter([request]), timeout=5):
            return {s.name for s in response.list_services_response.service}
    return set()


async def test_reflection_lists_the_service_health_and_reflection(probe) -> None:
    _app, runner, _channel = probe
    assert await list_services(runner.address) == {
        "facerec.embedder.v1.Embedder",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }


async def test_metrics_endpoint_counts_calls_by_method_and_status_code() -> None:
    runner = ServiceRunner(ProbeApp(), probe_settings(metrics_port=free_port()))
    await runner.start()
    try:
        async with grpc.aio.insecure_channel(runner.address) as channel:
            await embedder_pb2_grpc.EmbedderStub(channel).GetModel(embedder_pb2.GetModelRequest(), timeout=5)
        assert runner.metrics is not None
        text = await asyncio.to_thread(_fetch, f"http://127.0.0.1:{runner.metrics.port}/metrics")
    finally:
        await runner.stop(0)
    assert (
        'facerec_grpc_requests_total{code="OK",method="/facerec.embedder.v1.Embedder/GetModel",service="probe"}' in text
    )
    assert 'facerec_grpc_request_duration_seconds_bucket{le="0.001",method=' in text


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as page:
        return str(page.read().decode())
