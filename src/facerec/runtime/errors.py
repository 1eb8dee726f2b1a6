"""Domain errors shared by every service, and the one table that maps them to gRPC status codes.

Each service defines its own errors as subclasses of these categories (``class ImageTooLarge(ResourceExhausted)``)
and raises them from domain code that knows nothing of gRPC. The error interceptor translates them at the
boundary with :func:`status_code_for`; anything else escaping a servicer is logged and answered INTERNAL.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from google.protobuf.message import Message


class FacerecError(Exception):
    """Base of every error a facerec service answers with a status code other than INTERNAL.

    ``details`` are protobuf messages (e.g. ``google.rpc.PreconditionFailure``) sent to the caller in the
    rich ``google.rpc.Status`` of the error.
    """

    def __init__(self, message: str, details: Sequence[Message] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.details = tuple(details)


class InvalidArgument(FacerecError):
    """The request itself is wrong (a bad image, an out-of-range parameter, a malformed id)."""


class NotFound(FacerecError):
    """A named collection, person or face does not exist."""


class AlreadyExists(FacerecError):
    """A create request names something that exists with other settings."""


class FailedPrecondition(FacerecError):
    """The request is well-formed but the system's state (or the photo's content) does not allow it."""


class ResourceExhausted(FacerecError):
    """Input over a size limit, or a queue that is full."""


class Unavailable(FacerecError):
    """A dependency (Triton, Qdrant, another service) cannot be reached; retrying later may succeed."""


class DeadlineExceeded(FacerecError):
    """The caller's deadline passed before the work was done."""


class Unauthenticated(FacerecError):
    """No valid credentials."""


class PermissionDenied(FacerecError):
    """Valid credentials that do not allow this resource."""


STATUS_CODES: dict[type[FacerecError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
}


def status_code_for(error: FacerecError) -> grpc.StatusCode:
    """The status code of a domain error: that of its nearest category in the table."""
    for cls in type(error).__mro__:
        code = STATUS_CODES.get(cls)
        if code is not None:
            return code
    return grpc.StatusCode.INTERNAL
