"""Outbound gRPC channels between facerec services.

- Retries come from the channel's service config, per ``facerec.retry.SERVICE_RETRY_POLICY``: only UNAVAILABLE,
  at most 5 attempts, with backoff. Pass ``retry=False`` for a channel whose calls are not idempotent.
- The request id of the call being served is forwarded as ``x-request-id`` on every outgoing call, who it acts
  for as ``x-facerec-actor`` (when set: the gateway's caller, for the registry's audit record), and its trace
  context as W3C ``traceparent`` when the call is traced (``facerec.runtime.tracing``).
- Deadlines: :func:`deadline_from` turns the remaining time of the incoming call into the outgoing timeout.
- Balancing: calls go round-robin over every address the target resolves to, so ``dns:///embedder:50052`` (a
  Kubernetes headless Service) spreads them over all replicas; a plain ``host:port`` is the same resolver with one
  address. The name is resolved again whenever a connection ends (the servers' maximum connection age ends each
  one; see ``facerec.runtime.server``), at most once a second, so replicas added since get calls.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import grpc

from facerec.retry import RECONNECT_OPTIONS, SERVICE_RETRY_POLICY
from facerec.runtime.context import ACTOR_HEADER, REQUEST_ID_HEADER, actor, request_id
from facerec.runtime.tracing import trace_headers

# Every call of a service-to-service channel opened with retries is idempotent (see ``open_channel``).
RETRY_SERVICE_CONFIG = SERVICE_RETRY_POLICY.service_config()
# One connection per resolved address, calls spread over the ready ones in turn. (gRPC's default, pick_first, sends
# every call of a channel to one replica for the connection's whole life.)
ROUND_ROBIN: dict[str, Any] = {"loadBalancingConfig": [{"round_robin": {}}]}
# gRPC's DNS resolver resolves again when a connection ends, but by default at most once in 30 s: a replica added
# meanwhile would wait that long for calls, whatever the servers' connection age.
RERESOLUTION_OPTIONS: tuple[tuple[str, int], ...] = (("grpc.dns_min_time_between_resolutions_ms", 1000),)


# Client-side health checking: each connection watches the server's grpc.health.v1 status ("") and only those
# answering SERVING get calls.
HEALTH_CHECKED: dict[str, Any] = {"healthCheckConfig": {"serviceName": ""}}


def balanced_service_config(*, retry: bool, health_checked: bool = False) -> dict[str, Any]:
    """The service config of a channel between services: round-robin; with ``retry`` the retry policy; with
    ``health_checked`` only replicas whose health says SERVING are picked."""
    return {**ROUND_ROBIN, **(RETRY_SERVICE_CONFIG if retry else {}), **(HEALTH_CHECKED if health_checked else {})}


def _with_request_id(metadata: Any) -> list[tuple[str, str | bytes]]:
    entries = [(k, v) for k, v in (metadata or ()) if k not in (REQUEST_ID_HEADER, ACTOR_HEADER)]
    rid = request_id.get()
    if rid:
        entries.append((REQUEST_ID_HEADER, rid))
    who = actor.get()
    if who:
        entries.append((ACTOR_HEADER, who))
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


def open_channel(
    address: str,
    *,
    max_message_bytes: int,
    retry: bool = True,
    credentials: grpc.ChannelCredentials | None = None,
    health_checked: bool = False,
) -> grpc.aio.Channel:
    """An aio channel to another facerec service: TLS with ``credentials`` (``facerec.runtime.tls``), else
    plaintext. ``health_checked``: calls go only to replicas whose health says SERVING (for a dependency's status:
    a call then fails only when no replica can serve)."""
    options = service_channel_options(max_message_bytes=max_message_bytes, retry=retry, health_checked=health_checked)
    interceptors = [_RequestIdInterceptor()]
    if credentials is None:
        return grpc.aio.insecure_channel(address, options=options, interceptors=interceptors)
    return grpc.aio.secure_channel(address, credentials, options=options, interceptors=interceptors)


def service_channel_options(
    *, max_message_bytes: int, retry: bool = True, health_checked: bool = False
) -> list[tuple[str, Any]]:
    """The options of a channel between services: message limits, balancing, retries, keepalive, reconnecting."""
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.enable_retries", 1 if retry else 0),
        # gRPC only retries calls whose request fits its retry buffer (256 KiB by default): photos are larger.
        ("grpc.per_rpc_retry_buffer_size", max_message_bytes),
        ("grpc.keepalive_time_ms", 30_000),
        *RECONNECT_OPTIONS,  # after a dependency restarts, reconnect within a second
        *RERESOLUTION_OPTIONS,
        ("grpc.service_config", json.dumps(balanced_service_config(retry=retry, health_checked=health_checked))),
    ]


def deadline_from(
    context: grpc.aio.ServicerContext[Any, Any] | None, default_s: float, reserve_s: float = 0.0
) -> float:
    """Timeout for an outgoing call: what is left of the incoming call's deadline, less ``reserve_s`` kept for the
    caller's own work, or ``default_s`` when the caller set no deadline. Never negative."""
    remaining = context.time_remaining() if context is not None else None
    if remaining is None:
        return default_s
    return max(0.0, remaining - reserve_s)
