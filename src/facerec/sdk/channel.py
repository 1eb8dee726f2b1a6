"""Channel settings shared by the sync and async clients: message limits, retries, credentials metadata.

Two kinds of retry, both per ``facerec.retry.RETRY_POLICY`` (at most 5 attempts in all):

- UNAVAILABLE, by the channel itself (its service config).
- RESOURCE_EXHAUSTED, by the clients' call wrapper (:func:`call_retrying_overload`), and only when the service
  says after how long (an overload refusal's ``google.rpc.RetryInfo``): input over a size limit has the same code
  but says nothing, and is never retried. The channel's own retry cannot tell the two apart: with
  RESOURCE_EXHAUSTED in its retryable codes it retries a refusal without pushback too (the
  ``grpc-retry-pushback-ms`` trailer only changes the delay, or forbids the retry when negative), which
  ``tests/fault/test_overload.py`` checks on a real server.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from facerec.retry import RECONNECT_OPTIONS, RETRY_POLICY, overload_wait
from facerec.sdk.errors import FacerecError, ResourceExhausted
from facerec.v1 import facerec_pb2

R = TypeVar("R")

SERVICE_NAME = facerec_pb2.DESCRIPTOR.services_by_name["FaceRecognition"].full_name
MAX_MESSAGE_BYTES = 32 * 1024 * 1024
DEFAULT_ADDRESS = "127.0.0.1:50051"
DEFAULT_TIMEOUT_S = 30.0


def unary_methods() -> list[str]:
    """Names of the public API's unary methods, read from the service descriptor."""
    service = facerec_pb2.DESCRIPTOR.services_by_name["FaceRecognition"]
    return [m.name for m in service.methods if not m.client_streaming and not m.server_streaming]


def service_config() -> dict[str, Any]:
    """The channel's service config: unary calls are retried per ``facerec.retry.RETRY_POLICY`` (UNAVAILABLE only,
    up to 5 attempts in all).

    Every unary method is safe to retry: reads are idempotent, and enrollment stores each face under an id
    derived from the photo and the person, so a replayed Enroll stores nothing twice. Streams are not retried:
    a half-sent stream cannot be replayed by the channel.
    """
    return RETRY_POLICY.service_config((SERVICE_NAME, name) for name in unary_methods())


def channel_options(extra: dict[str, Any] | None = None) -> list[tuple[str, Any]]:
    """Options of a client channel: 32 MiB messages both ways, retries per :func:`service_config`."""
    options: dict[str, Any] = {
        "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
        "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
        "grpc.enable_retries": 1,
        # A call whose request outgrows the per-call retry buffer (256 KiB by default) is committed and never
        # retried; photos are often larger, so the buffer holds a whole request.
        "grpc.per_rpc_retry_buffer_size": MAX_MESSAGE_BYTES,
        "grpc.service_config": json.dumps(service_config()),
        **dict(RECONNECT_OPTIONS),  # after the gateway restarts, reconnect within a second
    }
    options.update(extra or {})
    return list(options.items())


def auth_metadata(api_key: str | None) -> tuple[tuple[str, str], ...]:
    """The metadata that authenticates a call (none without a key)."""
    return (("authorization", f"Bearer {api_key}"),) if api_key else ()


def overload_retry_wait(error: FacerecError, attempts: int, deadline: float | None) -> float | None:
    """Seconds to wait before retrying a call that failed with ``error`` after ``attempts`` attempts; ``None``
    to give up: not an overload refusal with an advised delay, attempts used up, or no time left before
    ``deadline`` (``time.monotonic()``) after the wait."""
    if not isinstance(error, ResourceExhausted):
        return None
    return overload_wait(error.retry_after_s, attempts, _remaining(deadline))


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def call_retrying_overload(attempt: Callable[[float | None], R], timeout_s: float | None) -> R:
    """``attempt(timeout)``, again after the advised delay while it fails with an overload refusal (see
    :func:`overload_retry_wait`); every attempt gets what is left of ``timeout_s`` (``None``: no deadline)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    attempts = 0
    while True:
        attempts += 1
        try:
            return attempt(_remaining(deadline))
        except ResourceExhausted as error:
            wait = overload_retry_wait(error, attempts, deadline)
            if wait is None:
                raise
        time.sleep(wait)


async def call_retrying_overload_async(attempt: Callable[[float | None], Awaitable[R]], timeout_s: float | None) -> R:
    """:func:`call_retrying_overload` for coroutines."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    attempts = 0
    while True:
        attempts += 1
        try:
            return await attempt(_remaining(deadline))
        except ResourceExhausted as error:
            wait = overload_retry_wait(error, attempts, deadline)
            if wait is None:
                raise
        await asyncio.sleep(wait)
