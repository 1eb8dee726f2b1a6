"""Deadlines that travel with a request through the services it calls."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import grpc

from facerec.runtime.errors import DeadlineExceeded


@dataclass(frozen=True)
class Deadline:
    """An absolute point in (monotonic) time by which a request must be answered."""

    expires_at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    @classmethod
    def of_call(cls, context: grpc.aio.ServicerContext[Any, Any], default_s: float) -> Deadline:
        """The incoming call's own deadline, or ``default_s`` from now when the caller set none."""
        remaining = context.time_remaining()
        return cls.after(default_s if remaining is None else remaining)

    def remaining(self) -> float:
        """Seconds left for an outgoing call; DEADLINE_EXCEEDED when none are."""
        left = self.expires_at - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded("deadline exceeded before the work was done")
        return left
