"""Derive the CPU flavour of the production Triton model config, for the official Triton image.

The production ``face_embedder/config.pbtxt`` asks for GPU instances with TensorRT FP16. On a machine without a
GPU (the compose default, the Kubernetes ``cpu`` overlay) the official image serves the same ``model.onnx`` with
its ONNX Runtime backend on CPU instead. Rather than keeping a second hand-written copy of the config (which
would drift), this script derives it at image build time: everything that defines the model's contract (name,
platform, inputs, outputs, max_batch_size, dynamic batching and its bounded queue) is kept; only the placement
(instance groups) and the GPU-only optimisations are replaced. Triton selects it with
``--model-config-name=cpu_onnx``.

The threads are fitted to the Triton container's CPU limit: ONNX Runtime's default (0) starts one intra-op thread
per core of the *machine*, so every instance of a pod limited to 4 CPUs on a 64-core node would run 64 threads
and the pod would spend its quota being throttled. Here the instances share the limit: each gets
``cpu_limit / instances`` intra-op threads and one inter-op thread (the graph runs its nodes in sequence).

    python deploy/triton/cpu_config.py PRODUCTION_CONFIG OUTPUT --cpu-limit CPUS [--instances N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

CPU_CONFIG_NAME = "cpu_onnx"
# The ONNX Runtime backend's model-config parameters for its thread pools (per instance).
INTRA_OP_THREADS = "intra_op_thread_count"
INTER_OP_THREADS = "inter_op_thread_count"


def parse_config(text: str) -> model_config_pb2.ModelConfig:
    """Parse a Triton ``config.pbtxt`` (protobuf text format)."""
    return text_format.Parse(text, model_config_pb2.ModelConfig())


def cpu_config(
    production: model_config_pb2.ModelConfig, *, cpu_limit: int, instances: int = 1
) -> model_config_pb2.ModelConfig:
    """The production config with ``instances`` CPU instances sharing ``cpu_limit`` CPUs, without GPU-only
    optimisation."""
    if instances < 1:
        raise ValueError(f"instances must be at least 1, got {instances}")
    if cpu_limit < instances or cpu_limit % instances:
        raise ValueError(
            f"the CPU limit ({cpu_limit}) must be a multiple of the instances ({instances}): each instance gets "
            "the same whole number of threads"
        )
    derived = model_config_pb2.ModelConfig()
    derived.CopyFrom(production)
    del derived.instance_group[:]
    derived.instance_group.add(kind=model_config_pb2.ModelInstanceGroup.KIND_CPU, count=instances)
    # TensorRT, CUDA graphs and pinned buffers exist only on a GPU; ONNX Runtime's default CPU provider remains.
    del derived.optimization.execution_accelerators.gpu_execution_accelerator[:]
    derived.optimization.ClearField("cuda")
    derived.optimization.ClearField("input_pinned_memory")
    derived.optimization.ClearField("output_pinned_memory")
    if not derived.optimization.execution_accelerators.ListFields():
        derived.optimization.ClearField("execution_accelerators")
    if not derived.optimization.ListFields():
        derived.ClearField("optimization")
    derived.parameters[INTRA_OP_THREADS].string_value = str(cpu_limit // instances)
    derived.parameters[INTER_OP_THREADS].string_value = "1"
    return derived


def threads(config: model_config_pb2.ModelConfig) -> int:
    """The CPU threads a derived config runs: intra-op threads of each instance times the CPU instances."""
    per_instance = int(config.parameters[INTRA_OP_THREADS].string_value)
    instances = int(
        sum(
            group.count for group in config.instance_group if group.kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
        )
    )
    return per_instance * instances


def main(argv: list[str] | None = None) -> int:
    """Write the CPU config derived from the production config; exit status 0 on success."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("production", type=Path, help="the production config.pbtxt")
    parser.add_argument("output", type=Path, help=f"where to write configs/{CPU_CONFIG_NAME}.pbtxt")
    parser.add_argument("--cpu-limit", type=int, required=True, help="CPU limit of the Triton container (whole CPUs)")
    parser.add_argument("--instances", type=int, default=1, help="CPU model instances sharing it (default 1)")
    args = parser.parse_args(argv)
    try:
        derived = cpu_config(
            parse_config(args.production.read_text()), cpu_limit=args.cpu_limit, instances=args.instances
        )
    except ValueError as error:
        parser.error(str(error))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    header = f"# Generated from {args.production.name} by deploy/triton/cpu_config.py: do not edit.\n"
    args.output.write_text(header + text_format.MessageToString(derived))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
