"""Domain errors shared by every service, and the one table that maps them to gRPC status codes.

Each service defines its own errors as subclasses of these categories (``class ImageTooLarge(ResourceExhausted)``)
and raises them from domain code that knows nothing of gRPC. The error interceptor translates them at the
boundary with :func:`status_code_for`; anything else escaping a servicer is logged and answered INTERNAL.

Whatever a message quotes, the status that carries it stays small enough for gRPC's metadata (a peer refuses
trailers over 8 KiB by default, and its caller then sees "Stream removed" instead of the error):
:func:`status_message` cuts a message to 1 KiB once percent-encoded (as ``grpc-message`` carries it) and
:func:`bounded_status` keeps a ``google.rpc.Status`` with its details under 3 KiB (4 KiB in base64), dropping the
last entries of its details' lists first. Messages should quote caller input with ``facerec.limits.quoted``;
these caps are the last resort.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import grpc
from google.protobuf import any_pb2, symbol_database
from google.protobuf.message import Message
from google.rpc import status_pb2

MAX_STATUS_MESSAGE_BYTES = 1024
MAX_STATUS_DETAILS_BYTES = 3 * 1024


class FacerecError(Exception):
    """Base of every error a facerec service answers with a status code other than INTERNAL.

    ``details`` are protobuf messages (e.g. ``google.rpc.PreconditionFailure``) sent to the caller in the
    rich ``google.rpc.Status`` of the error.
    """

    # Whether the caller's channel may retry the call (gRPC's retry policy, ``facerec.retry``, retries
    # UNAVAILABLE). False for an error that was already retried downstream: it is answered with the server
    # pushback ``grpc-retry-pushback-ms: -1``, which tells the caller's channel not to try again.
    retryable_by_channel: ClassVar[bool] = True

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


def _percent_encoded_size(character: str) -> int:
    # gRPC sends a status message percent-encoded: printable ASCII but '%' as is, every other byte as %XX.
    return sum(1 if 0x20 <= byte <= 0x7E and byte != 0x25 else 3 for byte in character.encode("utf-8", "replace"))


def status_message(message: str, max_bytes: int = MAX_STATUS_MESSAGE_BYTES) -> str:
    """``message`` as it may travel in a status: whole when it fits ``max_bytes`` once percent-encoded, else cut,
    ending with how many characters were left out."""
    sizes = [_percent_encoded_size(c) for c in message]
    if sum(sizes) <= max_bytes:
        return message
    budget = max_bytes - 48  # room for the note of what was cut
    kept = 0
    for size in sizes:
        if budget < size:
            break
        budget -= size
        kept += 1
    return f"{message[:kept]}…({len(message) - kept} more characters)"


def bounded_status(status: status_pb2.Status, max_bytes: int = MAX_STATUS_DETAILS_BYTES) -> bytes:
    """``status`` serialized within ``max_bytes``: its message cut (:func:`status_message`), then the last entries
    of its details' repeated fields dropped (a ``PreconditionFailure`` keeps its first violations), then whole
    details dropped from the end, until it fits."""
    bounded = status_pb2.Status()
    bounded.CopyFrom(status)
    bounded.message = status_message(bounded.message, max_bytes // 3)
    while bounded.ByteSize() > max_bytes and bounded.details:
        last = bounded.details[-1]
        if not _shortened(last, bounded.ByteSize() - max_bytes):
            del bounded.details[-1]
    return bounded.SerializeToString()


def _shortened(packed: any_pb2.Any, excess: int) -> bool:
    """Drops the last entries of the longest repeated field of the packed detail ``packed`` (an ``Any``) whose
    type this process knows, enough to remove about ``excess`` bytes; whether anything was dropped."""
    try:
        detail = symbol_database.Default().GetSymbol(packed.TypeName())()
    except KeyError:
        return False
    if not packed.Unpack(detail):
        return False
    repeated = [
        getattr(detail, f.name) for f in detail.DESCRIPTOR.fields if f.is_repeated and len(getattr(detail, f.name))
    ]
    if not repeated:
        return False
    longest = max(repeated, key=len)
    entry_size = max(1, detail.ByteSize() // max(1, sum(len(r) for r in repeated)))
    drop = min(len(longest), max(1, -(-excess // entry_size)))
    del longest[len(longest) - drop :]
    packed.Pack(detail)
    return True
