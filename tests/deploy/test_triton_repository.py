"""The Triton model repository as deployed: the derived CPU config fitted to its CPU limit, the TensorRT shape
profile and warm-up of the GPU config, and the engine cache on a volume that outlives the pod."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest
from tritonclient.grpc import model_config_pb2

from .support import COMPOSE, REPO, load_yaml, main_container, mounted_file, named, of_kind, pod_spec

PRODUCTION_CONFIG = REPO / "deploy" / "triton" / "model_repository" / "face_embedder" / "config.pbtxt"
TRITON_DOCKERFILE = REPO / "deploy" / "triton" / "Dockerfile"
# The batch sizes the engine must serve without a rebuild: one chip, the embedder's batch (its
# FACEREC_EMBEDDER_BATCH_MAX_SIZE default), and the config's max_batch_size.
PROFILE_BATCHES = {"min": 1, "opt": 64, "max": 256}
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
    derived = cpu_config.cpu_config(production, cpu_limit=4, instances=2)
    for field in (
        "name",
        "platform",
        "backend",
        "max_batch_size",
        "input",
        "output",
        "dynamic_batching",
        "model_warmup",
    ):
        assert getattr(derived, field) == getattr(production, field), field


def test_the_cpu_config_places_every_instance_on_the_cpu():
    derived = cpu_config.cpu_config(cpu_config.parse_config(GPU_CONFIG), cpu_limit=3, instances=3)
    assert [(group.kind, group.count, list(group.gpus)) for group in derived.instance_group] == [(KIND_CPU, 3, [])]


def test_the_cpu_config_drops_the_gpu_only_optimisations():
    derived = cpu_config.cpu_config(cpu_config.parse_config(GPU_CONFIG), cpu_limit=1)
    assert not derived.HasField("optimization")


def test_the_cpu_config_needs_at_least_one_instance():
    with pytest.raises(ValueError, match="at least 1"):
        cpu_config.cpu_config(cpu_config.parse_config(GPU_CONFIG), cpu_limit=4, instances=0)


@pytest.mark.parametrize(("cpu_limit", "instances"), [(4, 1), (4, 2), (4, 4), (6, 3)])
def test_the_cpu_config_shares_the_cpu_limit_between_its_instances(cpu_limit, instances):
    derived = cpu_config.cpu_config(cpu_config.parse_config(GPU_CONFIG), cpu_limit=cpu_limit, instances=instances)
    assert derived.parameters["intra_op_thread_count"].string_value == str(cpu_limit // instances)
    assert derived.parameters["inter_op_thread_count"].string_value == "1"
    assert cpu_config.threads(derived) == cpu_limit


@pytest.mark.parametrize(("cpu_limit", "instances"), [(4, 3), (2, 4)])
def test_the_cpu_config_refuses_a_limit_its_instances_cannot_share_evenly(cpu_limit, instances):
    with pytest.raises(ValueError, match="multiple of the instances"):
        cpu_config.cpu_config(cpu_config.parse_config(GPU_CONFIG), cpu_limit=cpu_limit, instances=instances)


def test_the_script_writes_a_config_that_parses_back(tmp_path: Path):
    production = tmp_path / "config.pbtxt"
    production.write_text(GPU_CONFIG)
    output = tmp_path / "configs" / f"{cpu_config.CPU_CONFIG_NAME}.pbtxt"
    assert cpu_config.main([str(production), str(output), "--cpu-limit", "4", "--instances", "2"]) == 0
    written = cpu_config.parse_config(output.read_text())
    assert written == cpu_config.cpu_config(cpu_config.parse_config(GPU_CONFIG), cpu_limit=4, instances=2)


def test_the_script_reports_an_uneven_split_as_a_usage_error(tmp_path: Path, capsys):
    production = tmp_path / "config.pbtxt"
    production.write_text(GPU_CONFIG)
    with pytest.raises(SystemExit) as exited:
        cpu_config.main([str(production), str(tmp_path / "out.pbtxt"), "--cpu-limit", "3", "--instances", "2"])
    assert exited.value.code == 2
    assert "multiple of the instances" in capsys.readouterr().err


def dockerfile_args() -> dict[str, str]:
    """The ARG defaults of deploy/triton/Dockerfile."""
    return dict(re.findall(r"^ARG (\w+)=(\S+)$", TRITON_DOCKERFILE.read_text(), flags=re.MULTILINE))


def cpu_quantity(value: str) -> float:
    """A Kubernetes CPU quantity ("4", "500m") in CPUs."""
    return int(value[:-1]) / 1000 if value.endswith("m") else float(value)


def test_the_cpu_config_the_image_carries_runs_as_many_threads_as_tritons_cpu_limit(cpu_manifests):
    args = dockerfile_args()
    triton = main_container(named(cpu_manifests, "Deployment", "triton"))
    limit = cpu_quantity(triton["resources"]["limits"]["cpu"])
    assert limit == int(args["CPU_LIMIT"]), (
        "the cpu overlay's Triton CPU limit vs CPU_LIMIT of deploy/triton/Dockerfile"
    )
    derived = cpu_config.cpu_config(production_config(), cpu_limit=int(limit), instances=int(args["CPU_INSTANCES"]))
    assert cpu_config.threads(derived) == limit
    assert '--cpu-limit "${CPU_LIMIT}" --instances "${CPU_INSTANCES}"' in TRITON_DOCKERFILE.read_text()


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


def test_the_tensorrt_engine_cache_outlives_the_pod_on_a_claim_every_triton_pod_shares(gpu_manifests):
    cache = tensorrt_cache_path(production_config())
    triton = named(gpu_manifests, "Deployment", "triton")
    mount, volume = mounted_file(triton, cache + "/engine")
    assert not mount.get("readOnly")
    claim_name = volume["persistentVolumeClaim"]["claimName"]  # not an emptyDir: gone with the pod
    claim = named(gpu_manifests, "PersistentVolumeClaim", claim_name)
    # One claim for all the replicas of the Deployment, so it must be mountable by several pods at once.
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["metadata"]["namespace"] == triton["metadata"]["namespace"]


def test_the_cpu_overlay_has_no_engine_cache_claim(cpu_manifests):
    assert not of_kind(cpu_manifests, "PersistentVolumeClaim")


def tensorrt_parameters(config: model_config_pb2.ModelConfig) -> dict[str, str]:
    (tensorrt,) = [
        accelerator
        for accelerator in config.optimization.execution_accelerators.gpu_execution_accelerator
        if accelerator.name == "tensorrt"
    ]
    return dict(tensorrt.parameters)


def profile_shapes(value: str) -> dict[str, list[int]]:
    """ONNX Runtime's profile syntax "input1:d1xd2...,input2:..." as {input: dims}."""
    shapes: dict[str, list[int]] = {}
    for entry in value.split(","):
        name, _, dims = entry.partition(":")
        shapes[name] = [int(dim) for dim in dims.split("x")]
    return shapes


def test_the_gpu_config_has_one_explicit_tensorrt_profile_from_one_chip_to_the_largest_batch():
    config = production_config()
    parameters = tensorrt_parameters(config)
    (chips,) = config.input
    assert config.max_batch_size == PROFILE_BATCHES["max"]
    for edge, batch in PROFILE_BATCHES.items():
        shapes = profile_shapes(parameters[f"trt_profile_{edge}_shapes"])
        # Every input of the model, by its name, with its dims behind the batch dimension.
        assert shapes == {chips.name: [batch, *chips.dims]}, edge


def test_the_gpu_config_warms_up_at_the_profiles_edges_and_optimum():
    config = production_config()
    (chips,) = config.input
    assert sorted(warmup.batch_size for warmup in config.model_warmup) == sorted(PROFILE_BATCHES.values())
    for warmup in config.model_warmup:
        (name,) = warmup.inputs
        data = warmup.inputs[name]
        assert (name, data.data_type, list(data.dims)) == (chips.name, chips.data_type, list(chips.dims))


def test_the_profile_names_the_onnx_graphs_own_input_with_its_batch_dimension_dynamic():
    # ONNX Runtime matches the profile by the graph's input names, not Triton's: they must agree.
    onnx = pytest.importorskip("onnx", reason="the onnx package is not installed")
    model_file = PRODUCTION_CONFIG.parent / "1" / "model.onnx"
    if not model_file.is_file():
        pytest.skip(f"{model_file.relative_to(REPO)} is not converted here (python -m facerec_embedder.model.convert)")
    graph = onnx.load(str(model_file), load_external_data=False).graph
    initializers = {initializer.name for initializer in graph.initializer}
    inputs = [graph_input for graph_input in graph.input if graph_input.name not in initializers]
    shapes = profile_shapes(tensorrt_parameters(production_config())["trt_profile_max_shapes"])
    assert [graph_input.name for graph_input in inputs] == list(shapes)
    (graph_input,) = inputs
    batch, *dims = graph_input.type.tensor_type.shape.dim
    assert batch.dim_param and not batch.dim_value, "the batch dimension must be dynamic for a 1..256 profile"
    assert [dim.dim_value for dim in dims] == shapes[graph_input.name][1:]
