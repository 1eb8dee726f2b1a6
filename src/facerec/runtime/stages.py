"""Per-stage timings of the work behind a call (decode, detect, align, embed, search, decide).

One histogram for every service, labelled by service and stage, and one debug log line per stage with the
request id of the call being served (the log formatter adds it). A service makes one :class:`StageTimer` and
wraps each stage::

    stages = StageTimer("embedder")
    with stages.time("decode"):
        image = decode(data)

Work that runs in a worker thread keeps the request id (and, when traced, its parent span) only when it is started
with the caller's ``contextvars`` copied: ``asyncio.to_thread`` does, ``loop.run_in_executor`` does not, so run
such work with :func:`in_executor`.

When the call being served is traced (``FACEREC_TRACING=otlp``), each stage is also a child span of the call's
span; when it is not, that costs one context-variable read.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from prometheus_client import Histogram

from facerec.runtime import tracing

STAGES = ("decode", "detect", "align", "embed", "search", "decide")

STAGE_DURATION = Histogram(
    "facerec_stage_duration_seconds",
    "Time spent in one stage of a call's work, by service and stage (decode, detect, align, embed, search, decide).",
    ["service", "stage"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)

log = logging.getLogger("facerec.stages")

P = ParamSpec("P")
T = TypeVar("T")


class StageTimer:
    """Times the stages of one service's work into :data:`STAGE_DURATION` and the debug log."""

    def __init__(self, service: str) -> None:
        self.service = service

    def record(self, stage: str, seconds: float) -> None:
        """Record a stage timed elsewhere (e.g. one Triton batch shared by several calls); when the current call
        is traced, also as a child span that ended now."""
        self._observe(stage, seconds)
        tracer = tracing.current_tracer()
        if tracer is not None:
            tracing.record_stage_span(tracer, stage, seconds)

    @contextmanager
    def time(self, stage: str) -> Iterator[None]:
        """Time the block as ``stage`` (recorded whether it succeeds or raises); a child span when traced."""
        tracer = tracing.current_tracer()
        start = time.perf_counter()
        try:
            if tracer is None:
                yield
            else:
                with tracing.stage_span(tracer, stage):
                    yield
        finally:
            self._observe(stage, time.perf_counter() - start)

    def _observe(self, stage: str, seconds: float) -> None:
        STAGE_DURATION.labels(self.service, stage).observe(seconds)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("stage %s took %.2f ms", stage, seconds * 1e3, extra={"stage": stage, "ms": seconds * 1e3})


async def in_executor(executor: Executor | None, work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``work(*args, **kwargs)`` in ``executor`` (None: the loop's default) with the caller's context variables,
    so that its stage timings and log lines carry the request id of the call (and join its trace)."""
    context = contextvars.copy_context()
    call = functools.partial(context.run, work, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(executor, call)
