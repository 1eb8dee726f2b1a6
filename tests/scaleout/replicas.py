"""Service replicas on loopback addresses behind one DNS name, for the scale-out tests.

Each replica is a real service process started from its console script, bound to its own 127.0.0.x address and
one port shared by all (as a Kubernetes headless Service's pods share a port), with its own metrics endpoint:
how many calls each replica served is read from there (``facerec_grpc_requests_total``).
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.request import urlopen

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from facerec.runtime.net import free_port
from tests.runtime.test_console_scripts import start_console_script

EMBED_PHOTO = "/facerec.embedder.v1.Embedder/EmbedPhoto"


def require_loopback_replicas(count: int) -> None:
    """Skip unless replicas can listen on 127.0.0.1 .. 127.0.0.<count> (Linux routes all of 127.0.0.0/8 to lo;
    macOS does not) and gRPC resolves names through the DNS server a target names (its c-ares resolver, the
    default; ``GRPC_DNS_RESOLVER=native`` ignores a target's authority)."""
    if os.environ.get("GRPC_DNS_RESOLVER", "").lower() == "native":
        pytest.skip("GRPC_DNS_RESOLVER=native: gRPC's native resolver ignores the DNS server a target names")
    for index in range(1, count + 1):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((f"127.0.0.{index}", 0))
            except OSError:
                pytest.skip(f"127.0.0.{index} cannot be bound here (Linux routes 127.0.0.0/8 to lo; macOS does not)")


def port_free_on(hosts: list[str]) -> int:
    """A TCP port free on every one of ``hosts`` (taken from the first, checked on the others)."""
    for _ in range(50):
        port = free_port(hosts[0])
        with contextlib.ExitStack() as sockets:
            try:
                for host in hosts:
                    bound = sockets.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                    bound.bind((host, port))
            except OSError:
                continue
        return port
    raise AssertionError(f"no port free on all of {hosts}")


@dataclass
class Replica:
    """One service process on ``host:port``, with its metrics on ``127.0.0.1:metrics_port``."""

    script: str
    host: str
    port: int
    env: dict[str, str]
    log_path: Path
    metrics_port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        """Start the process (a fresh metrics port each time) and wait until it listens."""
        self.metrics_port = free_port()
        prefix = f"FACEREC_{self.script.removeprefix('facerec-').upper()}_"
        settings = {"HOST": self.host, "PORT": str(self.port), "METRICS_PORT": str(self.metrics_port),
                    "LOG_FORMAT": "json", **self.env}  # fmt: skip
        env = {**os.environ, **{f"{prefix}{key}": value for key, value in settings.items()}}
        script = Path(sys.executable).parent / self.script
        self.process, _ = start_console_script(script, env, self.log_path)

    def terminate(self, timeout_s: float = 30.0) -> int:
        """SIGTERM (the service drains within its grace period) and wait: the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout_s)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def served(self, method: str = EMBED_PHOTO) -> int:
        """How many calls of ``method`` this process answered OK so far (0 once it is gone)."""
        return counter_value(f"http://127.0.0.1:{self.metrics_port}/metrics", "facerec_grpc_requests_total",
                             {"method": method, "code": "OK"})  # fmt: skip

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


def counter_value(url: str, name: str, labels: Mapping[str, str]) -> int:
    """The sum of the samples of counter ``name`` at ``url`` whose labels include ``labels``."""
    try:
        with urlopen(url, timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return 0
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in (name, f"{name}_total") and labels.items() <= sample.labels.items():
                total += sample.value
    return int(total)


def wait_serving(address: str, timeout_s: float = 60.0) -> float:
    """Seconds until ``address`` answers SERVING; fails the test past ``timeout_s``."""
    started = time.monotonic()
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() - started < timeout_s:
            with contextlib.suppress(grpc.RpcError):
                answer = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return time.monotonic() - started
            time.sleep(0.05)
    raise AssertionError(f"{address} did not become SERVING within {timeout_s:.0f} s")


def small_photo(path: Path, width: int = 320) -> bytes:
    """The photo at ``path`` scaled to ``width`` pixels wide, as JPEG: one face, little work per call."""
    with Image.open(path) as photo:
        rgb = photo.convert("RGB")
    scaled = rgb.resize((width, round(rgb.height * width / rgb.width)))
    out = io.BytesIO()
    scaled.save(out, format="JPEG", quality=90)
    return out.getvalue()
