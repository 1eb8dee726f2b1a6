"""A micro-batcher: chips from concurrent requests share runtime calls.

One photo usually holds one or two faces; a runtime call has a fixed cost (a gRPC round trip to Triton, a
kernel launch on the GPU) that a batch of 64 chips pays once. The batcher holds each request's chips for at
most ``max_delay_s`` so that requests arriving together go out as one call of at most ``max_batch`` chips.
Each runtime call is timed as the ``embed`` stage (``StageTimer("embedder")``), once per batch.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from facerec.runtime.deadlines import Deadline
from facerec.runtime.stages import StageTimer
from facerec_embedder.admission import REFUSALS, current_deadline
from facerec_embedder.errors import CallExpired
from facerec_embedder.runtime import Chips, EmbeddingRuntime, Embeddings, check_chips


@dataclass(eq=False)
class _Part:
    """Up to ``max_batch`` consecutive chips of one request, and where their descriptors go."""

    chips: Chips
    result: asyncio.Future[Embeddings] = field(repr=False)
    deadline: Deadline | None = None

    def gone(self) -> bool:
        """Whether its caller is gone: cancelled (the result is done), or its deadline has passed (then told so)."""
        if self.result.done():
            return True
        if self.deadline is not None and self.deadline.expired():
            REFUSALS.labels("expired").inc()
            self.result.set_exception(CallExpired("the embedding"))
            return True
        return False


class MicroBatcher:
    """An :class:`EmbeddingRuntime` that merges concurrent ``embed`` calls into calls of ``runtime``.

    The first chip to arrive starts a timer of ``max_delay_s``; when it fires, or as soon as ``max_batch`` chips
    are waiting, the waiting chips go to the runtime, ``max_batch`` at most per call. A request larger than
    ``max_batch`` is split across calls. Each caller gets its own rows back, in order. When a runtime call
    fails, every caller with chips in it gets the same error. A caller that is cancelled, or whose deadline
    (``admission.current_deadline()`` when it called) has passed, withdraws the chips that have not been sent
    yet: no batch holds chips of a caller that is gone.
    """

    def __init__(self, runtime: EmbeddingRuntime, *, max_batch: int = 64, max_delay_s: float = 0.002) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        if max_delay_s < 0:
            raise ValueError(f"max_delay_s must not be negative, not {max_delay_s}")
        self.runtime = runtime
        self.max_batch = max_batch
        self.max_delay_s = max_delay_s
        self._waiting: deque[_Part] = deque()
        self._waiting_chips = 0
        self._timer: asyncio.TimerHandle | None = None
        self._calls: set[asyncio.Task[None]] = set()
        self._stages = StageTimer("embedder")

    async def embed(self, chips: Chips) -> Embeddings:
        """The descriptors of ``chips``, computed together with those of concurrent callers."""
        check_chips(chips)
        if len(chips) == 0:
            return await self.runtime.embed(chips)
        loop = asyncio.get_running_loop()
        deadline = current_deadline()
        parts = [
            _Part(chips[start : start + self.max_batch], loop.create_future(), deadline)
            for start in range(0, len(chips), self.max_batch)
        ]
        for part in parts:
            self._waiting.append(part)
            self._waiting_chips += len(part.chips)
        self._schedule(loop)
        results = await asyncio.gather(*(part.result for part in parts))
        return results[0] if len(results) == 1 else np.concatenate(results)

    async def is_ready(self) -> bool:
        """Whether the wrapped runtime is ready."""
        return await self.runtime.is_ready()

    async def drain(self) -> None:
        """Send whatever is waiting now and wait for every runtime call in flight (for shutdown)."""
        self._flush()
        while self._calls:
            await asyncio.gather(*self._calls, return_exceptions=True)

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        # Full batches go at once; the rest waits for the timer started by the oldest waiting chip.
        while self._waiting_chips >= self.max_batch:
            self._send(self._take_batch())
        if not self._waiting:
            self._cancel_timer()
        elif self.max_delay_s == 0:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.max_delay_s, self._flush)

    def _flush(self) -> None:
        self._cancel_timer()
        while self._waiting:
            self._send(self._take_batch())

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _send(self, batch: list[_Part]) -> None:
        if not batch:
            return
        call = asyncio.get_running_loop().create_task(self._run(batch))
        # The loop keeps only weak references to tasks: hold each one until it is done.
        self._calls.add(call)
        call.add_done_callback(self._calls.discard)

    def _take_batch(self) -> list[_Part]:
        batch: list[_Part] = []
        size = 0
        while self._waiting and size + len(self._waiting[0].chips) <= self.max_batch:
            part = self._waiting.popleft()
            self._waiting_chips -= len(part.chips)
            if not part.gone():
                batch.append(part)
                size += len(part.chips)
        return batch

    async def _run(self, batch: list[_Part]) -> None:
        chips = batch[0].chips if len(batch) == 1 else np.concatenate([part.chips for part in batch])
        started = time.perf_counter()
        try:
            embeddings = await self.runtime.embed(chips)
        except asyncio.CancelledError:
            for part in batch:
                part.result.cancel()
            raise
        except Exception as error:
            for part in batch:
                if not part.result.done():
                    part.result.set_exception(error)
            return
        finally:
            self._stages.record("embed", time.perf_counter() - started)
        start = 0
        for part in batch:
            end = start + len(part.chips)
            if not part.result.done():
                part.result.set_result(embeddings[start:end])
            start = end
