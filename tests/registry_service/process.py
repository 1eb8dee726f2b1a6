"""The registry as its own process (the installed ``facerec-registry`` script) on a free port, for tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc

from facerec.registry.v1 import registry_pb2_grpc
from facerec.runtime.net import free_port
from tests.fixtures.stack import wait_serving


class RegistryProcess:
    """One registry process over ``data_dir``; ``env`` adds or overrides its settings."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        environment = {
            **os.environ,
            "FACEREC_REGISTRY_PORT": str(self.port),
            "FACEREC_REGISTRY_METRICS_PORT": "0",
            "FACEREC_REGISTRY_DATA_DIR": str(data_dir),
            "FACEREC_REGISTRY_HEALTH_INTERVAL_S": "0.1",
            **(env or {}),
        }
        script = Path(sys.executable).parent / "facerec-registry"
        self.process = subprocess.Popen([str(script)], env=environment, stderr=subprocess.DEVNULL)
        self.address = f"127.0.0.1:{self.port}"

    def kill(self) -> None:
        """SIGKILL: no flush, no graceful shutdown."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


async def serving(registry: RegistryProcess) -> registry_pb2_grpc.RegistryAsyncStub:
    """A stub of the registry once it reports SERVING."""
    await wait_serving(registry.address, timeout_s=60)
    return registry_pb2_grpc.RegistryStub(grpc.aio.insecure_channel(registry.address))
