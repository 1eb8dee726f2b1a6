"""``facerec health``: the standard ``grpc.health.v1`` check against any facerec service."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from facerec.cli import exit_codes

DEFAULT_HEALTH_TIMEOUT_S = 5.0


def check_health(
    address: str,
    service: str = "",
    timeout: float = DEFAULT_HEALTH_TIMEOUT_S,
    credentials: grpc.ChannelCredentials | None = None,
) -> str:
    """The serving status name (``SERVING``, ``NOT_SERVING``, ...) that ``address`` reports for ``service``
    (empty: the whole server). Raises ``grpc.RpcError`` when the check itself fails (nothing listening,
    deadline exceeded, unknown service). No retries: a probe must answer within its own timeout."""
    channel = grpc.insecure_channel(address) if credentials is None else grpc.secure_channel(address, credentials)
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


def is_serving(address: str, timeout: float = 1.0) -> bool:
    """Whether ``address`` answers SERVING for the whole server now (False when it cannot be reached)."""
    try:
        return check_health(address, timeout=timeout) == "SERVING"
    except grpc.RpcError:
        return False


def health_exit_code(status: str) -> int:
    """0 when SERVING, else the "unavailable" exit code."""
    return exit_codes.OK if status == "SERVING" else exit_codes.UNAVAILABLE


def rpc_error_exit_code(error: grpc.RpcError) -> int:
    """Exit code of a failed check: an unknown service is "not found", anything else "unavailable"."""
    code = error.code() if isinstance(error, grpc.Call) else None
    return exit_codes.NOT_FOUND if code == grpc.StatusCode.NOT_FOUND else exit_codes.UNAVAILABLE
