"""Errors of the gateway's domain, each in the category that gives its status code."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from facerec.runtime import errors

if TYPE_CHECKING:
    from facerec_gateway.enrollment import PhotoResult


class MissingApiKey(errors.Unauthenticated):
    """The call carries no API key."""


class UnknownApiKey(errors.Unauthenticated):
    """The call's API key matches no configured key."""


class CollectionNotAllowed(errors.PermissionDenied):
    """The caller's tenant may not use this collection."""


class InvalidRequest(errors.InvalidArgument):
    """A field of the request is missing or out of range."""


class EnrollmentRejected(errors.FailedPrecondition):
    """A photo of an enrollment holds no acceptable face; nothing was enrolled.

    ``photos`` are the rejected photos' results (``enrollment.PhotoResult``), each with its reasons: the message
    names them, and the servicer sends them as the status's details.
    """

    def __init__(self, photos: Sequence[PhotoResult]) -> None:
        parts = [
            f"{photo.photo_name or f'photos[{photo.photo_index}]'}: {rejection.message}"
            for photo in photos
            for rejection in photo.rejections
        ]
        super().__init__("nothing enrolled; " + "; ".join(parts))
        self.photos = tuple(photos)


class NotCalibratable(errors.FailedPrecondition):
    """A collection's faces give no genuine pair (no person has two faces) or no impostor pair."""


class NoFaceFound(errors.FailedPrecondition):
    """A photo that must show a face (verification) shows none."""


class DependencyUnavailable(errors.Unavailable):
    """The embedder or the registry cannot be reached.

    Not retried by the caller's channel: the gateway's own channel has already tried the dependency's replicas
    (``facerec.retry``), and every gateway replica reaches the same ones, so a client retrying would only multiply
    the attempts and the wait for a part that is down (the call is to fail fast, naming it).
    """

    retryable_by_channel = False


class DependencyDeadline(errors.DeadlineExceeded):
    """The caller's deadline passed while waiting for the embedder or the registry."""


class ModelMismatch(errors.InvalidArgument):
    """A collection of another embedding model than the one the embedder serves."""


def retry_advice(error: grpc.aio.AioRpcError) -> tuple[error_details_pb2.RetryInfo, ...]:
    """The ``google.rpc.RetryInfo`` of a dependency's refusal (an overloaded embedder's), to pass on to the caller:
    the gateway does not retry it itself (that would multiply the retries of its callers), the SDK does."""
    try:
        status = rpc_status.from_call(error)
    except ValueError:
        return ()
    advice = []
    for detail in status.details if status is not None else ():
        info = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            advice.append(info)
    return tuple(advice)


def advised_retry_s(error: errors.FacerecError) -> float | None:
    """The delay a dependency's overload refusal advises before a retry (its ``google.rpc.RetryInfo``), or ``None``
    when it advises none (input over a limit: never retried)."""
    for detail in error.details:
        if isinstance(detail, error_details_pb2.RetryInfo):
            return max(0.0, detail.retry_delay.ToTimedelta().total_seconds())
    return None


class ApiKeyConfigError(ValueError):
    """The API key file or document is malformed (raised at start-up, not per call)."""
