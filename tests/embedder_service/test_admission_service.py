"""The embedder service's admission control on the real Triton: past its in-flight bound a call is refused at once
with RESOURCE_EXHAUSTED and a retry delay; an oversized photo is RESOURCE_EXHAUSTED without one; a call whose
deadline passes while it waits is dropped before its work starts; the queue and the refusals are metrics."""

from __future__ import annotations

import asyncio
import struct
import time
import zlib
from collections.abc import AsyncIterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from PIL import Image
from prometheus_client import REGISTRY

from facerec.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from facerec.runtime.server import ServiceRunner
from facerec_embedder.app import EmbedderApp
from facerec_embedder.settings import EmbedderSettings
from facerec_embedder.triton.launcher import TritonServer
from tests.embedder_domain.photos import encoded, sample_image
from tests.fixtures.stack import QUICK, wait_serving


@pytest.fixture(scope="module")
def phone_photo() -> bytes:
    """A 13 MP JPEG of a face: about half a second of the embedder's work on this machine."""
    return encoded(sample_image("obama.jpg").convert("RGB").resize((3230, 4032), Image.Resampling.BICUBIC), "JPEG")


@pytest.fixture
async def single_place(triton_server: TritonServer) -> AsyncIterator[ServiceRunner]:
    """An embedder that works on one call at a time (one detection worker, one place)."""
    settings = EmbedderSettings(
        **QUICK,  # type: ignore[arg-type]
        triton_url=triton_server.grpc_url,
        detect_workers=1,
        max_in_flight=1,
        overload_retry_after_ms=300,
    )
    runner = ServiceRunner(EmbedderApp(settings), settings)
    await runner.start()
    await wait_serving(runner.address)
    yield runner
    await runner.stop(0)


@pytest.fixture
async def stub(single_place: ServiceRunner) -> AsyncIterator[embedder_pb2_grpc.EmbedderStub]:
    async with grpc.aio.insecure_channel(single_place.address, options=[("grpc.enable_retries", 0)]) as channel:
        yield embedder_pb2_grpc.EmbedderStub(channel)


def retry_delays_s(error: grpc.aio.AioRpcError) -> list[float]:
    status = rpc_status.from_call(error)
    delays = []
    for detail in status.details if status is not None else ():
        info = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            delays.append(info.retry_delay.ToTimedelta().total_seconds())
    return delays


def metric(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


async def test_a_call_past_the_bound_is_refused_at_once_with_a_retry_delay(stub, phone_photo: bytes) -> None:
    request = embedder_pb2.EmbedPhotoRequest(image=phone_photo)
    refused: grpc.aio.AioRpcError | None = None
    # On a loaded machine the admitted call can finish before the second one arrives (then the second is
    # admitted too, rightly): try the scene again, a few times at most.
    for _ in range(3):
        busy = asyncio.ensure_future(stub.EmbedPhoto(request, timeout=30))
        await asyncio.sleep(0.2)  # admitted and working
        if metric("facerec_embedder_in_flight_calls", {"work": "photos"}) != 1:
            await busy
            continue
        refused_before = metric("facerec_embedder_refusals_total", {"reason": "overloaded"})
        started = time.perf_counter()
        try:
            await stub.EmbedPhoto(request, timeout=30)
        except grpc.aio.AioRpcError as error:
            refused = error
        elapsed = time.perf_counter() - started
        faces = len((await busy).faces)
        if refused is not None:
            break
    assert refused is not None, "the second call was never sent while the first was still at work"
    print(f"refused in {elapsed * 1000:.1f} ms")
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    message = refused.details() or ""
    assert "overloaded" in message and "may be retried after 300 ms" in message
    assert retry_delays_s(refused) == [pytest.approx(0.3)]
    assert elapsed < 0.25  # the target is 50 ms; this loaded 2-core machine sends a 13 MP photo first
    assert metric("facerec_embedder_refusals_total", {"reason": "overloaded"}) == refused_before + 1
    assert faces == 1
    assert metric("facerec_embedder_in_flight_calls", {"work": "photos"}) == 0


async def test_an_oversized_photo_is_resource_exhausted_without_a_retry_delay(stub) -> None:
    bomb = _png_header(50_000, 50_000)  # 2.5 gigapixels announced in 60 bytes
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.EmbedPhoto(embedder_pb2.EmbedPhotoRequest(image=bomb), timeout=30)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert retry_delays_s(refused.value) == [] and "retried" not in (refused.value.details() or "")


async def test_a_call_whose_deadline_passes_while_it_waits_is_dropped_before_its_work(
    single_place: ServiceRunner, phone_photo: bytes
) -> None:
    # A bound of two places with one worker: the second call waits its turn behind the first.
    settings = single_place.settings
    assert isinstance(settings, EmbedderSettings)
    two_places = EmbedderSettings(**{**settings.model_dump(), "max_in_flight": 2})
    runner = ServiceRunner(EmbedderApp(two_places), two_places)
    await runner.start()
    try:
        await wait_serving(runner.address)
        async with grpc.aio.insecure_channel(runner.address) as channel:
            stub = embedder_pb2_grpc.EmbedderStub(channel)
            request = embedder_pb2.EmbedPhotoRequest(image=phone_photo)
            decodes = metric("facerec_stage_duration_seconds_count", {"service": "embedder", "stage": "decode"})
            first = asyncio.ensure_future(stub.EmbedPhoto(request, timeout=30))
            await asyncio.sleep(0.05)
            with pytest.raises(grpc.aio.AioRpcError) as late:
                await stub.EmbedPhoto(request, timeout=0.1)
            assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, late.value
            assert len((await first).faces) == 1
        # The first call decoded twice (reduced, then full); the second never started decoding.
        after = metric("facerec_stage_duration_seconds_count", {"service": "embedder", "stage": "decode"})
        assert after - decodes <= 2, f"{after - decodes} decodes for one photo and a call dropped before its work"
    finally:
        await runner.stop(0)


def _png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
