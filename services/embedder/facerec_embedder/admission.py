"""Admission control: a bound on the calls the embedder works on at once, past which a call is refused at once.

Without a bound, every call joins the detection workers' queue: past the saturation point the queue only grows,
each call waits longer than the one before, and once the wait is longer than callers' deadlines almost every
call times out after the full deadline, having used the workers for nothing (measured: 64 concurrent Identify
calls with 5 s deadlines, 93 of 128 DEADLINE_EXCEEDED, goodput from 4.8 down to 3.5 photos/s). With a bound,
the calls admitted are served in about the time the bound allows, and the excess is told at once to come back
later (:class:`~facerec_embedder.errors.Overloaded`, RESOURCE_EXHAUSTED with a retry delay).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from prometheus_client import Counter, Gauge

from facerec.runtime.deadlines import Deadline
from facerec_embedder.errors import CallExpired, Overloaded

IN_FLIGHT = Gauge(
    "facerec_embedder_in_flight_calls",
    "Calls the embedder has admitted and not yet answered, by work: photos (EmbedPhoto), chips (EmbedChips).",
    ["work"],
)
IN_FLIGHT_LIMIT = Gauge(
    "facerec_embedder_in_flight_limit", "Most calls the embedder admits at once, by work.", ["work"]
)
REFUSALS = Counter(
    "facerec_embedder_refusals_total",
    "Calls refused or dropped by the embedder, by reason: overloaded (refused at admission), triton_overloaded "
    "(Triton's queue was full), expired (the caller's deadline passed or it cancelled before a stage started).",
    ["reason"],
)


class Admission:
    """Admits at most ``max_in_flight`` calls at once; the next one raises :class:`Overloaded` at once.

    The retry delay a refusal advises grows with the refusals of the last second: ``retry_after_s`` times
    (1 + earlier refusals / ``max_in_flight``), at most :data:`MAX_RETRY_AFTER_S`. Each refusal costs the stack a
    photo's transfer through the gateway; with many more clients than places, a fixed delay would have them
    come back far more often than places free up, spending on refusals what admitted calls need. The delay
    settles where about ``max_in_flight`` refusals a second keep the places filled.

    Single event loop only (no lock): the count changes between awaits, never during one.
    """

    def __init__(self, max_in_flight: int, retry_after_s: float, work: str = "photos") -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, not {max_in_flight}")
        if retry_after_s <= 0:
            raise ValueError(f"retry_after_s must be positive, not {retry_after_s}")
        self.max_in_flight = max_in_flight
        self.retry_after_s = retry_after_s
        self.work = work
        self.in_flight = 0
        self._recent_refusals: deque[float] = deque()
        self._gauge = IN_FLIGHT.labels(work)
        IN_FLIGHT_LIMIT.labels(work).set(max_in_flight)

    @contextmanager
    def admitted(self) -> Iterator[None]:
        """Hold one of the places for the block; :class:`Overloaded` when there is none."""
        if self.in_flight >= self.max_in_flight:
            REFUSALS.labels("overloaded").inc()
            raise Overloaded(
                f"the embedder is overloaded: {self.in_flight} calls of {self.work} in flight "
                f"(limit {self.max_in_flight})",
                self._advised_delay_s(),
            )
        self.in_flight += 1
        self._gauge.inc()
        try:
            yield
        finally:
            self.in_flight -= 1
            self._gauge.dec()

    def _advised_delay_s(self) -> float:
        now = time.monotonic()
        while self._recent_refusals and self._recent_refusals[0] < now - 1.0:
            self._recent_refusals.popleft()
        pressure = 1 + len(self._recent_refusals) / self.max_in_flight  # the earlier refusals of the last second
        self._recent_refusals.append(now)
        return min(MAX_RETRY_AFTER_S, max(self.retry_after_s, self.retry_after_s * pressure))


MAX_RETRY_AFTER_S = 5.0
"""The longest retry delay a refusal advises."""


def default_max_in_flight(detect_workers: int) -> int:
    """The bound when none is set: four calls per detection worker.

    One call per worker keeps the workers busy only if nothing else takes time; the decode of the next photo,
    the Triton call and the answer of the previous one overlap with detection, so a few more keep the workers
    fed. Many more only lengthen the queue: each extra call waits for a whole photo's detection (about 0.4 s
    per worker for a 12 MP photo on the 2-core machine), so four per worker keeps the wait of an admitted call
    near 1.5 s, well inside the usual deadlines of a few seconds.
    """
    return 4 * detect_workers


# The deadline of the call being served, set by the servicer for the call's task. The work of a call runs in
# the detection threads (started with the task's context copied) and in the micro-batcher's queue, far from the
# servicer: they read it here to drop the work of a caller who has given up, before each stage starts.
_call_deadline: ContextVar[Deadline | None] = ContextVar("facerec_embedder_call_deadline", default=None)


@contextmanager
def call_deadline(deadline: Deadline | None) -> Iterator[None]:
    """Make ``deadline`` the current call's for the block (``None``: the caller set none)."""
    token = _call_deadline.set(deadline)
    try:
        yield
    finally:
        _call_deadline.reset(token)


def current_deadline() -> Deadline | None:
    """The deadline of the call whose work is running, if it has one."""
    return _call_deadline.get()


def check_deadline(stage: str) -> None:
    """:class:`CallExpired` (counted as a drop) when the current call's deadline has passed before ``stage``."""
    deadline = current_deadline()
    if deadline is not None and deadline.expired():
        REFUSALS.labels("expired").inc()
        raise CallExpired(stage)
