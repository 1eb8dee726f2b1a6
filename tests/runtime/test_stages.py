"""Per-stage timings: one histogram labelled by service and stage, a debug line with the request id, and a child
span of the call's span when the call is traced."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from facerec.runtime import tracing
from facerec.runtime.context import request_id
from facerec.runtime.stages import STAGES, StageTimer, in_executor
from tests.runtime.json_lines import Lines, json_lines


def observed(service: str, stage: str) -> tuple[float, float]:
    """(count, sum) of the stage histogram for ``service`` and ``stage``."""
    labels = {"service": service, "stage": stage}
    count = REGISTRY.get_sample_value("facerec_stage_duration_seconds_count", labels) or 0.0
    total = REGISTRY.get_sample_value("facerec_stage_duration_seconds_sum", labels) or 0.0
    return count, total


@pytest.fixture
def stage_lines() -> Iterator[Lines]:
    with json_lines("facerec.stages") as lines:
        yield lines


def test_the_stages_are_those_of_the_issue() -> None:
    assert STAGES == ("decode", "detect", "align", "embed", "search", "decide")


def test_a_timed_block_is_one_observation_of_its_stage() -> None:
    before_count, before_sum = observed("test-time", "detect")
    with StageTimer("test-time").time("detect"):
        time.sleep(0.02)
    count, total = observed("test-time", "detect")
    assert count == before_count + 1
    assert 0.02 <= total - before_sum < 1.0


def test_a_block_that_raises_is_still_timed_and_the_error_goes_on() -> None:
    before, _ = observed("test-raise", "decode")
    with pytest.raises(ValueError, match="not an image"), StageTimer("test-raise").time("decode"):
        raise ValueError("not an image")
    assert observed("test-raise", "decode")[0] == before + 1


def test_a_stage_timed_elsewhere_is_recorded_as_given() -> None:
    before_count, before_sum = observed("test-record", "embed")
    StageTimer("test-record").record("embed", 0.125)
    count, total = observed("test-record", "embed")
    assert (count - before_count, round(total - before_sum, 6)) == (1, 0.125)


def test_each_stage_writes_a_debug_line_with_the_request_id(stage_lines: Lines) -> None:
    token = request_id.set("rid-stage-1")
    try:
        with StageTimer("test-log").time("search"):
            pass
    finally:
        request_id.reset(token)
    (line,) = [line for line in stage_lines.lines if line.get("request_id") == "rid-stage-1"]
    assert line["stage"] == "search" and line["level"] == "DEBUG" and isinstance(line["ms"], float)


def test_no_debug_line_is_formatted_above_debug(stage_lines: Lines) -> None:
    logging.getLogger("facerec.stages").setLevel(logging.INFO)
    StageTimer("test-quiet").record("align", 0.001)
    assert stage_lines.lines == []


async def test_work_run_in_a_worker_thread_keeps_the_request_id(stage_lines: Lines) -> None:
    timer = StageTimer("test-thread")

    def detect() -> str:
        with timer.time("detect"):
            return request_id.get()

    token = request_id.set("rid-thread-1")
    try:
        with ThreadPoolExecutor(1) as executor:
            seen = await in_executor(executor, detect)
            # The plain loop API runs the work without the caller's context: why in_executor exists.
            plain = await asyncio.get_running_loop().run_in_executor(executor, request_id.get)
    finally:
        request_id.reset(token)
    assert (seen, plain) == ("rid-thread-1", "")
    assert [line["request_id"] for line in stage_lines.lines if line.get("stage") == "detect"] == ["rid-thread-1"]


def test_without_tracing_a_stage_opens_no_span() -> None:
    with StageTimer("test-untraced").time("decide"):
        assert not trace.get_current_span().get_span_context().is_valid


def test_with_tracing_each_stage_is_a_child_span_of_the_current_span() -> None:
    exporter = InMemorySpanExporter()
    tracer = tracing.make_tracer("test-traced", exporter)
    try:
        timer = StageTimer("test-traced")
        with tracing.traced_by(tracer), tracer.start_as_current_span("call") as call:
            with timer.time("search"):
                pass
            timer.record("embed", 0.01)
        spans = {span.name: span for span in exporter.get_finished_spans()}
    finally:
        tracing.shutdown()
    assert set(spans) == {"call", "search", "embed"}
    call_id = call.get_span_context().span_id
    for stage in ("search", "embed"):
        parent = spans[stage].parent
        assert parent is not None and parent.span_id == call_id
    embed = spans["embed"]
    assert embed.end_time is not None and embed.start_time is not None
    assert abs((embed.end_time - embed.start_time) / 1e9 - 0.01) < 1e-3


def test_a_stage_recorded_outside_any_span_opens_none() -> None:
    exporter = InMemorySpanExporter()
    tracer = tracing.make_tracer("test-orphan", exporter)
    try:
        with tracing.traced_by(tracer):
            StageTimer("test-orphan").record("embed", 0.01)  # e.g. one Triton batch of several calls' faces
    finally:
        tracing.shutdown()
    assert exporter.get_finished_spans() == ()
