"""Channel settings shared by the sync and async clients: message limits, retries, credentials metadata."""

from __future__ import annotations

import json
from typing import Any

from facerec.retry import RETRY_POLICY
from facerec.v1 import facerec_pb2

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
    }
    options.update(extra or {})
    return list(options.items())


def auth_metadata(api_key: str | None) -> tuple[tuple[str, str], ...]:
    """The metadata that authenticates a call (none without a key)."""
    return (("authorization", f"Bearer {api_key}"),) if api_key else ()
