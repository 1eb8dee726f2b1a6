"""Channel settings shared by the sync and async clients: message limits, retries, credentials metadata.

Two kinds of retry, both per ``facerec.retry.RETRY_POLICY`` (at most 5 attempts in all):

- UNAVAILABLE, by the channel itself (its service config).
- RESOURCE_EXHAUSTED, by the clients' call wrapper (:func:`call_retrying_overload`), and only when the service
  says after how long (an overload refusal's ``google.rpc.RetryInfo``): input over a size limit has the same code
  but says nothing, and is never retried. The channel's own retry cannot tell the two apart: with
  RESOURCE_EXHAUSTED in its retryable codes it retries a refusal without pushback too (the
  ``grpc-retry-pushback-ms`` trailer only changes the delay, or forbids the retry when negative), which
  ``tests/fault/test_overload.py`` checks on a real server.

TLS (:func:`channel_credentials`): the address is a plain gRPC target (``host:port``, ``dns:///host:port``); TLS
is chosen by the clients' ``tls`` / ``ca_file`` arguments, not by a scheme: gRPC's target schemes name name
resolvers (``dns:``, ``unix:``, ``ipv4:``), and a made-up ``grpcs://`` would be taken for one. With ``tls`` alone
the server is verified against the system's trust store (:func:`system_roots`), as ``curl`` and Python's ``ssl``
would, not against the copy of Mozilla's roots bundled inside grpcio, so a company CA installed on the machine
is trusted.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc

from facerec.retry import RECONNECT_OPTIONS, RETRY_POLICY, overload_wait
from facerec.sdk.errors import FacerecError, ResourceExhausted
from facerec.tls_files import PemFile, check_ca_bundle, check_key_pair, optional_pem, require_pair
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


def system_roots() -> bytes | None:
    """The system's trust store as PEM: the CA file OpenSSL uses (``SSL_CERT_FILE`` when set, else the
    distribution's bundle, e.g. ``/etc/ssl/certs/ca-certificates.crt``), else certifi's bundle when certifi is
    installed; None lets grpcio use its own bundled roots, and so does ``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH``, the
    override gRPC documents, when it is set."""
    if os.environ.get("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"):
        return None
    cafile = ssl.get_default_verify_paths().cafile  # None when that file does not exist
    if cafile is None:
        try:
            import certifi  # optional: present in most environments, not a dependency of the SDK
        except ImportError:
            return None
        cafile = certifi.where()
    return check_ca_bundle(PemFile("the system trust store", Path(cafile)))


def channel_credentials(
    *,
    tls: bool = False,
    ca_file: str | os.PathLike[str] | None = None,
    client_cert_file: str | os.PathLike[str] | None = None,
    client_key_file: str | os.PathLike[str] | None = None,
) -> grpc.ChannelCredentials | None:
    """TLS credentials for a client channel; None (plaintext) unless ``tls`` or a file is given.

    ``ca_file``: PEM bundle of the CAs trusted to sign the gateway's certificate (default: :func:`system_roots`).
    ``client_cert_file`` and ``client_key_file``: the certificate presented to a gateway that requires mutual TLS.
    The files are read and checked now: :class:`facerec.tls_files.TlsFileError` (an ``OSError``) names the
    argument when one is missing its pair, cannot be read, or does not hold what it should.
    """
    ca = optional_pem("ca_file", ca_file)
    cert, key = optional_pem("client_cert_file", client_cert_file), optional_pem("client_key_file", client_key_file)
    require_pair(cert, key, "client_cert_file", "client_key_file")
    if not (tls or ca or cert):
        return None
    roots = check_ca_bundle(ca) if ca is not None else system_roots()
    if cert is None or key is None:
        return grpc.ssl_channel_credentials(root_certificates=roots)
    chain, private_key = check_key_pair(cert, key)
    return grpc.ssl_channel_credentials(root_certificates=roots, private_key=private_key, certificate_chain=chain)


def client_credentials(
    credentials: grpc.ChannelCredentials | None,
    *,
    tls: bool,
    ca_file: str | os.PathLike[str] | None,
    client_cert_file: str | os.PathLike[str] | None,
    client_key_file: str | os.PathLike[str] | None,
) -> grpc.ChannelCredentials | None:
    """The clients' channel credentials: ``credentials`` as given, or those the TLS arguments ask for
    (:func:`channel_credentials`); ``ValueError`` when both are given."""
    if credentials is None:
        return channel_credentials(
            tls=tls, ca_file=ca_file, client_cert_file=client_cert_file, client_key_file=client_key_file
        )
    if tls or ca_file or client_cert_file or client_key_file:
        raise ValueError("pass either credentials or the TLS arguments (tls, ca_file, client_cert_file, ...)")
    return credentials


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
