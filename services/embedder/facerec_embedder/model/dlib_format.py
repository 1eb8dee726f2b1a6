"""A numpy reader for dlib's serialization of a DNN (``serialize(net, out)``), enough for the face ResNet.

The formats come from dlib's ``serialize.h`` (integers, floats, strings, bools), ``dnn/tensor.h`` (tensors),
``dnn/core.h`` (how layers nest) and ``dnn/layers.h`` / ``dnn/input.h`` / ``dnn/loss.h`` (each layer's
fields). The file nests from the loss layer down: ``add_loss_layer`` writes its version and loss, then its
subnetwork; every ``add_layer`` writes its version, then its *whole subnetwork*, then its own layer; tag and
skip layers write a version and their subnetwork only. So the file holds a run of version numbers (top to
bottom), then the layers themselves from the input up. :func:`read_network` returns them in that order,
input first, which is also the order of computation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]

# float_details marks the special values with these exponents (serialize.h).
_EXPONENT_INF = 32000
_EXPONENT_NINF = 32001
_EXPONENT_NAN = 32002

# Versions written by dlib's core.h: add_layer (2), the add_layer sitting on the input layer (3),
# add_tag_layer / add_skip_layer (1), add_loss_layer (1).
_ADD_LAYER_VERSION = 2
_INPUT_ADD_LAYER_VERSION = 3
_TAG_OR_SKIP_VERSION = 1


class DlibFormatError(ValueError):
    """The bytes do not follow dlib's serialization of a network we know how to read."""


@dataclass(frozen=True)
class InputRGB:
    """``input_rgb_image_sized``: pixels become ``(value - mean[channel]) / 256`` (R, G, B planes)."""

    mean_rgb: tuple[float, float, float]
    rows: int
    cols: int


@dataclass(frozen=True)
class Conv:
    """``con_``: cross-correlation with ``weights[out, in, kh, kw]`` plus ``bias[out]``."""

    weights: FloatArray
    bias: FloatArray
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class Affine:
    """``affine_`` in conv mode (a batch norm folded at training's end): ``x * gamma[c] + beta[c]``."""

    gamma: FloatArray
    beta: FloatArray


@dataclass(frozen=True)
class Relu:
    """``relu_``."""


@dataclass(frozen=True)
class Pool:
    """``max_pool_`` / ``avg_pool_``; a window of 0 means the whole input (``avg_pool_everything``)."""

    kind: str  # "max" or "avg"
    window: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class AddPrev:
    """``add_prev_``: adds the output of a tagged layer below (which tag is fixed by the network type)."""


@dataclass(frozen=True)
class TagOrSkip:
    """``add_tag_layer`` or ``add_skip_layer``: the file does not say which, nor its number."""


@dataclass(frozen=True)
class FullyConnected:
    """``fc_``: ``x @ weights`` with ``weights[num_inputs, num_outputs]`` and an optional bias."""

    weights: FloatArray
    bias: FloatArray | None


@dataclass(frozen=True)
class MetricLoss:
    """``loss_metric_``: training parameters only; the descriptor is the raw output of the layer below."""

    margin: float
    distance_threshold: float


Layer = InputRGB | Conv | Affine | Relu | Pool | AddPrev | TagOrSkip | FullyConnected


@dataclass(frozen=True)
class Network:
    """A parsed network: its layers from the input up, and its loss."""

    layers: tuple[Layer, ...]
    loss: MetricLoss


class DlibStream:
    """Reads dlib's portable encodings from a byte buffer."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self.offset = 0

    def _take(self, size: int) -> memoryview:
        end = self.offset + size
        if end > len(self._data):
            raise DlibFormatError(f"unexpected end of data at byte {self.offset} (wanted {size} bytes)")
        chunk = self._data[self.offset : end]
        self.offset = end
        return chunk

    def read_int(self) -> int:
        """An integer: one control byte (low nibble: byte count, bit 7: negative), then little-endian bytes."""
        control = self._take(1)[0]
        size = control & 0x0F
        if size > 8:
            raise DlibFormatError(f"integer of {size} bytes at byte {self.offset - 1}")
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def read_float(self) -> float:
        """A float or double as dlib's ``float_details``: an int64 mantissa and an int16 exponent."""
        mantissa = self.read_int()
        exponent = self.read_int()
        if exponent == _EXPONENT_INF:
            return math.inf
        if exponent == _EXPONENT_NINF:
            return -math.inf
        if exponent == _EXPONENT_NAN:
            return math.nan
        return math.ldexp(mantissa, exponent)

    def read_bool(self) -> bool:
        """A bool, written as the character '1' or '0'."""
        char = bytes(self._take(1))
        if char not in (b"0", b"1"):
            raise DlibFormatError(f"bad bool {char!r} at byte {self.offset - 1}")
        return char == b"1"

    def read_str(self) -> str:
        """A string: its length as an integer, then its bytes."""
        return bytes(self._take(self.read_int())).decode("ascii")

    def read_tensor(self) -> FloatArray:
        """A ``resizable_tensor`` (version 2): four dimensions, then little-endian IEEE float32 values."""
        self._expect_version(2, "tensor")
        shape = tuple(self.read_int() for _ in range(4))
        count = math.prod(shape)
        values = np.frombuffer(self._take(4 * count), dtype="<f4").astype(np.float32)
        return values.reshape(shape)

    def read_alias_tensor(self) -> tuple[int, int, int, int]:
        """An ``alias_tensor`` (a view into a layer's parameters): version 1 and four dimensions."""
        self._expect_version(1, "alias_tensor")
        n, k, nr, nc = (self.read_int() for _ in range(4))
        return n, k, nr, nc

    def _expect_version(self, expected: int, what: str) -> None:
        version = self.read_int()
        if version != expected:
            raise DlibFormatError(f"{what} version {version} at byte {self.offset}, expected {expected}")


def _view(params: FloatArray, offset: int, shape: tuple[int, ...]) -> FloatArray:
    count = math.prod(shape)
    flat = params.reshape(-1)
    if offset + count > flat.size:
        raise DlibFormatError(f"alias of {shape} at {offset} exceeds parameters of size {flat.size}")
    return flat[offset : offset + count].reshape(shape).copy()


def _read_conv(stream: DlibStream) -> Conv:
    params = stream.read_tensor()
    stream.read_int()  # num_filters, repeated in the filters' alias
    stream.read_int()  # nr
    stream.read_int()  # nc
    stride = (stream.read_int(), stream.read_int())
    padding = (stream.read_int(), stream.read_int())
    filters = stream.read_alias_tensor()
    biases = stream.read_alias_tensor()
    for _ in range(4):  # learning-rate and weight-decay multipliers: training only
        stream.read_float()
    weights = _view(params, 0, filters)
    bias = _view(params, math.prod(filters), (math.prod(biases),))
    return Conv(weights=weights, bias=bias, stride=stride, padding=padding)


def _read_affine(stream: DlibStream) -> Affine:
    params = stream.read_tensor()
    gamma_shape = stream.read_alias_tensor()
    beta_shape = stream.read_alias_tensor()
    mode = stream.read_int()
    if mode != 0:  # dlib's layer_mode: CONV_MODE = 0, FC_MODE = 1
        raise DlibFormatError("affine_ in FC_MODE is not supported")
    gamma = _view(params, 0, (math.prod(gamma_shape),))
    beta = _view(params, gamma.size, (math.prod(beta_shape),))
    return Affine(gamma=gamma, beta=beta)


def _read_pool(stream: DlibStream, kind: str) -> Pool:
    window = (stream.read_int(), stream.read_int())
    stride = (stream.read_int(), stream.read_int())
    padding = (stream.read_int(), stream.read_int())
    return Pool(kind=kind, window=window, stride=stride, padding=padding)


def _read_fc(stream: DlibStream) -> FullyConnected:
    num_outputs = stream.read_int()
    num_inputs = stream.read_int()
    params = stream.read_tensor()
    weights_shape = stream.read_alias_tensor()
    biases_shape = stream.read_alias_tensor()
    has_bias = stream.read_int() == 0  # fc_bias_mode: FC_HAS_BIAS = 0, FC_NO_BIAS = 1
    for _ in range(4):
        stream.read_float()
    if math.prod(weights_shape) != num_inputs * num_outputs:
        raise DlibFormatError(f"fc_ weights {weights_shape} do not hold {num_inputs}x{num_outputs}")
    weights = _view(params, 0, (num_inputs, num_outputs))
    bias = _view(params, weights.size, (math.prod(biases_shape),)) if has_bias else None
    return FullyConnected(weights=weights, bias=bias)


def _read_layer(stream: DlibStream) -> Layer:
    """Read one layer's details (they start with a version string naming the layer type)."""
    name = stream.read_str()
    match name:
        case "con_4":
            return _read_conv(stream)
        case "affine_":
            return _read_affine(stream)
        case "relu_":
            return Relu()
        case "max_pool_2":
            return _read_pool(stream, "max")
        case "avg_pool_2":
            return _read_pool(stream, "avg")
        case "add_prev_":
            return AddPrev()
        case "fc_2":
            return _read_fc(stream)
    raise DlibFormatError(f"unsupported layer {name!r} before byte {stream.offset}")


def _read_input(stream: DlibStream) -> InputRGB:
    name = stream.read_str()
    if name != "input_rgb_image_sized":
        raise DlibFormatError(f"unsupported input layer {name!r}")
    mean = (stream.read_float(), stream.read_float(), stream.read_float())
    return InputRGB(mean_rgb=mean, rows=stream.read_int(), cols=stream.read_int())


def _skip_add_layer_state(stream: DlibStream, *, on_input: bool) -> None:
    """Skip what ``add_layer`` saves after its layer: training flags and (empty) cached tensors."""
    for _ in range(3):  # this_layer_setup_called, gradient_input_is_stale, get_output_..._disabled
        stream.read_bool()
    for _ in range(3):  # x_grad, cached_output, then params_grad (or grad_final on the input)
        stream.read_tensor()
    if on_input:
        stream.read_int()  # _sample_expansion_factor


def _read_loss(stream: DlibStream) -> MetricLoss:
    version = stream.read_int()
    if version != 1:
        raise DlibFormatError(f"add_loss_layer version {version}, expected 1")
    name = stream.read_str()
    if name != "loss_metric_2":
        raise DlibFormatError(f"unsupported loss {name!r}")
    return MetricLoss(margin=stream.read_float(), distance_threshold=stream.read_float())


def parse_network(data: bytes) -> Network:
    """Parse a network serialized by dlib into its layers, input first."""
    stream = DlibStream(data)
    loss = _read_loss(stream)
    wrappers: list[int] = []  # the versions met going down; they say which wrapper each level is
    while (version := stream.read_int()) != _INPUT_ADD_LAYER_VERSION:
        if version not in (_ADD_LAYER_VERSION, _TAG_OR_SKIP_VERSION):
            raise DlibFormatError(f"unexpected layer wrapper version {version} at byte {stream.offset}")
        wrappers.append(version)
    layers: list[Layer] = [_read_input(stream), _read_layer(stream)]
    _skip_add_layer_state(stream, on_input=True)
    for version in reversed(wrappers):
        if version == _TAG_OR_SKIP_VERSION:
            layers.append(TagOrSkip())
            continue
        layers.append(_read_layer(stream))
        _skip_add_layer_state(stream, on_input=False)
    if stream.offset != len(data):
        raise DlibFormatError(f"{len(data) - stream.offset} bytes left after the network")
    return Network(layers=tuple(layers), loss=loss)


def read_network(path: Path) -> Network:
    """Parse the dlib network stored at ``path``."""
    return parse_network(path.read_bytes())
