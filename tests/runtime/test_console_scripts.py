"""Each service starts from its console script in a separate process and answers health and reflection."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.runtime.test_request_ids_and_reflection import list_services

SERVICES = {
    "facerec-gateway": "facerec.v1.FaceRecognition",
    "facerec-embedder": "facerec.embedder.v1.Embedder",
    "facerec-registry": "facerec.registry.v1.Registry",
}


def _script(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def start_console_script(
    script: Path | str, env: Mapping[str, str], log_path: Path, timeout_s: float = 60.0
) -> tuple[subprocess.Popen[bytes], str]:
    """Start a service's console script (JSON logs, port 0) and return it with the address it reports.

    Its log goes to ``log_path`` (a pipe nobody reads would fill up and stall the service); a service that
    exits or reports no port in time fails the test with the end of that log.
    """
    with log_path.open("wb") as log:
        process = subprocess.Popen([str(script)], env=dict(env), stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        for line in log_path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict) and "port" in entry and "listening" in entry.get("msg", ""):
                return process, f"127.0.0.1:{entry['port']}"
        time.sleep(0.1)
    process.kill()
    process.wait()
    log_tail = log_path.read_text(errors="replace")[-3000:]
    raise AssertionError(f"{script} did not report its port (exit code {process.poll()}):\n{log_tail}")


def _start(name: str, tmp_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    prefix = name.removeprefix("facerec-").upper()
    env = {
        **os.environ,
        f"FACEREC_{prefix}_PORT": "0",
        f"FACEREC_{prefix}_METRICS_PORT": "0",
        f"FACEREC_{prefix}_LOG_FORMAT": "json",
        "FACEREC_REGISTRY_DATA_DIR": str(tmp_path / "registry"),
        # Nothing listens here: the service must still start and answer health (NOT_SERVING).
        "FACEREC_EMBEDDER_TRITON_URL": "127.0.0.1:9",
        "FACEREC_GATEWAY_EMBEDDER_ADDRESS": "127.0.0.1:9",
        "FACEREC_GATEWAY_REGISTRY_ADDRESS": "127.0.0.1:9",
    }
    return start_console_script(_script(name), env, tmp_path / f"{name}.log")


@pytest.mark.parametrize("name", sorted(SERVICES))
async def test_service_starts_from_its_console_script_and_answers_health_and_reflection(name: str, tmp_path) -> None:
    process, address = _start(name, tmp_path)
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert response.status in (
                health_pb2.HealthCheckResponse.SERVING,
                health_pb2.HealthCheckResponse.NOT_SERVING,
            )
        assert SERVICES[name] in await list_services(address)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, "SIGTERM must stop the service gracefully with exit code 0"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_help_documents_every_setting(name: str) -> None:
    result = subprocess.run([_script(name), "--help"], capture_output=True, text=True, timeout=60, check=True)
    prefix = name.removeprefix("facerec-").upper()
    for setting in ("HOST", "PORT", "METRICS_PORT", "MAX_MESSAGE_BYTES", "GRACE_PERIOD_S", "LOG_LEVEL"):
        assert f"FACEREC_{prefix}_{setting}" in result.stdout
