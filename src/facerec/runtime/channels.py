"""Outbound gRPC channels between facerec services.

- Retries come from the channel's service config, per ``facerec.retry.SERVICE_RETRY_POLICY``: only UNAVAILABLE,
  at most 5 attempts, with backoff. Pass ``retry=False`` for a channel whose calls are not idempotent.
- The request id of the call being served is forwarded as ``x-request-id`` on every outgoing call, and its trace
  context as W3C ``traceparent`` when the call is traced (``facerec.runtime.tracing``).
- Deadlines: :func:`deadline_from` turns the remaining time of the incoming call into the outgoing timeout.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import grpc

from facerec.retry import RECONNECT_OPTIONS, SERVICE_RETRY_POLICY
from facerec.runtime.context import REQUEST_ID_HEADER, request_id
from facerec.runtime.tracing import trace_headers

# Every call of a service-to-service channel opened with retries is idempotent (see ``open_channel``).
RETRY_SERVICE_CONFIG = SERVICE_RETRY_POLICY.service_config()


def _with_request_id(metadata: Any) -> list[tuple[str, str | bytes]]:
    entries = [(k, v) for k, v in (metadata or ()) if k != REQUEST_ID_HEADER]
    rid = request_id.get()
    if rid:
        entries.append((REQUEST_ID_HEADER, rid))
    entries.extend(trace_headers())
    return entries


class _RequestIdInterceptor(
    grpc.aio.UnaryUnaryClientInterceptor,
    grpc.aio.UnaryStreamClientInterceptor,
    grpc.aio.StreamUnaryClientInterceptor,
    grpc.aio.StreamStreamClientInterceptor,
):
    """Adds the current request id to every outgoing call's metadata."""

    @staticmethod
    def _details(details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        return grpc.aio.ClientCallDetails(
            method=details.method,
            timeout=details.timeout,
            metadata=grpc.aio.Metadata(*_with_request_id(details.metadata)),
            credentials=details.credentials,
            wait_for_ready=details.wait_for_ready,
        )

    async def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)

    async def intercept_unary_stream(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)

    async def intercept_stream_unary(self, continuation: Callable[..., Any], details: Any, requests: Any) -> Any:
        return await continuation(self._details(details), requests)

    async def intercept_stream_stream(self, continuation: Callable[..., Any], details: Any, requests: Any) -> Any:
        return await continuation(self._details(details), requests)


def open_channel(address: str, *, max_message_bytes: int, retry: bool = True) -> grpc.aio.Channel:
    """An aio channel to another facerec service (plaintext; TLS terminates at the mesh or ingress)."""
    options = service_channel_options(max_message_bytes=max_message_bytes, retry=retry)
    return grpc.aio.insecure_channel(address, options=options, interceptors=[_RequestIdInterceptor()])


def service_channel_options(*, max_message_bytes: int, retry: bool = True) -> list[tuple[str, Any]]:
    """The options of a channel between services: message limits, retries, keepalive, reconnecting."""
    options: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.enable_retries", 1 if retry else 0),
        # gRPC only retries calls whose request fits its retry buffer (256 KiB by default): photos are larger.
        ("grpc.per_rpc_retry_buffer_size", max_message_bytes),
        ("grpc.keepalive_time_ms", 30_000),
        *RECONNECT_OPTIONS,  # after a dependency restarts, reconnect within a second
    ]
    if retry:
        options.append(("grpc.service_config", json.dumps(RETRY_SERVICE_CONFIG)))
    return options


def deadline_from(
    context: grpc.aio.ServicerContext[Any, Any] | None, default_s: float, reserve_s: float = 0.0
) -> float:
    """Timeout for an outgoing call: what is left of the incoming call's deadline, less ``reserve_s`` kept for the
    caller's own work, or ``default_s`` when the caller set no deadline. Never negative."""
    remaining = context.time_remaining() if context is not None else None
    if remaining is None:
        return default_s
    return max(0.0, remaining - reserve_s)
