"""Our launcher runs the real tritonserver binary on the model repository, serves the model, stops cleanly."""

from __future__ import annotations

import asyncio
import os
import selectors
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcclient_aio

from facerec_embedder.align import face_chip
from facerec_embedder.model import INPUT_NAME, OUTPUT_NAME, TRITON_MODEL_NAME
from facerec_embedder.model.files import DEFAULT_ONNX_PATH
from facerec_embedder.triton.launcher import TritonServer, TritonStartError
from tests.embedder.real_faces import SAMPLE_PHOTOS, faces_in
from tests.fixtures.triton import settled_statistics

pytestmark = pytest.mark.slow

SHM = Path("/dev/shm")


@pytest.fixture(scope="module")
def chips(samples_dir) -> np.ndarray:
    """Real aligned chips (our alignment) of the sample photos."""
    faces = faces_in(samples_dir, SAMPLE_PHOTOS)
    return np.stack([face_chip(face.image, face.landmarks) for face in faces])


@pytest.fixture(scope="module")
def in_process(triton_server) -> ort.InferenceSession:
    """The same model.onnx run in this process (the server fixture has converted it)."""
    return ort.InferenceSession(str(DEFAULT_ONNX_PATH), providers=["CPUExecutionProvider"])


def infer(url: str, chips: np.ndarray) -> np.ndarray:
    client = grpcclient.InferenceServerClient(url)
    try:
        request = grpcclient.InferInput(INPUT_NAME, list(chips.shape), "UINT8")
        request.set_data_from_numpy(chips)
        return client.infer(TRITON_MODEL_NAME, [request], client_timeout=30).as_numpy(OUTPUT_NAME)
    finally:
        client.close()


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def tritonservers_listening_on(grpc_port: int) -> list[int]:
    """Pids of tritonserver processes started with this gRPC port."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if command and command[0].endswith(b"tritonserver") and f"--grpc-port={grpc_port}".encode() in command:
            pids.append(int(entry.name))
    return pids


def test_the_model_is_ready_on_loopback_ports(triton_server):
    client = grpcclient.InferenceServerClient(triton_server.grpc_url)
    try:
        assert client.is_server_ready()
        assert client.is_model_ready(TRITON_MODEL_NAME)
    finally:
        client.close()
    assert triton_server.grpc_url.startswith("127.0.0.1:")
    assert triton_server.model_name == TRITON_MODEL_NAME


def test_inference_on_real_chips_matches_onnxruntime_in_process(triton_server, chips, in_process):
    served = infer(triton_server.grpc_url, chips)
    expected = in_process.run([OUTPUT_NAME], {INPUT_NAME: chips})[0]
    assert served.shape == expected.shape
    assert np.abs(served - expected).max() <= 1e-6


async def test_requests_batched_together_are_answered_row_by_row(triton_server, chips, in_process):
    client = grpcclient_aio.InferenceServerClient(triton_server.grpc_url)
    try:
        before = await asyncio.to_thread(settled_statistics, triton_server.grpc_url, TRITON_MODEL_NAME)

        async def send(batch: np.ndarray) -> np.ndarray:
            request = grpcclient_aio.InferInput(INPUT_NAME, list(batch.shape), "UINT8")
            request.set_data_from_numpy(batch)
            result = await client.infer(TRITON_MODEL_NAME, [request], client_timeout=60)
            return result.as_numpy(OUTPUT_NAME)

        # A large request keeps the single instance busy; the small ones queue meanwhile, so the dynamic
        # batcher hands them to the model together and model.py must split the result back.
        busy = np.repeat(chips, 12, axis=0)
        small = [chips[i % len(chips) : i % len(chips) + 1 + i % 2] for i in range(8)]
        results = await asyncio.gather(send(busy), *(send(batch) for batch in small))
        after = await asyncio.to_thread(settled_statistics, triton_server.grpc_url, TRITON_MODEL_NAME)
    finally:
        await client.close()
    for batch, result in zip([busy, *small], results, strict=True):
        expected = in_process.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]
        assert np.abs(result - expected).max() <= 1e-6
    requests = after.inference_stats.success.count - before.inference_stats.success.count
    executions = after.execution_count - before.execution_count
    assert requests == 1 + len(small)
    assert after.inference_count - before.inference_count == sum(len(b) for b in [busy, *small])
    assert executions < requests, "the queued requests should have been run as one batch"


def test_metrics_report_successful_inferences(triton_server, chips):
    infer(triton_server.grpc_url, chips[:1])
    with urllib.request.urlopen(triton_server.metrics_url, timeout=10) as response:
        metrics = response.read().decode()
    assert f'nv_inference_request_success{{model="{TRITON_MODEL_NAME}",version="1"}}' in metrics


def test_a_second_server_runs_beside_the_first(triton_server, chips):
    with TritonServer() as second:
        assert len({triton_server.grpc_port, second.grpc_port}) == 2
        assert second.shm_prefix != triton_server.shm_prefix
        assert np.array_equal(infer(second.grpc_url, chips), infer(triton_server.grpc_url, chips))


def test_stopping_leaves_no_process_and_no_shared_memory(triton_server):
    server = TritonServer()
    started = time.monotonic()
    server.start(timeout=120)
    start_s = time.monotonic() - started
    pgid = server.pid
    assert pgid is not None and group_alive(pgid)
    assert list(SHM.glob(f"{server.shm_prefix}*")), "the Python backend should hold shared memory"
    stopping = time.monotonic()
    server.stop()
    stop_s = time.monotonic() - stopping
    assert not group_alive(pgid), "a process of the server's group (a backend stub?) survived"
    assert not list(SHM.glob(f"{server.shm_prefix}*"))
    print(f"triton start {start_s:.1f} s, stop {stop_s:.1f} s")


def test_a_model_that_cannot_load_fails_fast_with_tritons_log():
    # The production config asks for the onnxruntime backend, which this build of tritonserver lacks.
    server = TritonServer(model_config_name=None)
    started = time.monotonic()
    with pytest.raises(TritonStartError, match="onnxruntime") as failure:
        server.start(timeout=60)
    assert time.monotonic() - started < 30
    assert "tritonserver exited" in str(failure.value)
    assert not server.is_running()


def test_the_command_line_prints_the_grpc_url_and_stops_on_sigterm(triton_server, chips):
    command = [sys.executable, "-m", "facerec_embedder.triton", "--grpc-port=0", "--http-port=0", "--metrics-port=0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = read_line(process, timeout=120)
        fields = dict(field.split("=", 1) for field in line.split())
        grpc_url = fields["grpc"]
        assert infer(grpc_url, chips[:1]).shape == (1, 128)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert tritonservers_listening_on(int(grpc_url.rsplit(":", 1)[1])) == []


def read_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    if not selector.select(timeout):
        raise AssertionError(f"no address printed within {timeout} s")
    line = process.stdout.readline()
    if not line:
        stderr = process.stderr.read() if process.stderr else ""
        raise AssertionError(f"the command exited without an address: {stderr}")
    return line
