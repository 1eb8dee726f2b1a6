"""Overload benchmark: Identify through the gateway at, and far past, the concurrency the stack can serve.

    .venv/bin/python -m benchmarks.overload [--seconds 10] [--photos 8] [--deadline 5] [--size 4032x3024]

The real stack on loopback (Triton with the CPU model config; registry, embedder with its default settings and
gateway in one child process, the clients in this one), a few people enrolled; the photos are real face photos
padded and resized to ``--size`` (by default 12 MP, as a phone takes them). Closed-loop clients send Identify
with a deadline, one call at a time each, over a channel without retries; a client whose call is refused with
RESOURCE_EXHAUSTED waits the delay the refusal advises (its ``google.rpc.RetryInfo``; 100 ms when there is
none) and sends again, as the SDK does.

First the peak: goodput (photos identified within their deadline per second) at 1, 2 and 4 clients; the peak
concurrency is the one with the highest goodput. Then 2x and 16x that many clients (or ``--base-clients``).
Prints a table, then one JSON object as the last line: ``peak_goodput``, ``goodput_2x``, ``goodput_16x``,
``goodput_16x_vs_peak`` (target >= 0.9), ``refusal_p50_ms`` / ``refusal_p99_ms`` at 16x (target: within 50 ms),
``deadline_exceeded_16x``, and ``max_overrun_ms`` (how far the slowest call at 16x ended past its deadline).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from benchmarks.common import benchmark_photos, machine, percentile_ms, print_json, print_table
from benchmarks.e2e import resized_jpeg
from facerec.sdk import AsyncClient
from facerec.v1 import facerec_pb2, facerec_pb2_grpc
from facerec_embedder.app import EmbedderApp
from facerec_embedder.settings import EmbedderSettings
from facerec_embedder.triton.launcher import TritonServer
from facerec_gateway.app import GatewayApp
from facerec_registry.app import RegistryApp
from facerec_registry.settings import RegistrySettings
from tests.fixtures.stack import ALPHA_KEY, QUICK, gateway_settings, start, wait_serving

COLLECTION = "default"  # created on first use
DEFAULT_WAIT_S = 0.1  # after a refusal that advises no delay
PEAK_LEVELS = (1, 2, 4)


@dataclass
class Load:
    """What ``clients`` closed-loop clients got in ``seconds``."""

    clients: int
    seconds: float
    deadline_s: float
    ok_latencies: list[float] = field(default_factory=list)
    refusal_latencies: list[float] = field(default_factory=list)
    deadline_exceeded: int = 0
    unadvised_refusals: int = 0  # refusals without a retry delay (input over a limit, or advice lost on the way)
    other: dict[str, int] = field(default_factory=dict)
    max_latency_s: float = 0.0

    @property
    def goodput(self) -> float:
        """Photos identified within their deadline per second."""
        return len(self.ok_latencies) / self.seconds

    @property
    def max_overrun_s(self) -> float:
        return max(0.0, self.max_latency_s - self.deadline_s)

    def row(self, label: str) -> tuple[object, ...]:
        refusal = (
            f"{percentile_ms(self.refusal_latencies, 50):.1f}/{percentile_ms(self.refusal_latencies, 99):.1f}"
            if self.refusal_latencies
            else "-"
        )
        return (
            label,
            self.clients,
            f"{self.goodput:.2f}",
            len(self.ok_latencies),
            len(self.refusal_latencies),
            refusal,
            self.deadline_exceeded,
            sum(self.other.values()),
            f"{self.max_overrun_s * 1000:.0f}",
        )


HEADER = ("load", "clients", "goodput/s", "ok", "refused", "refusal p50/p99 ms", "deadline", "other", "overrun ms")


def advised_wait_s(error: grpc.aio.AioRpcError) -> float | None:
    """The retry delay a refusal advises (``google.rpc.RetryInfo``), or ``None``."""
    status = rpc_status.from_call(error)
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info.retry_delay.ToTimedelta().total_seconds()
    return None


async def apply_load(address: str, photos: list[bytes], clients: int, seconds: float, deadline_s: float) -> Load:
    """Run ``clients`` closed-loop Identify clients for ``seconds`` against the gateway at ``address``."""
    load = Load(clients, seconds, deadline_s)
    metadata = (("authorization", f"Bearer {ALPHA_KEY}"),)
    async with grpc.aio.insecure_channel(
        address, options=[("grpc.enable_retries", 0), ("grpc.max_send_message_length", 32 * 2**20)]
    ) as channel:
        stub = facerec_pb2_grpc.FaceRecognitionStub(channel)
        end = time.monotonic() + seconds

        async def client(index: int) -> None:
            sent = index
            while time.monotonic() < end:
                request = facerec_pb2.IdentifyRequest(collection=COLLECTION, image=photos[sent % len(photos)])
                sent += clients
                started = time.monotonic()
                try:
                    await stub.Identify(request, timeout=deadline_s, metadata=metadata)
                except grpc.aio.AioRpcError as error:
                    elapsed = time.monotonic() - started
                    load.max_latency_s = max(load.max_latency_s, elapsed)
                    if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                        load.refusal_latencies.append(elapsed)
                        advised = advised_wait_s(error)
                        load.unadvised_refusals += advised is None
                        await asyncio.sleep(DEFAULT_WAIT_S if advised is None else advised)
                    elif error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                        load.deadline_exceeded += 1
                    else:
                        load.other[error.code().name] = load.other.get(error.code().name, 0) + 1
                    continue
                elapsed = time.monotonic() - started
                load.max_latency_s = max(load.max_latency_s, elapsed)
                # A call answered after the benchmark's window still counts as work done, not as goodput in it.
                if time.monotonic() <= end + 0.05:
                    load.ok_latencies.append(elapsed)

        await asyncio.gather(*(client(index) for index in range(clients)))
    return load


async def saturation(
    address: str, photos: list[bytes], seconds: float, deadline_s: float, levels: tuple[int, ...] = PEAK_LEVELS
) -> tuple[int, list[Load]]:
    """Goodput at each of ``levels`` clients; the number of clients with the highest goodput, and the loads."""
    loads = [await apply_load(address, photos, clients, seconds, deadline_s) for clients in levels]
    best = max(loads, key=lambda load: load.goodput)
    return best.clients, loads


async def enroll_people(address: str, photo_paths: list[Path], people: int = 3) -> None:
    """A few people in :data:`COLLECTION`, so each Identify searches a real gallery."""
    async with AsyncClient(address, ALPHA_KEY, timeout=60) as client:
        for index, path in enumerate(photo_paths[:people]):
            with contextlib.suppress(Exception):  # a photo without exactly one face is simply not enrolled
                await client.enroll(f"person-{index}", [path.read_bytes()], collection=COLLECTION)


@contextlib.asynccontextmanager
async def local_stack(triton_url: str, data_dir: Path) -> AsyncIterator[str]:
    """Registry, embedder (default settings) and gateway in this process; yields the gateway's address."""
    registry_settings = RegistrySettings(**QUICK, data_dir=data_dir)  # type: ignore[arg-type]
    registry = await start(RegistryApp(registry_settings), registry_settings)
    embedder_settings = EmbedderSettings(**QUICK, triton_url=triton_url)  # type: ignore[arg-type]
    embedder = await start(EmbedderApp(embedder_settings), embedder_settings)
    settings = gateway_settings(embedder.address, registry.address)
    gateway = await start(GatewayApp(settings), settings)
    try:
        for runner in (registry, embedder, gateway):
            await wait_serving(runner.address)
        yield gateway.address
    finally:
        for runner in (gateway, embedder, registry):
            await runner.stop(0)


def serve_stack(triton_url: str, data_dir: str, connection: Connection) -> None:
    """A child process's work: :func:`local_stack`, its address sent on ``connection``, until told to stop."""

    async def serve() -> None:
        async with local_stack(triton_url, Path(data_dir)) as address:
            connection.send(address)
            await asyncio.get_running_loop().run_in_executor(None, connection.recv)

    asyncio.run(serve())


@contextlib.contextmanager
def stack_process(triton_url: str, data_dir: Path) -> Iterator[str]:
    """:func:`local_stack` in a child process, so that the clients' load does not share its event loop (as
    separate machines would not); yields the gateway's address."""
    ours, theirs = multiprocessing.get_context("spawn").Pipe()
    child = multiprocessing.get_context("spawn").Process(
        target=serve_stack, args=(triton_url, str(data_dir), theirs), daemon=True
    )
    child.start()
    try:
        if not ours.poll(120):
            raise RuntimeError("the stack did not start within 120 s")
        yield str(ours.recv())
    finally:
        ours.send("stop")
        child.join(30)
        if child.is_alive():
            child.kill()


async def run(
    seconds: float, photo_count: int, deadline_s: float, size: tuple[int, int], base_clients: int | None = None
) -> dict[str, object]:
    paths = benchmark_photos(photo_count)
    photos = [resized_jpeg(path, size) for path in paths]
    triton = TritonServer()
    triton.start(timeout=120)
    try:
        with tempfile.TemporaryDirectory() as data_dir, stack_process(triton.grpc_url, Path(data_dir)) as address:
            await enroll_people(address, paths)  # the original photos: enrollment is not what is measured
            await apply_load(address, photos, 2, min(seconds, 2.0), deadline_s)  # warm-up
            peak_clients, loads = await saturation(address, photos, seconds, deadline_s)
            base = base_clients or peak_clients
            double = await apply_load(address, photos, 2 * base, seconds, deadline_s)
            sixteen = await apply_load(address, photos, 16 * base, seconds, deadline_s)
    finally:
        triton.stop()
    peak = max(load.goodput for load in loads)
    print(
        f"machine: {machine()}; {seconds:g} s per load, deadline {deadline_s:g} s, "
        f"{len(photos)} photos at {size[0]}x{size[1]}"
    )
    rows = [load.row(f"{load.clients} clients") for load in loads]
    rows += [double.row("2x peak"), sixteen.row("16x peak")]
    print_table(HEADER, rows)
    return {
        "peak_clients": peak_clients,
        "clients_16x": sixteen.clients,
        "peak_goodput": round(peak, 3),
        "goodput_2x": round(double.goodput, 3),
        "goodput_16x": round(sixteen.goodput, 3),
        "goodput_16x_vs_peak": round(sixteen.goodput / peak, 3) if peak else 0.0,
        "refused_16x": len(sixteen.refusal_latencies),
        "refusal_p50_ms": round(percentile_ms(sixteen.refusal_latencies, 50), 1) if sixteen.refusal_latencies else None,
        "refusal_p99_ms": round(percentile_ms(sixteen.refusal_latencies, 99), 1) if sixteen.refusal_latencies else None,
        "deadline_exceeded_2x": double.deadline_exceeded,
        "deadline_exceeded_16x": sixteen.deadline_exceeded,
        "other_errors_16x": dict(sixteen.other),
        "max_overrun_ms": round(sixteen.max_overrun_s * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each load")
    parser.add_argument("--photos", type=int, default=8, help="distinct photos sent")
    parser.add_argument("--size", default="4032x3024", help="WIDTHxHEIGHT the photos are resized to")
    parser.add_argument(
        "--base-clients", type=int, help="clients that 2x and 16x multiply (default: the measured peak concurrency)"
    )
    parser.add_argument("--deadline", type=float, default=5.0, help="deadline of each Identify call, seconds")
    args = parser.parse_args()
    width, height = (int(side) for side in args.size.lower().split("x"))
    print_json(asyncio.run(run(args.seconds, args.photos, args.deadline, (width, height), args.base_clients)))


if __name__ == "__main__":
    main()
