"""Optional OpenTelemetry traces: a span per incoming call, W3C ``traceparent`` over gRPC metadata, stage spans.

Off by default (``FACEREC_TRACING=off``). With ``FACEREC_TRACING=otlp`` a service exports its spans over OTLP/gRPC
to ``OTEL_EXPORTER_OTLP_ENDPOINT`` (the standard ``OTEL_*`` variables apply: endpoint, headers, sampler, resource
attributes). OpenTelemetry is imported only then, so a service with tracing off, and the client install, never
load it.

Each service that traces has its own tracer provider (resource ``service.name`` = ``facerec-<service>``), so three
services in one process (as in the tests) still report as three. While a call is served, the tracer of the
service serving it is held in a context variable: stage spans (:mod:`facerec.runtime.stages`) and outgoing
``traceparent`` headers (:mod:`facerec.runtime.channels`) follow it, and cost one context-variable read when
tracing is off.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Literal

import grpc

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Tracer

TracingMode = Literal["off", "otlp"]

# The tracer of the service serving the current call; None when tracing is off (or outside any call).
_tracer: ContextVar[Tracer | None] = ContextVar("facerec_tracer", default=None)
# Every provider this process made, so that tests (and a shutdown) can flush them all.
_providers: list[TracerProvider] = []


def current_tracer() -> Tracer | None:
    """The tracer of the service serving the current call, or None when it does not trace."""
    return _tracer.get()


def make_tracer(service: str, exporter: SpanExporter | None = None) -> Tracer:
    """A tracer of its own for ``service``, exporting over OTLP/gRPC in batches, or to ``exporter`` as each span
    ends (tests pass an in-memory one)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    # Explicit attributes win over OTEL_SERVICE_NAME, which one `facerec up` environment shares by all three.
    provider = TracerProvider(resource=Resource.create({"service.name": f"facerec-{service}"}))
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    _providers.append(provider)
    return provider.get_tracer("facerec.runtime")


def force_flush(timeout_s: float = 10.0) -> bool:
    """Export every span ended so far, in every provider of this process; False if one timed out."""
    return all([provider.force_flush(int(timeout_s * 1000)) for provider in _providers])


def shutdown() -> None:
    """Flush and close every provider of this process (a process that exits does this by itself)."""
    while _providers:
        _providers.pop().shutdown()


def trace_headers() -> list[tuple[str, str]]:
    """The W3C trace-context metadata (``traceparent``, ``tracestate``) of the current span, for an outgoing
    call; empty when the current call is not traced."""
    if _tracer.get() is None:
        return []
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return list(carrier.items())


def current_trace_id() -> str:
    """The current trace id (32 hex characters) for log lines, or "" when the current call is not traced."""
    if _tracer.get() is None:
        return ""
    from opentelemetry import trace

    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else ""


def annotate(key: str, value: str) -> None:
    """Set an attribute on the current span (e.g. the request id), when the current call is traced."""
    if _tracer.get() is None:
        return
    from opentelemetry import trace

    trace.get_current_span().set_attribute(key, value)


@contextmanager
def traced_by(tracer: Tracer) -> Iterator[None]:
    """Within the block, work is traced by ``tracer`` as if a traced call were being served (for work started
    outside a call, benchmarks and tests)."""
    token = _tracer.set(tracer)
    try:
        yield
    finally:
        _tracer.reset(token)


@contextmanager
def stage_span(tracer: Tracer, stage: str) -> Iterator[None]:
    """A child span of the current span around one stage of the work."""
    with tracer.start_as_current_span(stage):
        yield


def record_stage_span(tracer: Tracer, stage: str, seconds: float) -> None:
    """A child span of the current span for a stage timed elsewhere, ending now and lasting ``seconds``."""
    from opentelemetry import trace

    if not trace.get_current_span().get_span_context().is_valid:
        return  # work outside any traced call (e.g. a batch of several calls' faces) has no parent to join
    end = time.time_ns()
    span = tracer.start_span(stage, start_time=end - int(seconds * 1e9))
    span.end(end_time=end)


class ServerSpan:
    """The span of one incoming call: parent from the caller's ``traceparent``, status from the call's code."""

    def __init__(self, tracer: Tracer, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        self.tracer = tracer
        self.method = method
        self.context = context

    async def __aenter__(self) -> ServerSpan:
        from opentelemetry import context as otel_context
        from opentelemetry import trace

        parent = _incoming_context(self.context)
        self.span = self.tracer.start_span(
            self.method.lstrip("/"), context=parent, kind=trace.SpanKind.SERVER, attributes=_rpc_attributes(self.method)
        )
        self.context_token = otel_context.attach(trace.set_span_in_context(self.span, parent))
        self.tracer_token = _tracer.set(self.tracer)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        from opentelemetry import context as otel_context
        from opentelemetry.trace import Status, StatusCode

        code = _final_code(self.context, exc)
        self.span.set_attribute("rpc.grpc.status_code", code.value[0])
        if code != grpc.StatusCode.OK:
            self.span.set_status(Status(StatusCode.ERROR, code.name))
        self.span.end()
        _tracer.reset(self.tracer_token)
        otel_context.detach(self.context_token)
        return False


def _incoming_context(context: grpc.aio.ServicerContext[Any, Any]) -> Context:
    from opentelemetry import propagate

    carrier = {key: value for key, value in (context.invocation_metadata() or ()) if isinstance(value, str)}
    return propagate.extract(carrier)


def _rpc_attributes(method: str) -> dict[str, str]:
    service, _, name = method.lstrip("/").rpartition("/")
    return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}


def _final_code(context: grpc.aio.ServicerContext[Any, Any], exc: BaseException | None) -> grpc.StatusCode:
    if exc is not None and not isinstance(exc, Exception):
        return grpc.StatusCode.CANCELLED  # the caller went away, or the server is shutting down
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    return grpc.StatusCode.OK if exc is None else grpc.StatusCode.UNKNOWN
