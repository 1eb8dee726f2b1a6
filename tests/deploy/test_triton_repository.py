"""The Triton model repository as deployed: the derived CPU config and the TensorRT engine cache."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from tritonclient.grpc import model_config_pb2

from .support import COMPOSE, REPO, load_yaml, named, pod_spec

PRODUCTION_CONFIG = REPO / "deploy" / "triton" / "model_repository" / "face_embedder" / "config.pbtxt"
KIND_CPU = model_config_pb2.ModelInstanceGroup.KIND_CPU

GPU_CONFIG = """
name: "face_embedder"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [ { name: "chips" data_type: TYPE_UINT8 dims: [ 150, 150, 3 ] } ]
output [ { name: "embeddings" data_type: TYPE_FP32 dims: [ 128 ] } ]
instance_group [ { count: 2 kind: KIND_GPU gpus: [ 0, 1 ] } ]
dynamic_batching { preferred_batch_size: [ 4 ] default_queue_policy { max_queue_size: 16 } }
optimization {
  cuda { graphs: true }
  input_pinned_memory { enable: true }
  execution_accelerators {
    gpu_execution_accelerator [ { name: "tensorrt" parameters { key: "precision_mode" value: "FP16" } } ]
  }
}
"""


def load_cpu_config_module() -> ModuleType:
    """deploy/triton/cpu_config.py (a script beside the Dockerfile that runs it, not a package)."""
    spec = importlib.util.spec_from_file_location("cpu_config", REPO / "deploy" / "triton" / "cpu_config.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cpu_config = load_cpu_config_module()


def production_config() -> model_config_pb2.ModelConfig:
    if not PRODUCTION_CONFIG.is_file():
        pytest.skip(f"{PRODUCTION_CONFIG.relative_to(REPO)} is not there")
    return cpu_config.parse_config(PRODUCTION_CONFIG.read_text())


def test_the_cpu_config_keeps_the_contract_of_the_production_config():
    production = production_config()
    derived = cpu_config.cpu_config(production, instances=2)
    for field in ("name", "platform", "backend", "max_batch_size", "input", "output", "dynamic_batching"):
        assert getattr(derived, field) == getattr(production, field), field


def test_the_cpu_config_places_every_instance_on_the_cpu():
    derived = cpu_config.cpu_config(cpu_config.parse_config(GPU_CONFIG), instances=3)
    assert [(group.kind, group.count, list(group.gpus)) for group in derived.instance_group] == [(KIND_CPU, 3, [])]


def test_the_cpu_config_drops_the_gpu_only_optimisations():
    derived = cpu_config.cpu_config(cpu_config.parse_config(GPU_CONFIG))
    assert not derived.HasField("optimization")


def test_the_cpu_config_needs_at_least_one_instance():
    with pytest.raises(ValueError, match="at least 1"):
        cpu_config.cpu_config(cpu_config.parse_config(GPU_CONFIG), instances=0)


def test_the_script_writes_a_config_that_parses_back(tmp_path: Path):
    production = tmp_path / "config.pbtxt"
    production.write_text(GPU_CONFIG)
    output = tmp_path / "configs" / f"{cpu_config.CPU_CONFIG_NAME}.pbtxt"
    assert cpu_config.main([str(production), str(output), "--instances", "2"]) == 0
    written = cpu_config.parse_config(output.read_text())
    assert written == cpu_config.cpu_config(cpu_config.parse_config(GPU_CONFIG), instances=2)


def tensorrt_cache_path(config: model_config_pb2.ModelConfig) -> str:
    for accelerator in config.optimization.execution_accelerators.gpu_execution_accelerator:
        if accelerator.name == "tensorrt" and accelerator.parameters.get("trt_engine_cache_enable") == "1":
            return str(accelerator.parameters["trt_engine_cache_path"])
    pytest.skip("the production config caches no TensorRT engine")


def test_the_tensorrt_engine_cache_is_outside_the_read_only_model_repository():
    # Triton serves /models read-only, and would take a folder inside the repository for a model.
    assert not tensorrt_cache_path(production_config()).startswith("/models/")


def test_gpu_deployments_mount_a_writable_tensorrt_engine_cache(gpu_manifests):
    cache = tensorrt_cache_path(production_config())
    triton = named(gpu_manifests, "Deployment", "triton")
    mounts = pod_spec(triton)["containers"][0]["volumeMounts"]
    assert [m for m in mounts if cache.startswith(m["mountPath"]) and not m.get("readOnly")], cache
    compose_volumes = load_yaml(COMPOSE / "compose.gpu.yaml")["services"]["triton"]["volumes"]
    assert [v for v in compose_volumes if cache.startswith(v["target"])], cache
