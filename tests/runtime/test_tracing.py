"""Optional OpenTelemetry traces: off by default and not even imported; with ``FACEREC_TRACING=otlp`` a span per
call in each service, exported over OTLP/gRPC (here to a receiver on loopback), the trace context carried from
service to service as W3C ``traceparent``, and the stages as child spans."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from facerec.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from facerec.runtime import tracing
from facerec.runtime.logs import JsonFormatter
from facerec.runtime.server import ServiceRunner
from facerec.runtime.settings import ServiceSettings
from facerec_embedder.triton.launcher import TritonServer
from tests.paths import REPO_ROOT
from tests.runtime.conftest import probe_settings
from tests.runtime.observed_stack import ObservedStack, observed_stack
from tests.runtime.otlp_receiver import OtlpReceiver, ReceivedSpan, otlp_receiver
from tests.runtime.probe import FaceNotEnrolled, ProbeApp

GET_MODEL = "facerec.embedder.v1.Embedder/GetModel"
SERVER = 2  # opentelemetry.proto.trace.v1.Span.SPAN_KIND_SERVER
STATUS_ERROR = 2  # opentelemetry.proto.trace.v1.Status.STATUS_CODE_ERROR


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as running, pytest.MonkeyPatch.context() as env:
        env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", running.endpoint)
        yield running
        tracing.shutdown()


async def exported(receiver: OtlpReceiver) -> list[ReceivedSpan]:
    """Every span the services ended so far, once exported (the exporter works in batches, in its own thread)."""
    assert await asyncio.to_thread(tracing.force_flush)
    return receiver.spans()


async def traced_probe(**overrides: object) -> tuple[ProbeApp, ServiceRunner]:
    app = ProbeApp()
    runner = ServiceRunner(app, probe_settings(tracing="otlp", **overrides))
    await runner.start()
    return app, runner


async def get_model(address: str, metadata: tuple[tuple[str, str], ...] = ()) -> embedder_pb2.ModelInfo:
    async with grpc.aio.insecure_channel(address) as channel:
        reply: embedder_pb2.ModelInfo = await embedder_pb2_grpc.EmbedderStub(channel).GetModel(
            embedder_pb2.GetModelRequest(), timeout=10, metadata=metadata
        )
        return reply


def test_tracing_is_off_by_default_and_opentelemetry_is_not_loaded() -> None:
    assert ServiceSettings().tracing == "off"
    code = """
import asyncio, sys
import grpc
from facerec.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from facerec.runtime.server import ServiceRunner
from facerec.runtime.stages import StageTimer
from tests.runtime.conftest import probe_settings
from tests.runtime.probe import ProbeApp

async def main():
    runner = ServiceRunner(ProbeApp(), probe_settings())
    await runner.start()
    async with grpc.aio.insecure_channel(runner.address) as channel:
        await embedder_pb2_grpc.EmbedderStub(channel).GetModel(embedder_pb2.GetModelRequest(), timeout=10)
    with StageTimer("probe").time("decide"):
        pass
    await runner.stop(0)

asyncio.run(main())
print(sorted(name for name in sys.modules if name.startswith("opentelemetry")))
"""
    env = {"PATH": str(Path(sys.executable).parent), "FACEREC_TRACING": "off"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_the_tracing_setting_is_one_variable_for_every_service(monkeypatch: pytest.MonkeyPatch) -> None:
    from facerec_embedder.settings import EmbedderSettings
    from facerec_gateway.settings import GatewaySettings
    from facerec_registry.settings import RegistrySettings

    monkeypatch.setenv("FACEREC_TRACING", "otlp")
    assert [cls().tracing for cls in (GatewaySettings, EmbedderSettings, RegistrySettings)] == ["otlp"] * 3


async def test_a_call_forwarded_to_another_service_continues_the_callers_trace(receiver: OtlpReceiver) -> None:
    receiver.clear()
    _, back_runner = await traced_probe()
    front, front_runner = await traced_probe()
    front.forward_to = back_runner.address
    try:
        await get_model(front_runner.address, (("x-request-id", "rid-trace-1"),))
    finally:
        await front_runner.stop(0)
        await back_runner.stop(0)
    spans = [span for span in await exported(receiver) if span.attribute("facerec.request_id") == "rid-trace-1"]
    assert len(spans) == 2 and all(span.name == GET_MODEL and span.span.kind == SERVER for span in spans)
    outer, inner = sorted(spans, key=lambda span: span.span.start_time_unix_nano)
    assert inner.trace_id == outer.trace_id and inner.parent_id == outer.span_id and outer.parent_id == ""
    assert outer.service == "facerec-probe"
    assert (outer.attribute("rpc.system"), outer.attribute("rpc.method"), outer.attribute("rpc.grpc.status_code")) == (
        "grpc",
        "GetModel",
        0,
    )


async def test_the_span_of_a_call_joins_the_trace_its_caller_sent(receiver: OtlpReceiver) -> None:
    receiver.clear()
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    _, runner = await traced_probe()
    try:
        await get_model(runner.address, (("traceparent", f"00-{trace_id}-{parent_id}-01"),))
    finally:
        await runner.stop(0)
    (span,) = [span for span in await exported(receiver) if span.trace_id == trace_id]
    assert span.parent_id == parent_id


async def test_a_failed_call_is_an_error_span_with_its_status_code(receiver: OtlpReceiver) -> None:
    receiver.clear()
    app, runner = await traced_probe()
    app.raise_error = FaceNotEnrolled("no such face")
    try:
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await get_model(runner.address, (("x-request-id", "rid-trace-error"),))
    finally:
        await runner.stop(0)
    assert failure.value.code() == grpc.StatusCode.NOT_FOUND
    (span,) = [span for span in await exported(receiver) if span.attribute("facerec.request_id") == "rid-trace-error"]
    assert span.span.status.code == STATUS_ERROR and span.span.status.message == "NOT_FOUND"
    assert span.attribute("rpc.grpc.status_code") == grpc.StatusCode.NOT_FOUND.value[0]


async def test_log_lines_of_a_traced_call_carry_its_trace_id(receiver: OtlpReceiver) -> None:
    receiver.clear()
    lines: list[dict[str, object]] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(json.loads(JsonFormatter("probe").format(record)))

    access, handler = logging.getLogger("facerec.access"), Keep()
    level = access.level
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    _, runner = await traced_probe()
    try:
        await get_model(runner.address, (("x-request-id", "rid-trace-log"),))
    finally:
        await runner.stop(0)
        access.removeHandler(handler)
        access.setLevel(level)
    (span,) = [span for span in await exported(receiver) if span.attribute("facerec.request_id") == "rid-trace-log"]
    (line,) = [line for line in lines if line.get("request_id") == "rid-trace-log"]
    assert line["trace_id"] == span.trace_id


@pytest.fixture(scope="module")
async def traced_stack(
    receiver: OtlpReceiver, triton_server: TritonServer, samples_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ObservedStack]:
    data_dir = tmp_path_factory.mktemp("traced-registry")
    enrolled = {"obama": samples_dir / "obama.jpg"}
    async with observed_stack(triton_server.grpc_url, data_dir, enrolled, tracing="otlp") as stack:
        yield stack


@pytest.mark.slow
async def test_one_identify_is_one_trace_across_the_three_services_with_the_stages_inside(
    traced_stack: ObservedStack, receiver: OtlpReceiver, samples_dir: Path
) -> None:
    await exported(receiver)
    receiver.clear()
    response = await traced_stack.identify((samples_dir / "obama2.jpg").read_bytes(), "rid-trace-stack")
    assert [face.match.person_id for face in response.faces] == ["obama"]
    spans = await exported(receiver)
    (identify,) = [span for span in spans if span.name == "facerec.v1.FaceRecognition/Identify"]
    trace = [span for span in spans if span.trace_id == identify.trace_id]
    by_id = {span.span_id: span for span in trace}

    def children(parent: ReceivedSpan, service: str) -> set[str]:
        """The names of the spans ``service`` opened inside ``parent``."""
        return {span.name for span in trace if span.parent_id == parent.span_id and span.service == service}

    assert {span.service for span in trace} == {"facerec-gateway", "facerec-embedder", "facerec-registry"}
    assert identify.service == "facerec-gateway" and identify.parent_id == ""
    assert {"search", "decide", "facerec.embedder.v1.Embedder/EmbedPhoto"} <= {
        span.name for span in trace if span.parent_id == identify.span_id
    }
    (embed_photo,) = [span for span in trace if span.name == "facerec.embedder.v1.Embedder/EmbedPhoto"]
    assert embed_photo.service == "facerec-embedder" and embed_photo.parent_id == identify.span_id
    assert {"decode", "detect", "align", "embed"} <= children(embed_photo, "facerec-embedder")
    (registry_search,) = [span for span in trace if span.name == "facerec.registry.v1.Registry/Search"]
    gateway_search = by_id[registry_search.parent_id]
    assert (gateway_search.name, gateway_search.service) == ("search", "facerec-gateway")
    assert children(registry_search, "facerec-registry") == {"search"}
    assert all(span.attribute("facerec.request_id") == "rid-trace-stack" for span in trace if span.span.kind == SERVER)
