"""What tracing costs, in one process: a stage timed with tracing off and on, a unary gRPC call to a service with
tracing off and on, and (``--identify N``) Identify on the real stack (Triton, embedder, registry, gateway) with
tracing off and on. Spans go over OTLP/gRPC in batches to a receiver on loopback, as they would to a collector.

    .venv/bin/python -m benchmarks.tracing --calls 2000 --stages 2000 --identify 40

Prints a table, then one JSON object (last line): ``stage_on_vs_off``, ``call_on_vs_off`` and
``identify_on_vs_off`` (ratios of mean time, on / off) and the costs behind them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import grpc

from benchmarks.common import machine, percentile_ms, print_json, print_table
from facerec.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from facerec.runtime import tracing
from facerec.runtime.server import ServiceRunner
from facerec.runtime.settings import ServiceSettings
from facerec.runtime.stages import StageTimer
from tests.paths import SAMPLES_DIR
from tests.runtime.observed_stack import observed_stack
from tests.runtime.otlp_receiver import otlp_receiver
from tests.runtime.probe import ProbeApp


def stage_cost_s(stages: int, traced: bool) -> float:
    """Mean seconds of one empty timed stage inside a call's span (traced) or outside any tracing."""
    timer = StageTimer("benchmark")
    if not traced:
        started = time.perf_counter()
        for _ in range(stages):
            with timer.time("decide"):
                pass
        return (time.perf_counter() - started) / stages
    tracer = tracing.make_tracer("benchmark-stages")
    with tracing.traced_by(tracer), tracer.start_as_current_span("call"):
        started = time.perf_counter()
        for _ in range(stages):
            with timer.time("decide"):
                pass
        return (time.perf_counter() - started) / stages


def ratio(off: list[float], on: list[float]) -> float:
    """Mean time on over mean time off."""
    return (sum(on) / len(on)) / (sum(off) / len(off))


async def call_times_s(calls: int) -> tuple[list[float], list[float]]:
    """Seconds of ``calls`` unary calls to a probe service with tracing off and as many to one with tracing on,
    alternated so that both see the same load of a shared machine."""
    runners = [
        ServiceRunner(ProbeApp(), ServiceSettings(port=0, metrics_port=0, grace_period_s=0.5, tracing=mode))
        for mode in ("off", "otlp")
    ]
    times: tuple[list[float], list[float]] = ([], [])
    try:
        for runner in runners:
            await runner.start()
        channels = [grpc.aio.insecure_channel(runner.address) for runner in runners]
        stubs = [embedder_pb2_grpc.EmbedderStub(channel) for channel in channels]
        for index in range(2 * (calls + calls // 10 + 1)):
            started = time.perf_counter()
            await stubs[index % 2].GetModel(embedder_pb2.GetModelRequest(), timeout=10)
            if index >= 2 * (calls // 10 + 1):  # after a warm-up
                times[index % 2].append(time.perf_counter() - started)
        for channel in channels:
            await channel.close()
    finally:
        for runner in runners:
            await runner.stop(0)
    return times


async def identify_times_s(triton_url: str, calls: int, data_dir: Path) -> tuple[list[float], list[float]]:
    """Seconds of ``calls`` Identify calls of one face photo on a stack with tracing off, and as many on one with
    tracing on (both on the same Triton), alternated."""
    photo = (SAMPLES_DIR / "obama2.jpg").read_bytes()
    enrolled = {"obama": SAMPLES_DIR / "obama.jpg"}
    times: tuple[list[float], list[float]] = ([], [])
    for mode in ("off", "on"):
        (data_dir / mode).mkdir()
    async with (
        observed_stack(triton_url, data_dir / "off", enrolled, tracing="off") as off,
        observed_stack(triton_url, data_dir / "on", enrolled, tracing="otlp") as on,
    ):
        stacks = (off, on)
        for index in range(2 * (calls + 3)):
            started = time.perf_counter()
            await stacks[index % 2].identify(photo, f"call-{index}")
            if index >= 6:  # after a warm-up
                times[index % 2].append(time.perf_counter() - started)
    return times


def identify_figures(calls: int) -> dict[str, float]:
    """Identify's mean time with tracing off and on, and their ratio."""
    from facerec_embedder.triton.launcher import TritonServer
    from tests.fixtures.triton import ensure_model_converted

    ensure_model_converted()
    triton = TritonServer()
    triton.start(timeout=120)
    try:
        with tempfile.TemporaryDirectory() as data_dir:
            off, on = asyncio.run(identify_times_s(triton.grpc_url, calls, Path(data_dir)))
    finally:
        triton.stop()
    return {
        "identify_off_mean_ms": round(sum(off) / len(off) * 1e3, 2),
        "identify_on_mean_ms": round(sum(on) / len(on) * 1e3, 2),
        "identify_on_vs_off": round(ratio(off, on), 3),
        "identify_p50_on_vs_off": round(percentile_ms(on, 50) / percentile_ms(off, 50), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000, help="unary calls per mode")
    # More than the span queue holds (OTEL_BSP_MAX_QUEUE_SIZE, 2048) in one export cycle would drop spans.
    parser.add_argument("--stages", type=int, default=2000, help="timed stages per mode")
    parser.add_argument("--identify", type=int, default=0, help="Identify calls per mode on the real stack (0: none)")
    args = parser.parse_args()
    with otlp_receiver() as receiver:
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint
        stage_off, stage_on = stage_cost_s(args.stages, False), stage_cost_s(args.stages, True)
        off, on = asyncio.run(call_times_s(args.calls))
        identify = identify_figures(args.identify) if args.identify else {}
        tracing.force_flush()
        exported = len(receiver.spans())
        tracing.shutdown()
    rows = [
        ("stage (empty block)", f"{stage_off * 1e6:.1f} us", f"{stage_on * 1e6:.1f} us", f"{stage_on / stage_off:.2f}"),
        (
            "unary call, p50",
            f"{percentile_ms(off, 50) * 1e3:.0f} us",
            f"{percentile_ms(on, 50) * 1e3:.0f} us",
            f"{percentile_ms(on, 50) / percentile_ms(off, 50):.2f}",
        ),
        (
            "unary call, mean",
            f"{sum(off) / len(off) * 1e6:.0f} us",
            f"{sum(on) / len(on) * 1e6:.0f} us",
            f"{ratio(off, on):.2f}",
        ),
    ]
    if identify:
        rows.append(
            (
                "Identify, mean",
                f"{identify['identify_off_mean_ms']:.1f} ms",
                f"{identify['identify_on_mean_ms']:.1f} ms",
                f"{identify['identify_on_vs_off']:.3f}",
            )
        )
    print(f"tracing off vs on ({machine()}); {exported} spans exported")
    print_table(("what", "off", "on", "on/off"), rows)
    print_json(
        {
            "stage_off_us": round(stage_off * 1e6, 2),
            "stage_on_us": round(stage_on * 1e6, 2),
            "stage_on_vs_off": round(stage_on / stage_off, 2),
            "call_off_mean_us": round(sum(off) / len(off) * 1e6, 1),
            "call_on_mean_us": round(sum(on) / len(on) * 1e6, 1),
            "call_on_vs_off": round(ratio(off, on), 3),
            "spans_exported": exported,
            **identify,
        }
    )


if __name__ == "__main__":
    main()
