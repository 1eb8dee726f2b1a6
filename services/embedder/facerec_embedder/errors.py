"""Errors of the embedder's domain, each a subclass of one of the shared categories.

The category decides the status code at the gRPC boundary (``facerec.runtime.errors.status_code_for``); the
message goes back to the caller as is, so it says what was wrong and, where there is one, which limit applies.
"""

from __future__ import annotations

from google.protobuf import duration_pb2
from google.rpc import error_details_pb2

from facerec.runtime.errors import DeadlineExceeded, InvalidArgument, ResourceExhausted, Unavailable


class UnsupportedImage(InvalidArgument):
    """The bytes are not an image in an accepted format (``facerec.photo_formats.ACCEPTED``)."""


class CorruptImage(InvalidArgument):
    """The bytes start like an accepted image but cannot be decoded (truncated, broken data)."""


class ImageTooLarge(ResourceExhausted):
    """The photo is over the byte or pixel limit, or too large to upsample as asked."""


class Overloaded(ResourceExhausted):
    """The embedder (or Triton behind it) has as much work in flight as it accepts; the call may be retried.

    Unlike :class:`ImageTooLarge` (same status code, never worth retrying) it says so: the message names the
    delay, and a ``google.rpc.RetryInfo`` detail carries it, which the SDK honours (it retries RESOURCE_EXHAUSTED
    only when that detail is present).
    """

    def __init__(self, what: str, retry_after_s: float) -> None:
        delay = duration_pb2.Duration()
        delay.FromMilliseconds(round(retry_after_s * 1000))
        super().__init__(
            f"{what}; the call was not started and may be retried after {retry_after_s * 1000:.0f} ms",
            details=[error_details_pb2.RetryInfo(retry_delay=delay)],
        )
        self.retry_after_s = retry_after_s


class CallExpired(DeadlineExceeded):
    """The caller's deadline passed before a stage of its work started: the work was dropped."""

    def __init__(self, stage: str) -> None:
        super().__init__(f"the caller's deadline passed before {stage}: the work was dropped")
        self.stage = stage


class InvalidUpsample(InvalidArgument):
    """The requested detector upsampling is out of the accepted range."""


class InvalidChip(InvalidArgument):
    """An aligned chip does not have the shape or type the model expects (150x150 RGB, uint8)."""


class TritonUnavailable(Unavailable):
    """Triton cannot be reached, or the embedding model is not loaded there; retrying later may succeed."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"Triton at {url} is unavailable: {reason}")
        self.url = url
        self.reason = reason


class TritonTimeout(DeadlineExceeded):
    """Triton did not answer an inference call within its timeout."""

    def __init__(self, url: str, timeout_s: float) -> None:
        super().__init__(f"Triton at {url} did not answer within {timeout_s:g} s")
        self.url = url
        self.timeout_s = timeout_s


class TritonError(RuntimeError):
    """Triton refused a call for a reason no retry can fix (a wrong input, a wrong model): a bug, INTERNAL."""


class ModelOutputError(RuntimeError):
    """The model answered with descriptors of the wrong shape: a broken model file or config, INTERNAL."""
