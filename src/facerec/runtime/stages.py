"""Per-stage timings of the work behind a call (decode, detect, align, embed, search, decide).

One histogram for every service, labelled by service and stage, and one debug log line per stage with the
request id of the call being served (the log formatter adds it). A service makes one :class:`StageTimer` and
wraps each stage::

    stages = StageTimer("embedder")
    with stages.time("decode"):
        image = decode(data)

Work that runs in a worker thread keeps the request id when it is started with ``contextvars`` copied (as
``asyncio.to_thread`` does).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Histogram

STAGES = ("decode", "detect", "align", "embed", "search", "decide")

STAGE_DURATION = Histogram(
    "facerec_stage_duration_seconds",
    "Time spent in one stage of a call's work, by service and stage (decode, detect, align, embed, search, decide).",
    ["service", "stage"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)

log = logging.getLogger("facerec.stages")


class StageTimer:
    """Times the stages of one service's work into :data:`STAGE_DURATION` and the debug log."""

    def __init__(self, service: str) -> None:
        self.service = service

    def record(self, stage: str, seconds: float) -> None:
        """Record a stage timed elsewhere (e.g. one Triton batch shared by several calls)."""
        STAGE_DURATION.labels(self.service, stage).observe(seconds)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("stage %s took %.2f ms", stage, seconds * 1e3, extra={"stage": stage, "ms": seconds * 1e3})

    @contextmanager
    def time(self, stage: str) -> Iterator[None]:
        """Time the block as ``stage`` (recorded whether it succeeds or raises)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.record(stage, time.perf_counter() - start)
