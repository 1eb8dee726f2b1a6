"""Deadlines that travel with a request through the services it calls."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import grpc

from facerec.runtime.errors import DeadlineExceeded


@dataclass(frozen=True)
class Deadline:
    """An absolute point in (monotonic) time by which a request must be answered; ``math.inf`` for none."""

    expires_at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    @classmethod
    def of_call(cls, context: grpc.aio.ServicerContext[Any, Any], default_s: float) -> Deadline:
        """The incoming call's own deadline, or ``default_s`` from now when the caller set none."""
        remaining = context.time_remaining()
        return cls.after(default_s if remaining is None else remaining)

    @classmethod
    def of_stream(cls, context: grpc.aio.ServicerContext[Any, Any]) -> Deadline:
        """The incoming stream's own deadline, or none when the caller set none.

        A stream lives as long as its client keeps it; what must be bounded is the work of each message, with
        :meth:`for_message`.
        """
        remaining = context.time_remaining()
        return cls(math.inf) if remaining is None else cls.after(remaining)

    def for_message(self, timeout_s: float) -> Deadline:
        """The deadline of one message of a stream: ``timeout_s`` from now, but never past this (the call's)."""
        return Deadline(min(self.expires_at, time.monotonic() + timeout_s))

    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return self.expires_at <= time.monotonic()

    def remaining(self) -> float:
        """Seconds left for an outgoing call; DEADLINE_EXCEEDED when none are."""
        left = self.expires_at - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded("deadline exceeded before the work was done")
        return left
