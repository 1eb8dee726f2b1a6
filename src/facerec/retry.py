"""The one retry policy of every facerec channel (the SDK's to the gateway, and the services' to each other).

Standard library only (the light client install imports it). gRPC retries a call itself when the channel's
service config holds a ``retryPolicy``; this module writes that config from one :class:`RetryPolicy`, so the
rule is the same everywhere: only ``UNAVAILABLE`` is retried (the call never reached a server that acted on
it, or the server asks to be tried again), at most 5 attempts in all, with exponential backoff (gRPC waits a
random time up to the current backoff, which starts at ``initial_backoff_s`` and grows by ``multiplier`` up to
``max_backoff_s``). Only idempotent calls may be retried: the caller names them (``methods``), or opens a
channel without retries.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class RetryPolicy:
    """How a channel retries a failed call."""

    max_attempts: int = 5
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 2.0
    multiplier: float = 2.0
    retryable_codes: tuple[str, ...] = ("UNAVAILABLE",)

    def __post_init__(self) -> None:
        # gRPC itself caps attempts at 5 and ignores (or refuses) a policy outside these bounds.
        if not 2 <= self.max_attempts <= 5:
            raise ValueError(f"max_attempts must be 2-5 (gRPC's own cap), got {self.max_attempts}")
        if not 0 < self.initial_backoff_s <= self.max_backoff_s:
            raise ValueError("backoffs must satisfy 0 < initial_backoff_s <= max_backoff_s")
        if self.multiplier <= 0 or not self.retryable_codes:
            raise ValueError("multiplier must be > 0 and at least one status code must be retryable")

    def worst_case_wait_s(self) -> float:
        """The longest total time spent waiting between attempts (each wait is at most the current backoff)."""
        waits = [
            min(self.initial_backoff_s * self.multiplier**retry, self.max_backoff_s)
            for retry in range(self.max_attempts - 1)
        ]
        return sum(waits)

    def scaled(self, factor: float) -> RetryPolicy:
        """The same policy with every backoff multiplied by ``factor``."""
        return replace(
            self, initial_backoff_s=self.initial_backoff_s * factor, max_backoff_s=self.max_backoff_s * factor
        )

    def as_grpc(self) -> dict[str, Any]:
        """The ``retryPolicy`` object of a gRPC service config."""
        return {
            "maxAttempts": self.max_attempts,
            "initialBackoff": _duration(self.initial_backoff_s),
            "maxBackoff": _duration(self.max_backoff_s),
            "backoffMultiplier": self.multiplier,
            "retryableStatusCodes": list(self.retryable_codes),
        }

    def service_config(self, methods: Iterable[tuple[str, str]] | None = None) -> dict[str, Any]:
        """A service config that retries the named ``(service, method)`` pairs, or every call when ``None``."""
        names: list[dict[str, str]] = (
            [{}] if methods is None else [{"service": service, "method": method} for service, method in methods]
        )
        return {"methodConfig": [{"name": names, "retryPolicy": self.as_grpc()}]}


def _duration(seconds: float) -> str:
    """A protobuf JSON duration (``"0.1s"``) as gRPC's service config parser reads it."""
    return f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"


# The one policy: what the SDK's channel to the gateway does.
RETRY_POLICY = RetryPolicy()
# Between services the same policy waits half as long: those retries run inside one attempt of the client's
# (a gateway that finds the embedder down answers UNAVAILABLE, which the SDK retries in turn), so the inner
# hop's waits, 0.75 s at most, must stay small beside the outer hop's 1.5 s and the caller's deadline.
SERVICE_RETRY_POLICY = RETRY_POLICY.scaled(0.5)

# Reconnecting after a peer restarts, for every channel (the SDK's and the services'): gRPC's default reconnect
# backoff grows to 120 s, so after a long outage every call would keep failing long after the peer is back.
# (The misnamed grpc.min_reconnect_backoff_ms is the connect timeout, not a backoff: left at its default.)
RECONNECT_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
)


def overload_wait(
    advised_s: float | None, attempts: int, remaining_s: float | None, *, max_attempts: int | None = None
) -> float | None:
    """Seconds to wait before trying again a call refused as overloaded after ``attempts`` attempts, or ``None``
    to give up: no advised delay (input over a limit, never retried), ``max_attempts`` used up (default: the
    retry policy's; ``0``: only the deadline bounds the attempts), or the wait would not leave time before the
    deadline (``remaining_s``; ``None``: no deadline).

    The one rule of the SDK (calls refused at the gateway) and of the gateway's enrollment, whose photos are
    parts of one request that its caller cannot retry one by one (there only the request's deadline bounds
    them). At least the advised delay, spread up to 1.5x so that callers refused together do not all come back
    together.
    """
    limit = RETRY_POLICY.max_attempts if max_attempts is None else max_attempts
    if advised_s is None or (limit and attempts >= limit):
        return None
    wait = advised_s * random.uniform(1.0, 1.5)
    if remaining_s is not None and wait >= remaining_s:
        return None
    return wait
