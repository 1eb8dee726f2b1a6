"""Typed exceptions of the SDK: one class per gRPC status code a caller may want to handle on its own.

Every failed call raises a :class:`FacerecError` (never a bare ``grpc.RpcError``) carrying the status code,
the message and the rich details of the ``google.rpc.Status`` the service sent, unpacked. A refused enrollment
raises :class:`FailedPrecondition` whose ``rejections`` list each photo's reasons, read from the
``google.rpc.PreconditionFailure`` detail. The convention for its violations (set by the gateway): ``type`` is
the ``RejectionReason`` name (``NO_FACE``), ``subject`` names the photo as ``photos[<index>]`` (optionally
followed by its name), ``description`` is the human-readable message.
"""

from __future__ import annotations

import re
from typing import ClassVar

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message as ProtoMessage
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from facerec.sdk.types import PhotoRejection, RejectionReason


class FacerecError(Exception):
    """A call failed; ``code`` is its gRPC status code, ``details`` the unpacked ``google.rpc.Status`` details."""

    default_code: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        details: tuple[ProtoMessage, ...] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code if code is not None else self.default_code
        self.details = details

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


class InvalidArgument(FacerecError):
    """The request is wrong: a bad image, an out-of-range parameter, a malformed id."""

    default_code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(FacerecError):
    """A named collection or person does not exist."""

    default_code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(FacerecError):
    """A create request names something that exists with other settings."""

    default_code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(FacerecError):
    """The request is well-formed but refused, e.g. an enrollment photo without exactly one acceptable face."""

    default_code = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        details: tuple[ProtoMessage, ...] = (),
    ) -> None:
        super().__init__(message, code=code, details=details)
        self.rejections: tuple[PhotoRejection, ...] = tuple(
            _photo_rejection(violation)
            for detail in details
            if isinstance(detail, error_details_pb2.PreconditionFailure)
            for violation in detail.violations
        )


class ResourceExhausted(FacerecError):
    """Input over a size limit, or a service that is overloaded.

    The two are told apart by ``retry_after_s``: an overloaded service says after how long the call may be
    retried (a ``google.rpc.RetryInfo`` detail), and the client retries it after that delay; input over a
    limit says nothing (``None``) and is never retried.
    """

    default_code = grpc.StatusCode.RESOURCE_EXHAUSTED

    @property
    def retry_after_s(self) -> float | None:
        """The delay the service advises before a retry, or ``None`` when it advises none (do not retry)."""
        for detail in self.details:
            if isinstance(detail, error_details_pb2.RetryInfo):
                return max(0.0, detail.retry_delay.ToTimedelta().total_seconds())
        return None


class Unavailable(FacerecError):
    """The service (or one of its dependencies) cannot be reached; retrying later may succeed."""

    default_code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(FacerecError):
    """The call's deadline passed before the work was done."""

    default_code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unauthenticated(FacerecError):
    """No valid API key."""

    default_code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(FacerecError):
    """A valid API key that does not allow this collection."""

    default_code = grpc.StatusCode.PERMISSION_DENIED


ERROR_CLASSES: dict[grpc.StatusCode, type[FacerecError]] = {
    cls.default_code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        ResourceExhausted,
        Unavailable,
        DeadlineExceeded,
        Unauthenticated,
        PermissionDenied,
    )
}
"""The one table from status code to exception class; other codes raise :class:`FacerecError` itself."""

# The standard detail messages; anything else stays a google.protobuf.Any.
_DETAIL_TYPES: tuple[type[ProtoMessage], ...] = (
    error_details_pb2.PreconditionFailure,
    error_details_pb2.BadRequest,
    error_details_pb2.ErrorInfo,
    error_details_pb2.RetryInfo,
    error_details_pb2.QuotaFailure,
    error_details_pb2.ResourceInfo,
    error_details_pb2.RequestInfo,
    error_details_pb2.DebugInfo,
    error_details_pb2.Help,
    error_details_pb2.LocalizedMessage,
)

_PHOTO_SUBJECT = re.compile(r"photos\[(\d+)\]")


def error_for(code: grpc.StatusCode, message: str, details: tuple[ProtoMessage, ...] = ()) -> FacerecError:
    """The typed exception for a status code, message and unpacked details."""
    cls = ERROR_CLASSES.get(code, FacerecError)
    return cls(message, code=code, details=details)


def error_from_status(status: status_pb2.Status) -> FacerecError:
    """The typed exception for a ``google.rpc.Status``, with its details unpacked."""
    code = _status_code(status.code)
    return error_for(code, status.message, tuple(_unpack(detail) for detail in status.details))


def error_from_rpc(error: grpc.RpcError) -> FacerecError:
    """Translates a failed call (sync ``grpc.RpcError`` or ``grpc.aio.AioRpcError``) into a typed exception."""
    if not isinstance(error, grpc.Call | grpc.aio.AioRpcError):
        return FacerecError(str(error))
    try:
        status = rpc_status.from_call(error)
    except ValueError:
        # The details disagree with the call's own code or message: trust the call, drop the details.
        status = None
    if status is not None:
        return error_from_status(status)
    return error_for(error.code(), error.details() or "")


def _status_code(value: int) -> grpc.StatusCode:
    for code in grpc.StatusCode:
        if code.value[0] == value:
            return code
    return grpc.StatusCode.UNKNOWN


def _unpack(detail: any_pb2.Any) -> ProtoMessage:
    for detail_type in _DETAIL_TYPES:
        if detail.TypeName() == detail_type.DESCRIPTOR.full_name:
            unpacked = detail_type()
            detail.Unpack(unpacked)
            return unpacked
    return detail


def _photo_rejection(violation: error_details_pb2.PreconditionFailure.Violation) -> PhotoRejection:
    match = _PHOTO_SUBJECT.search(violation.subject)
    try:
        reason = RejectionReason(violation.type)
    except ValueError:
        reason = RejectionReason.UNSPECIFIED
    return PhotoRejection(
        photo_index=int(match.group(1)) if match else None,
        subject=violation.subject,
        reason=reason,
        message=violation.description,
    )
