"""The micro-batcher: concurrent callers share runtime calls and each gets its own rows back."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from facerec_embedder.batching import MicroBatcher
from facerec_embedder.errors import TritonUnavailable
from facerec_embedder.runtime import Chips, EmbeddingRuntime, Embeddings, OnnxRuntimeEmbedder


class RowEchoRuntime:
    """A deterministic stand-in for the model, for the batching logic only: a chip's first 128 bytes."""

    async def embed(self, chips: Chips) -> Embeddings:
        await asyncio.sleep(0.001)
        return chips.reshape(len(chips), -1)[:, :128].astype(np.float32)

    async def is_ready(self) -> bool:
        return True


class FailingRuntime:
    """A runtime whose every call fails as a call to a stopped Triton does."""

    async def embed(self, chips: Chips) -> Embeddings:
        await asyncio.sleep(0.001)
        raise TritonUnavailable("127.0.0.1:8001", "connection refused")

    async def is_ready(self) -> bool:
        return False


class CountingRuntime:
    """Wraps a runtime and records the size of every call that reaches it."""

    def __init__(self, runtime: EmbeddingRuntime) -> None:
        self.runtime = runtime
        self.call_sizes: list[int] = []

    async def embed(self, chips: Chips) -> Embeddings:
        self.call_sizes.append(len(chips))
        return await self.runtime.embed(chips)

    async def is_ready(self) -> bool:
        return await self.runtime.is_ready()


def numbered_chips(first: int, count: int) -> Chips:
    """``count`` chips whose pixels all hold their number (first, first + 1, ...), told apart by value."""
    values = np.arange(first, first + count, dtype=np.uint8)
    return np.broadcast_to(values[:, None, None, None], (count, 150, 150, 3)).copy()


async def test_concurrent_callers_share_runtime_calls_and_get_their_own_rows() -> None:
    runtime = CountingRuntime(RowEchoRuntime())
    batcher = MicroBatcher(runtime, max_batch=64, max_delay_s=0.01)
    requests = [numbered_chips(first=3 * i, count=1 + i % 3) for i in range(20)]

    results = await asyncio.gather(*(batcher.embed(chips) for chips in requests))

    assert len(runtime.call_sizes) < len(requests)
    assert sum(runtime.call_sizes) == sum(len(chips) for chips in requests)
    for chips, embeddings in zip(requests, results, strict=True):
        np.testing.assert_array_equal(embeddings[:, 0], chips[:, 0, 0, 0].astype(np.float32))


async def test_no_runtime_call_holds_more_than_max_batch_chips() -> None:
    runtime = CountingRuntime(RowEchoRuntime())
    batcher = MicroBatcher(runtime, max_batch=8, max_delay_s=0.01)

    await asyncio.gather(*(batcher.embed(numbered_chips(5 * i, 5)) for i in range(10)))

    assert max(runtime.call_sizes) <= 8
    assert sum(runtime.call_sizes) == 50


async def test_request_larger_than_max_batch_is_split_and_reassembled_in_order() -> None:
    runtime = CountingRuntime(RowEchoRuntime())
    batcher = MicroBatcher(runtime, max_batch=8, max_delay_s=0.01)
    chips = numbered_chips(0, 20)

    embeddings = await batcher.embed(chips)

    assert runtime.call_sizes == [8, 8, 4]
    np.testing.assert_array_equal(embeddings[:, 0], np.arange(20, dtype=np.float32))


async def test_full_batch_goes_without_waiting_for_the_delay() -> None:
    runtime = CountingRuntime(RowEchoRuntime())
    batcher = MicroBatcher(runtime, max_batch=4, max_delay_s=30.0)
    started = time.monotonic()

    await asyncio.gather(*(batcher.embed(numbered_chips(i, 1)) for i in range(4)))

    assert time.monotonic() - started < 5.0
    assert runtime.call_sizes == [4]


async def test_runtime_failure_reaches_every_waiting_caller() -> None:
    batcher = MicroBatcher(FailingRuntime(), max_batch=64, max_delay_s=0.01)

    outcomes = await asyncio.gather(*(batcher.embed(numbered_chips(i, 2)) for i in range(5)), return_exceptions=True)

    assert all(isinstance(outcome, TritonUnavailable) for outcome in outcomes)


async def test_cancelled_callers_chips_are_not_sent() -> None:
    runtime = CountingRuntime(RowEchoRuntime())
    batcher = MicroBatcher(runtime, max_batch=64, max_delay_s=0.05)
    withdrawn = asyncio.ensure_future(batcher.embed(numbered_chips(0, 3)))
    kept = asyncio.ensure_future(batcher.embed(numbered_chips(10, 2)))
    await asyncio.sleep(0)
    withdrawn.cancel()

    embeddings = await kept

    assert withdrawn.cancelled()
    assert runtime.call_sizes == [2]
    np.testing.assert_array_equal(embeddings[:, 0], [10, 11])


async def test_readiness_is_the_wrapped_runtimes() -> None:
    assert await MicroBatcher(RowEchoRuntime()).is_ready() is True
    assert await MicroBatcher(FailingRuntime()).is_ready() is False


async def test_batched_model_descriptors_equal_one_by_one_descriptors(
    onnx_embedder: OnnxRuntimeEmbedder,
) -> None:
    rng = np.random.default_rng(7)
    requests = [rng.integers(0, 256, size=(1 + i % 2, 150, 150, 3), dtype=np.uint8) for i in range(6)]
    runtime = CountingRuntime(onnx_embedder)
    batcher = MicroBatcher(runtime, max_batch=64, max_delay_s=0.01)
    one_by_one = [await onnx_embedder.embed(chips) for chips in requests]

    batched = await asyncio.gather(*(batcher.embed(chips) for chips in requests))

    assert len(runtime.call_sizes) < len(requests)
    for expected, got in zip(one_by_one, batched, strict=True):
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_max_batch_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        MicroBatcher(RowEchoRuntime(), max_batch=0)
