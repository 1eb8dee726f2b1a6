"""Streams through the real stack: BulkEnroll and IdentifyStream live as long as the client keeps them, each
message has its own deadline, and a deadline the client set still ends the stream.

The gateway here has small timeouts (a few seconds) so that a stream outliving them takes seconds, not minutes.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from facerec.runtime.server import ServiceRunner
from facerec.sdk import AsyncClient, DeadlineExceeded, Enrollment
from facerec_gateway.app import GatewayApp
from tests.fixtures.stack import ALPHA_KEY, Stack, gateway_settings, wait_serving

MESSAGE_TIMEOUT_S = 3.0  # each message's work: far more than one sample photo needs
PAUSE_S = 1.2  # between messages: 4 messages outlive both timeouts below


async def short_timeouts_gateway(stack: Stack, message_timeout_s: float) -> ServiceRunner:
    settings = gateway_settings(
        stack.embedder.address,
        stack.registry.address,
        downstream_timeout_s=MESSAGE_TIMEOUT_S,  # once a stream's whole deadline: must no longer bound it
        stream_message_timeout_s=message_timeout_s,
    )
    gateway = ServiceRunner(GatewayApp(settings), settings)
    await gateway.start()
    await wait_serving(gateway.address)
    return gateway


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[AsyncClient]:
    gateway = await short_timeouts_gateway(stack, MESSAGE_TIMEOUT_S)
    try:
        async with AsyncClient(gateway.address, ALPHA_KEY, timeout=30) as client:
            yield client
    finally:
        await gateway.stop(0)


@pytest.fixture
async def collection(client: AsyncClient) -> str:
    name = f"streams-{uuid.uuid4().hex[:8]}"
    await client.create_collection(name)
    return name


async def paced(photos: list[Path], pause_s: float = PAUSE_S) -> AsyncIterator[Enrollment]:
    """One person per photo, sent ``pause_s`` apart (a slow client, or a long import)."""
    for index, photo in enumerate(photos):
        if index:
            await asyncio.sleep(pause_s)
        yield Enrollment(person_id=f"person-{index}", photos=[photo])


async def paced_frames(photos: list[Path], pause_s: float = PAUSE_S) -> AsyncIterator[Path]:
    for index, photo in enumerate(photos):
        if index:
            await asyncio.sleep(pause_s)
        yield photo


def four_photos(samples_dir: Path) -> list[Path]:
    return [samples_dir / name for name in ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg")]


async def test_bulk_enroll_lasting_longer_than_every_timeout_completes(client, collection, samples_dir) -> None:
    started = asyncio.get_running_loop().time()
    result = await client.bulk_enroll(paced(four_photos(samples_dir)), collection=collection)
    assert asyncio.get_running_loop().time() - started > MESSAGE_TIMEOUT_S
    assert (result.requests, result.faces_enrolled, result.people_enrolled) == (4, 4, 4), result.rejected
    assert (await client.get_collection(collection)).person_count == 4


async def test_identify_stream_lasting_longer_than_every_timeout_answers_every_frame(
    client, collection, samples_dir
) -> None:
    await client.enroll("obama", samples_dir / "obama.jpg", collection=collection)
    results = [r async for r in client.identify_stream(paced_frames(four_photos(samples_dir)), collection=collection)]
    assert [r.frame_id for r in results] == ["0", "1", "2", "3"]
    assert [r.faces[0].match.person_id if r.faces[0].match else None for r in results] == [
        "obama",
        "obama",
        "obama",
        None,
    ]


async def test_a_deadline_the_client_set_still_ends_a_bulk_enrollment(client, collection, samples_dir) -> None:
    with pytest.raises(DeadlineExceeded):
        await client.bulk_enroll(paced(four_photos(samples_dir)), collection=collection, timeout=2 * PAUSE_S)


async def test_a_deadline_the_client_set_still_ends_an_identify_stream(client, collection, samples_dir) -> None:
    frames = client.identify_stream(paced_frames(four_photos(samples_dir)), collection=collection, timeout=2 * PAUSE_S)
    with pytest.raises(DeadlineExceeded):
        async for _ in frames:
            pass


@pytest.fixture
async def hurried_client(stack: Stack) -> AsyncIterator[AsyncClient]:
    """A gateway whose stream messages get 1 ms each: no photo is embedded that fast."""
    gateway = await short_timeouts_gateway(stack, message_timeout_s=0.001)
    try:
        async with AsyncClient(gateway.address, ALPHA_KEY, timeout=30) as client:
            yield client
    finally:
        await gateway.stop(0)


async def test_a_person_whose_work_outlives_its_deadline_is_refused_and_the_stream_goes_on(
    hurried_client: AsyncClient, samples_dir
) -> None:
    name = f"streams-{uuid.uuid4().hex[:8]}"
    await hurried_client.create_collection(name)
    result = await hurried_client.bulk_enroll(paced(four_photos(samples_dir)[:2], pause_s=0), collection=name)
    assert (result.requests, result.faces_enrolled) == (2, 0)
    assert sorted(r.person_id for r in result.rejected) == ["person-0", "person-1"]
    assert all("deadline exceeded" in (r.error or "") for r in result.rejected)


async def test_a_frame_whose_work_outlives_its_deadline_ends_the_stream(
    hurried_client: AsyncClient, samples_dir
) -> None:
    # A frame has no place in the response stream for an error: the stream ends with the frame's status.
    with pytest.raises(DeadlineExceeded):
        async for _ in hurried_client.identify_stream(paced_frames(four_photos(samples_dir)[:1])):
            pass
