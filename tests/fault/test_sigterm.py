"""Graceful SIGTERM of a service under load: calls in flight finish, new ones are refused, health says so.

An embedder replica is started from its console script (its own process, on the session's real Triton) and a
gateway replica in front of it (its own process too, with an in-process registry); 8 clients call it without
retries, so every refusal is seen as it is. SIGTERM arrives while calls are in flight: each call that was in
flight must succeed within the grace period, calls that start once the drain has begun must be refused at once
(UNAVAILABLE), health must never answer SERVING during the drain, and the process must exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from facerec.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from facerec.v1 import facerec_pb2, facerec_pb2_grpc
from facerec_embedder.triton.launcher import TritonServer
from facerec_gateway.auth import hash_key
from tests.e2e.photos import side_by_side
from tests.runtime.test_console_scripts import start_console_script

CLIENTS = 8
GRACE_S = 10.0
LOAD_BEFORE_S = 2.0
DRAIN_WATCH_S = 1.5  # how long new calls and health checks keep coming after SIGTERM
# A call started this long after SIGTERM reaches a server that is draining (the handler has run by then).
SIGNAL_DELIVERY_S = 0.2
# A call the client sent less than this before SIGTERM may still be on its way (a photo is being sent) when the
# server stops accepting calls: it is refused UNAVAILABLE, which callers retry, rather than started. The calls
# sent earlier than this are the in-flight calls the grace period must finish.
ON_ITS_WAY_S = 0.1
API_KEY = "sigterm-key"


@dataclass(frozen=True)
class Call:
    started: float
    ended: float
    code: str


@dataclass
class Replica:
    """A service process started from its console script, and its address."""

    process: subprocess.Popen[bytes]
    address: str
    log_path: Path

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


def start_replica(script: str, env: dict[str, str], log_path: Path) -> Replica:
    process, address = start_console_script(Path(sys.executable).parent / script, {**os.environ, **env}, log_path)
    return Replica(process, address, log_path)


def wait_serving(address: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            with contextlib.suppress(grpc.RpcError):
                if (
                    stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                    == health_pb2.HealthCheckResponse.SERVING
                ):
                    return
            time.sleep(0.1)
    raise AssertionError(f"{address} did not become SERVING within {timeout_s:.0f} s")


def service_env(service: str, **settings: str) -> dict[str, str]:
    prefix = f"FACEREC_{service.upper()}_"
    common = {"PORT": "0", "METRICS_PORT": "0", "LOG_FORMAT": "json", "GRACE_PERIOD_S": str(GRACE_S),
              "HEALTH_INTERVAL_S": "0.2"}  # fmt: skip
    return {f"{prefix}{key}": value for key, value in {**common, **settings}.items()}


@pytest.fixture(scope="module")
def photo(samples_dir: Path) -> bytes:
    """Three faces side by side: enough work per call that calls are in flight when SIGTERM comes."""
    return side_by_side(samples_dir / "obama.jpg", samples_dir / "obama2.jpg", samples_dir / "biden.jpg", height=700)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replica]:
    folder = tmp_path_factory.mktemp("sigterm-registry")
    replica = start_replica("facerec-registry", service_env("registry", DATA_DIR=str(folder)), folder / "log")
    wait_serving(replica.address)
    yield replica
    replica.process.terminate()
    replica.process.wait(timeout=30)


def make_embedder(triton: TritonServer, folder: Path) -> Replica:
    folder.mkdir(parents=True, exist_ok=True)
    replica = start_replica("facerec-embedder", service_env("embedder", TRITON_URL=triton.grpc_url), folder / "log")
    wait_serving(replica.address)
    return replica


async def call_loop(make_call: Callable[[], Awaitable[object]], done: asyncio.Event, calls: list[Call]) -> None:
    while not done.is_set():
        started = time.monotonic()
        try:
            await make_call()
            code = "OK"
        except grpc.aio.AioRpcError as error:
            code = error.code().name
        calls.append(Call(started, time.monotonic(), code))
        if code != "OK":
            await asyncio.sleep(0.01)  # refusals come back at once: keep the loop from taking every core


async def health_loop(address: str, done: asyncio.Event, answers: list[tuple[float, str]]) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while not done.is_set():
            started = time.monotonic()
            try:
                response = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                answers.append((started, health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)))
            except grpc.aio.AioRpcError as error:
                answers.append((started, error.code().name))
            await asyncio.sleep(0.05)


@dataclass(frozen=True)
class Drain:
    """What happened around one SIGTERM."""

    signalled_at: float
    calls: list[Call]
    health: list[tuple[float, str]]
    exit_code: int
    exited_after_s: float

    def in_flight(self) -> list[Call]:
        return [c for c in self.calls if c.started < self.signalled_at - ON_ITS_WAY_S and self.signalled_at < c.ended]

    def started_during_drain(self) -> list[Call]:
        return [c for c in self.calls if c.started > self.signalled_at + SIGNAL_DELIVERY_S]

    def health_during_drain(self) -> Counter[str]:
        return Counter(status for t, status in self.health if t > self.signalled_at + SIGNAL_DELIVERY_S)

    def figures(self) -> dict[str, object]:
        in_flight = self.in_flight()
        late = self.started_during_drain()
        return {
            "in_flight": len(in_flight),
            "in_flight_failed": sum(c.code != "OK" for c in in_flight),
            "in_flight_longest_after_sigterm_s": round(
                max((c.ended - self.signalled_at for c in in_flight), default=0), 2
            ),
            "new_calls_during_drain": dict(Counter(c.code for c in late)),
            "new_call_slowest_refusal_s": round(max((c.ended - c.started for c in late), default=0), 3),
            "health_during_drain": dict(self.health_during_drain()),
            "exit_code": self.exit_code,
            "exited_after_s": round(self.exited_after_s, 2),
        }


async def sigterm_under_load(replica: Replica, make_call: Callable[[], Awaitable[object]]) -> Drain:
    done, calls, health = asyncio.Event(), list[Call](), list[tuple[float, str]]()
    tasks = [asyncio.create_task(call_loop(make_call, done, calls)) for _ in range(CLIENTS)]
    await asyncio.sleep(LOAD_BEFORE_S)
    watcher = asyncio.create_task(health_loop(replica.address, done, health))
    signalled_at = time.monotonic()
    replica.process.send_signal(signal.SIGTERM)
    exited = asyncio.create_task(asyncio.to_thread(replica.process.wait, GRACE_S + 20))
    exited_at: list[float] = []
    exited.add_done_callback(lambda _: exited_at.append(time.monotonic()))
    await asyncio.sleep(DRAIN_WATCH_S)
    done.set()
    await asyncio.gather(*tasks, watcher)
    exit_code = await exited
    return Drain(signalled_at, calls, health, exit_code, exited_at[0] - signalled_at)


def check_drain(drain: Drain, replica: Replica) -> None:
    figures = drain.figures()
    print(f"\nSIGTERM: {figures}")
    in_flight = drain.in_flight()
    assert in_flight, "no call was in flight at SIGTERM: the test proves nothing"
    assert all(c.code == "OK" for c in in_flight), f"{figures}\n{replica.log_tail()}"
    assert all(c.ended - drain.signalled_at <= GRACE_S for c in in_flight), figures
    assert {c.code for c in drain.started_during_drain()} <= {"UNAVAILABLE"}, figures
    assert "SERVING" not in drain.health_during_drain(), figures
    assert drain.exit_code == 0, replica.log_tail()


@pytest.mark.timeout(120)
def test_sigterm_of_an_embedder_under_load_finishes_in_flight_calls_and_refuses_new_ones(
    triton_server: TritonServer, photo: bytes, tmp_path: Path
) -> None:
    replica = make_embedder(triton_server, tmp_path)

    async def scenario() -> Drain:
        options = [("grpc.enable_retries", 0)]
        async with grpc.aio.insecure_channel(replica.address, options=options) as channel:
            stub = embedder_pb2_grpc.EmbedderStub(channel)
            request = embedder_pb2.EmbedPhotoRequest(image=photo)
            return await sigterm_under_load(replica, lambda: stub.EmbedPhoto(request, timeout=30))

    try:
        check_drain(asyncio.run(scenario()), replica)
    finally:
        if replica.process.poll() is None:
            replica.process.kill()


@pytest.mark.timeout(120)
def test_sigterm_of_a_gateway_under_load_finishes_in_flight_calls_and_refuses_new_ones(
    triton_server: TritonServer, registry: Replica, photo: bytes, tmp_path: Path
) -> None:
    embedder = make_embedder(triton_server, tmp_path / "embedder")
    keys = f'{{"keys": [{{"sha256": "{hash_key(API_KEY)}", "tenant": "t", "collections": ["*"]}}]}}'
    env = service_env("gateway", EMBEDDER_ADDRESS=embedder.address, REGISTRY_ADDRESS=registry.address, API_KEYS=keys)
    gateway = start_replica("facerec-gateway", env, tmp_path / "gateway.log")
    wait_serving(gateway.address)

    async def scenario() -> Drain:
        options = [("grpc.enable_retries", 0)]
        async with grpc.aio.insecure_channel(gateway.address, options=options) as channel:
            stub = facerec_pb2_grpc.FaceRecognitionStub(channel)
            metadata = (("authorization", f"Bearer {API_KEY}"),)
            request = facerec_pb2.DetectRequest(image=photo)
            return await sigterm_under_load(gateway, lambda: stub.Detect(request, timeout=30, metadata=metadata))

    try:
        check_drain(asyncio.run(scenario()), gateway)
    finally:
        for replica in (gateway, embedder):
            if replica.process.poll() is None:
                replica.process.terminate()
                replica.process.wait(timeout=30)
