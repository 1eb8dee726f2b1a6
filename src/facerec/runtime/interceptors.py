"""Server interceptors: request ids, structured access logs, metrics, domain errors -> status codes, and traces.

:class:`ServiceInterceptor` wraps every method handler of the server (unary and streaming alike) so that servicers
stay thin: they raise :class:`~facerec.runtime.errors.FacerecError` subclasses and the interceptor answers with the
mapped status. With tracing on, :class:`TracingInterceptor` wraps it in a server span (see ``tracing.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import any_pb2
from google.rpc import status_pb2

from facerec.runtime import tracing
from facerec.runtime.context import REQUEST_ID_HEADER, new_request_id, request_id, valid_request_id
from facerec.runtime.errors import FacerecError, bounded_status, status_code_for, status_message
from facerec.runtime.metrics import IN_FLIGHT, observe_call

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

log = logging.getLogger("facerec.access")

STATUS_DETAILS_KEY = "grpc-status-details-bin"


def _incoming_request_id(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_HEADER and isinstance(value, str) and valid_request_id(value):
            return value
    return new_request_id()


def rich_status_metadata(error: FacerecError) -> tuple[tuple[str, bytes], ...]:
    """Trailing metadata carrying a ``google.rpc.Status`` with the error's details, when it has any."""
    if not error.details:
        return ()
    status = status_pb2.Status(code=status_code_for(error).value[0], message=error.message)
    for detail in error.details:
        packed = any_pb2.Any()
        packed.Pack(detail)
        status.details.append(packed)
    return ((STATUS_DETAILS_KEY, bounded_status(status)),)


# gRPC's server pushback (the retry design, A6): a negative delay tells the caller's channel not to retry.
NO_RETRY_PUSHBACK = ("grpc-retry-pushback-ms", "-1")


class _CallScope:
    """What happens around one call: request id, timing, the final status, logging and metrics."""

    def __init__(self, service: str, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        self.service = service
        self.method = method
        self.context = context
        self.code = grpc.StatusCode.OK
        self.request_id = _incoming_request_id(context)

    async def __aenter__(self) -> _CallScope:
        self.token = request_id.set(self.request_id)
        tracing.annotate("facerec.request_id", self.request_id)
        self.started = time.perf_counter()
        # The request id goes back in the trailers of every call, and in the initial metadata of a call that
        # answers (sent with its first response, see before_response). Sending initial metadata at the start
        # would commit the call: gRPC's channel retry (facerec.retry) never retries a call once headers arrived,
        # so a replica's UNAVAILABLE (e.g. an embedder whose Triton is down) would not be tried on another one.
        self.context.set_trailing_metadata(self._request_id_entry())
        self._headers_sent = False
        # Counted once the call is under way, so that __aexit__ (which uncounts it) always follows.
        self.in_flight = IN_FLIGHT.labels(self.service, self.method)
        self.in_flight.inc()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        try:
            if exc is None:
                code = self.context.code()
                self.code = code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.OK
            elif isinstance(exc, FacerecError):
                self.code = status_code_for(exc)
                self._finish()
                # A tuple: grpcio's abort refuses a list.
                metadata: tuple[tuple[str, str | bytes], ...] = (*rich_status_metadata(exc), *self._request_id_entry())
                if not exc.retryable_by_channel:
                    metadata = (*metadata, NO_RETRY_PUSHBACK)
                await self.context.abort(self.code, status_message(exc.message), metadata)
            elif isinstance(exc, grpc.aio.AbortError):
                code = self.context.code()
                self.code = code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN
            elif isinstance(exc, NotImplementedError):
                # The generated servicer bases raise this for RPCs a service does not implement (yet).
                self.code = grpc.StatusCode.UNIMPLEMENTED
                self._finish()
                await self.context.abort(
                    self.code, f"{self.method} is not implemented by this server", self._request_id_entry()
                )
            elif isinstance(exc, Exception):
                self.code = grpc.StatusCode.INTERNAL
                log.exception("unhandled error in %s", self.method)
                self._finish()
                await self.context.abort(
                    self.code, f"internal error (request id {self.request_id})", self._request_id_entry()
                )
            else:  # cancellation (client went away, or shutdown)
                self.code = grpc.StatusCode.CANCELLED
            self._finish()
            return False
        finally:
            self.in_flight.dec()
            request_id.reset(self.token)

    def _request_id_entry(self) -> tuple[tuple[str, str]]:
        return ((REQUEST_ID_HEADER, self.request_id),)

    async def before_response(self) -> None:
        """Echo the request id in the initial metadata, once, just before the call's first response."""
        if not self._headers_sent:
            self._headers_sent = True
            await self.context.send_initial_metadata(self._request_id_entry())

    def _finish(self) -> None:
        if getattr(self, "_finished", False):
            return
        self._finished = True
        elapsed = time.perf_counter() - self.started
        observe_call(self.service, self.method, self.code.name, elapsed)
        level = logging.INFO if self.code in (grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND) else logging.WARNING
        log.log(
            level,
            "%s %s",
            self.method,
            self.code.name,
            extra={"method": self.method, "code": self.code.name, "duration_ms": round(elapsed * 1000, 3)},
        )


Behavior = Callable[..., Any]
# What runs around one call of a method, given the call's context.
CallScope = Callable[[grpc.aio.ServicerContext[Any, Any]], AbstractAsyncContextManager[object]]


def server_interceptors(service: str, tracing_mode: tracing.TracingMode = "off") -> list[grpc.aio.ServerInterceptor]:
    """The interceptors of a service's server, outermost first: a span per call when tracing is on, then
    :class:`ServiceInterceptor`."""
    if tracing_mode == "off":
        return [ServiceInterceptor(service)]
    return [TracingInterceptor(tracing.make_tracer(service)), ServiceInterceptor(service)]


def observed_method(method: str) -> bool:
    """Whether calls of ``method`` are logged, measured and traced (health checks and reflection are not)."""
    return not (method.startswith("/grpc.health.") or method.startswith("/grpc.reflection."))


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every handler of the server in a :class:`_CallScope`."""

    def __init__(self, service: str) -> None:
        self.service = service

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        method = str(handler_call_details.method)
        if handler is None or not observed_method(method):
            return handler
        return wrap_handler(handler, lambda context: _CallScope(self.service, method, context))


class TracingInterceptor(grpc.aio.ServerInterceptor):
    """Opens a server span around every observed call; outermost, so the access log and the error mapping of
    :class:`ServiceInterceptor` run inside the span (the log lines carry its trace id)."""

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        method = str(handler_call_details.method)
        if handler is None or not observed_method(method):
            return handler
        return wrap_handler(handler, lambda context: tracing.ServerSpan(self.tracer, method, context))


async def _before_response(entered: object) -> None:
    """Let the scope act just before a response goes out (the call scope echoes the request id then)."""
    before_response = getattr(entered, "before_response", None)
    if before_response is not None:
        await before_response()


def wrap_handler(handler: grpc.RpcMethodHandler[Any, Any], scope: CallScope) -> grpc.RpcMethodHandler[Any, Any]:
    """The same handler with every call run inside ``scope(context)``."""
    # The stubs type handler behaviours as sync callables; on an aio server they are coroutine functions or
    # async generator functions.
    codec = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        inner_uu: Behavior = handler.unary_unary

        async def unary_unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            async with scope(context) as entered:
                response = await inner_uu(request, context)
                await _before_response(entered)
                return response

        return grpc.unary_unary_rpc_method_handler(unary_unary, **codec)
    if handler.stream_unary:
        inner_su: Behavior = handler.stream_unary

        async def stream_unary(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            async with scope(context) as entered:
                response = await inner_su(requests, context)
                await _before_response(entered)
                return response

        return grpc.stream_unary_rpc_method_handler(stream_unary, **codec)
    if handler.unary_stream:
        inner_us: Behavior = handler.unary_stream

        async def unary_stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            async with scope(context) as entered:
                async for response in inner_us(request, context):
                    await _before_response(entered)
                    yield response

        return grpc.unary_stream_rpc_method_handler(unary_stream, **codec)
    inner_ss: Behavior | None = handler.stream_stream
    assert inner_ss is not None, "a method handler has no behaviour"

    async def stream_stream(
        requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        async with scope(context) as entered:
            async for response in inner_ss(requests, context):
                await _before_response(entered)
                yield response

    return grpc.stream_stream_rpc_method_handler(stream_stream, **codec)
