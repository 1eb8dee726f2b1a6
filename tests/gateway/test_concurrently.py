"""The gateway's two calls at once (collection and embedding): a failure of one cancels the other."""

from __future__ import annotations

import asyncio

import pytest

from facerec_gateway.clients import concurrently
from facerec_gateway.errors import DependencyUnavailable


async def test_both_results_come_back_in_order() -> None:
    async def late(value: str) -> str:
        await asyncio.sleep(0.01)
        return value

    assert await concurrently(late("collection"), asyncio.sleep(0, result="photo")) == ("collection", "photo")


async def test_a_failure_cancels_the_other_call_and_is_raised_as_it_is() -> None:
    embedding_cancelled = asyncio.Event()

    async def registry_down() -> None:
        raise DependencyUnavailable("registry is unavailable: connection refused")

    async def long_embedding() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            embedding_cancelled.set()
            raise

    with pytest.raises(DependencyUnavailable, match="registry is unavailable"):
        await asyncio.wait_for(concurrently(registry_down(), long_embedding()), 5)
    await asyncio.wait_for(embedding_cancelled.wait(), 1)


async def test_cancelling_the_caller_cancels_both_calls() -> None:
    cancelled: list[str] = []

    async def waits(name: str) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(name)
            raise

    caller = asyncio.create_task(concurrently(waits("collection"), waits("embedding")))
    await asyncio.sleep(0.01)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await asyncio.sleep(0)
    assert sorted(cancelled) == ["collection", "embedding"]
