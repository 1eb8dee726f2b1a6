"""Admission control and dropped work: the in-flight bound, refusals that say when to retry, work of callers who
are gone never started (before decoding, detection and the embedding), oldest calls served first."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from google.rpc import error_details_pb2
from prometheus_client import REGISTRY
from tritonclient.utils import InferenceServerException

from facerec.runtime.deadlines import Deadline
from facerec_embedder.admission import MAX_RETRY_AFTER_S, Admission, call_deadline, default_max_in_flight
from facerec_embedder.app import face_detector
from facerec_embedder.batching import MicroBatcher
from facerec_embedder.detection import FaceDetector
from facerec_embedder.errors import CallExpired, ImageTooLarge, Overloaded
from facerec_embedder.pipeline import FacePipeline
from facerec_embedder.runtime import Chips, Embeddings, OnnxRuntimeEmbedder, TritonEmbedder
from facerec_embedder.settings import EmbedderSettings

from .photos import encoded, sample, sample_image


def stage_count(stage: str) -> float:
    value = REGISTRY.get_sample_value("facerec_stage_duration_seconds_count", {"service": "embedder", "stage": stage})
    return value or 0.0


def refusals(reason: str) -> float:
    return REGISTRY.get_sample_value("facerec_embedder_refusals_total", {"reason": reason}) or 0.0


def retry_delay_s(error: Overloaded) -> float:
    (info,) = [detail for detail in error.details if isinstance(detail, error_details_pb2.RetryInfo)]
    return info.retry_delay.ToTimedelta().total_seconds()


class CountingRuntime:
    """Counts the chips it is asked to embed; zeros as descriptors."""

    def __init__(self) -> None:
        self.chips = 0

    async def embed(self, chips: Chips) -> Embeddings:
        self.chips += len(chips)
        return np.zeros((len(chips), 128), dtype=np.float32)

    async def is_ready(self) -> bool:
        return True


@pytest.fixture
def one_thread() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="detect") as executor:
        yield executor


# ------------------------------------------------------------------------------------------------ admission


def test_calls_past_the_bound_are_refused_at_once_with_a_retry_delay() -> None:
    admission = Admission(max_in_flight=2, retry_after_s=0.25)
    with admission.admitted(), admission.admitted():
        started = time.perf_counter()
        with pytest.raises(Overloaded) as refused, admission.admitted():
            pass
        assert time.perf_counter() - started < 0.01
    assert "overloaded" in refused.value.message and "may be retried after 250 ms" in refused.value.message
    assert retry_delay_s(refused.value) == pytest.approx(0.25)


def test_a_place_is_given_back_when_the_call_ends_or_fails() -> None:
    admission = Admission(max_in_flight=1, retry_after_s=0.1)
    with pytest.raises(RuntimeError), admission.admitted():
        raise RuntimeError("the call failed")
    with admission.admitted():
        assert admission.in_flight == 1
    assert admission.in_flight == 0


def test_the_advised_delay_grows_with_recent_refusals_up_to_a_ceiling() -> None:
    admission = Admission(max_in_flight=1, retry_after_s=0.2)
    delays = []
    with admission.admitted():
        for _ in range(100):
            with pytest.raises(Overloaded) as refused, admission.admitted():
                pass
            delays.append(refused.value.retry_after_s)
    assert delays[0] == pytest.approx(0.2) and delays[1] == pytest.approx(0.4)  # 1 earlier refusal, 1 place: x2
    assert delays == sorted(delays) and delays[-1] == MAX_RETRY_AFTER_S


def test_an_overload_refusal_reads_differently_from_an_oversized_photo() -> None:
    overloaded = Overloaded("the embedder is overloaded: 8 calls of photos in flight (limit 8)", 0.25)
    too_large = ImageTooLarge("the image has 50,000,000 pixels; the limit is 40,000,000")
    assert "retried" in overloaded.message and "retried" not in too_large.message
    assert overloaded.details and not too_large.details


def test_the_default_bound_is_four_calls_per_detection_worker() -> None:
    assert EmbedderSettings().in_flight_limit() == default_max_in_flight(2) == 8
    assert EmbedderSettings(detect_workers=4).in_flight_limit() == 16
    assert EmbedderSettings(max_in_flight=3).in_flight_limit() == 3


def test_tritons_full_queue_becomes_the_embedders_overload_refusal() -> None:
    triton = TritonEmbedder("127.0.0.1:1", overload_retry_after_s=0.3)
    before = refusals("triton_overloaded")
    error = triton._translated(InferenceServerException("Exceeds maximum queue size", status="StatusCode.UNAVAILABLE"))
    assert isinstance(error, Overloaded) and error.retry_after_s == pytest.approx(0.3)
    assert "Triton" in error.message and "may be retried" in error.message
    assert refusals("triton_overloaded") == before + 1


# ------------------------------------------------------------------------------------------------ dropped work


async def test_a_call_whose_deadline_has_passed_is_dropped_before_decoding(
    detector: FaceDetector, one_thread: ThreadPoolExecutor
) -> None:
    runtime = CountingRuntime()
    pipeline = FacePipeline(detector, runtime, one_thread)
    decodes, expired = stage_count("decode"), refusals("expired")
    with call_deadline(Deadline(time.monotonic() - 1)), pytest.raises(CallExpired, match="before decoding"):
        await pipeline.analyze(sample("obama.jpg"))
    assert stage_count("decode") == decodes and runtime.chips == 0
    assert refusals("expired") == expired + 1


async def test_a_deadline_passing_while_queued_drops_the_work_before_detection(
    detector: FaceDetector, one_thread: ThreadPoolExecutor
) -> None:
    pipeline = FacePipeline(detector, CountingRuntime(), one_thread)
    busy = threading.Event()
    one_thread.submit(busy.wait, 5)  # the only thread is taken: the call's work waits
    detections = stage_count("detect")
    with call_deadline(Deadline.after(0.2)):
        analysis = asyncio.ensure_future(pipeline.analyze(sample("obama.jpg")))
    await asyncio.sleep(0.4)
    busy.set()
    with pytest.raises(CallExpired):
        await analysis
    assert stage_count("detect") == detections


async def test_a_cancelled_call_never_starts_its_queued_work(
    detector: FaceDetector, one_thread: ThreadPoolExecutor
) -> None:
    pipeline = FacePipeline(detector, CountingRuntime(), one_thread)
    busy = threading.Event()
    one_thread.submit(busy.wait, 5)
    decodes = stage_count("decode")
    analysis = asyncio.ensure_future(pipeline.analyze(sample("obama.jpg")))
    await asyncio.sleep(0.05)
    analysis.cancel()
    with pytest.raises(asyncio.CancelledError):
        await analysis
    await asyncio.sleep(0.05)  # the cancellation reaches the executor's queue
    busy.set()
    await asyncio.sleep(0.2)
    assert stage_count("decode") == decodes


async def test_a_call_that_expires_after_detection_sends_no_chip_to_the_model(
    detector: FaceDetector, one_thread: ThreadPoolExecutor
) -> None:
    runtime = CountingRuntime()
    pipeline = FacePipeline(detector, MicroBatcher(runtime, max_delay_s=0.05), one_thread)
    with call_deadline(Deadline.after(30)):
        await pipeline.analyze(sample("obama.jpg"))  # warm: the detector's first call builds its model
    chips = runtime.chips
    with call_deadline(Deadline.after(0.03)), pytest.raises(CallExpired):
        # Detection of this photo takes longer than 30 ms: the deadline passes before the embedding.
        await pipeline.analyze(sample("obama.jpg"))
    assert runtime.chips == chips


async def test_the_batcher_leaves_out_chips_of_callers_whose_deadline_passed_while_waiting() -> None:
    runtime = CountingRuntime()
    batcher = MicroBatcher(runtime, max_delay_s=0.1)
    chips = np.zeros((2, 150, 150, 3), dtype=np.uint8)
    with call_deadline(Deadline.after(0.02)):
        expiring = asyncio.ensure_future(batcher.embed(chips))
    with call_deadline(Deadline.after(30)):
        kept = asyncio.ensure_future(batcher.embed(chips[:1]))
    with pytest.raises(CallExpired, match="before the embedding"):
        await expiring
    assert (await kept).shape == (1, 128)
    assert runtime.chips == 1


# ------------------------------------------------------------------------------------------------ in turn


async def test_with_workers_the_first_admitted_of_several_large_photos_is_served_as_if_alone(
    onnx_embedder: OnnxRuntimeEmbedder, one_thread: ThreadPoolExecutor
) -> None:
    # A 13 MP photo is several pieces of work (reduced decode, detection beside the full decode, alignment):
    # photos in turn, the first call ends after about a quarter of the four calls' time, not near the end.
    phone_photo = encoded(sample_image("obama.jpg").convert("RGB").resize((3230, 4032)), "JPEG")
    pipeline = FacePipeline(face_detector(EmbedderSettings()), onnx_embedder, one_thread, workers=1)
    await pipeline.analyze(phone_photo)  # warm: the detector's model is built in the thread on first use
    started = time.monotonic()
    finished: dict[int, float] = {}

    async def analyze(index: int) -> None:
        with call_deadline(Deadline.after(60)):
            await pipeline.analyze(phone_photo)
        finished[index] = time.monotonic() - started

    await asyncio.gather(*(analyze(index) for index in range(4)))
    assert list(finished) == [0, 1, 2, 3]
    assert finished[0] < 0.5 * finished[3], finished
