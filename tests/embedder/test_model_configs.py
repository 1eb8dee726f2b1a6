"""The two configurations of face_embedder (GPU production, CPU Python backend) keep one contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from facerec_embedder.model import CHIP_SIZE, EMBEDDING_DIM, INPUT_NAME, OUTPUT_NAME, TRITON_MODEL_NAME
from facerec_embedder.model.files import MODEL_REPOSITORY
from facerec_embedder.settings import EmbedderSettings

MODEL_DIR = MODEL_REPOSITORY / TRITON_MODEL_NAME
PRODUCTION = MODEL_DIR / "config.pbtxt"
CPU_PYTHON = MODEL_DIR / "configs" / "cpu_python.pbtxt"
TRITON_IMAGE = "nvcr.io/nvidia/tritonserver:24.10-py3"  # the release whose binary nvidia-pytriton 0.7.0 ships
ModelConfig = model_config_pb2.ModelConfig


def parse(path: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), ModelConfig())


def test_both_configs_declare_the_same_contract():
    production, cpu = parse(PRODUCTION), parse(CPU_PYTHON)
    for field in ("name", "input", "output", "max_batch_size", "dynamic_batching"):
        assert getattr(production, field) == getattr(cpu, field), field


def test_the_contract_is_the_models():
    config = parse(PRODUCTION)
    assert config.name == TRITON_MODEL_NAME
    (chips,) = config.input
    (embeddings,) = config.output
    assert (chips.name, chips.data_type, list(chips.dims)) == (
        INPUT_NAME,
        model_config_pb2.TYPE_UINT8,
        [CHIP_SIZE, CHIP_SIZE, 3],
    )
    assert (embeddings.name, embeddings.data_type, list(embeddings.dims)) == (
        OUTPUT_NAME,
        model_config_pb2.TYPE_FP32,
        [EMBEDDING_DIM],
    )


def test_batches_are_large_and_the_queue_is_bounded():
    config = parse(PRODUCTION)
    assert config.max_batch_size >= 64
    batching = config.dynamic_batching
    assert batching.preferred_batch_size and max(batching.preferred_batch_size) <= config.max_batch_size
    assert batching.default_queue_policy.max_queue_size > 0


def test_production_runs_onnx_on_gpus_with_tensorrt_fp16_and_an_engine_cache():
    config = parse(PRODUCTION)
    assert config.platform == "onnxruntime_onnx"
    assert [group.kind for group in config.instance_group] == [model_config_pb2.ModelInstanceGroup.KIND_GPU]
    (accelerator,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert accelerator.name == "tensorrt"
    assert accelerator.parameters["precision_mode"] == "FP16"
    assert accelerator.parameters["trt_engine_cache_enable"] == "1"
    assert accelerator.parameters["trt_engine_cache_path"]


def test_the_cpu_flavour_runs_the_python_backend_on_cpus():
    config = parse(CPU_PYTHON)
    assert (config.backend, config.platform) == ("python", "")
    assert [group.kind for group in config.instance_group] == [model_config_pb2.ModelInstanceGroup.KIND_CPU]
    assert (MODEL_DIR / "1" / "model.py").is_file()


@pytest.fixture
def docker_daemon() -> None:
    """Skip unless a Docker daemon answers (checked first: without one, starting a container just fails)."""
    try:
        import docker

        docker.from_env().ping()
    except Exception as error:  # any failure means: no daemon to run the official image
        pytest.skip(f"no Docker daemon answers here ({type(error).__name__}): the official Triton image cannot run")


@pytest.mark.slow
def test_the_production_config_serves_in_the_official_triton_image(docker_daemon, triton_chip_reference):
    import docker
    import tritonclient.grpc as grpcclient
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    chips, expected = triton_chip_reference
    container = (
        DockerContainer(TRITON_IMAGE)
        .with_volume_mapping(str(MODEL_REPOSITORY), "/models", "ro")
        .with_command("tritonserver --model-repository=/models --model-control-mode=none")
        .with_exposed_ports(8001)
        .with_kwargs(device_requests=[docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])])
    )
    with container:
        # TensorRT builds its engine at load (warm-up included): minutes on a cold cache.
        wait_for_logs(container, "Started GRPCInferenceService", timeout=900)
        client = grpcclient.InferenceServerClient(
            f"{container.get_container_host_ip()}:{container.get_exposed_port(8001)}"
        )
        assert client.is_model_ready(TRITON_MODEL_NAME)
        request = grpcclient.InferInput(INPUT_NAME, list(chips.shape), "UINT8")
        request.set_data_from_numpy(chips)
        result = client.infer(TRITON_MODEL_NAME, [request]).as_numpy(OUTPUT_NAME)
        # FP16 changes the last digits; distances between faces are what must hold.
        assert np.linalg.norm(result - expected, axis=1).max() < 0.02


@pytest.fixture
def triton_chip_reference(samples_dir):
    import onnxruntime as ort

    from facerec_embedder.model.convert import convert_file
    from facerec_embedder.model.files import DEFAULT_ONNX_PATH, RECOGNITION_MODEL, model_file
    from tests.embedder.real_faces import SAMPLE_PHOTOS, faces_in

    convert_file(model_file(RECOGNITION_MODEL), DEFAULT_ONNX_PATH)
    chips = np.stack([face.dlib_chip for face in faces_in(samples_dir, SAMPLE_PHOTOS)])
    session = ort.InferenceSession(str(DEFAULT_ONNX_PATH), providers=["CPUExecutionProvider"])
    return chips, session.run([OUTPUT_NAME], {INPUT_NAME: chips})[0]


def test_tritons_queue_holds_a_few_embedders_at_their_default_bound_and_no_more():
    # Each call an embedder admits has at most one request in Triton's queue: a queue much longer than all the
    # embedders' bounds together would only hold requests whose callers' deadlines pass while they wait.
    per_embedder = EmbedderSettings().in_flight_limit()
    for config in (parse(PRODUCTION), parse(CPU_PYTHON)):
        assert per_embedder <= config.dynamic_batching.default_queue_policy.max_queue_size <= 16 * per_embedder
