"""The ONNX export of dlib's face ResNet gives dlib's descriptors, on real faces; the converter is sound."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from facerec_embedder.align import face_chip
from facerec_embedder.model import CHIP_SIZE, EMBEDDING_DIM, INPUT_NAME, MODEL_ID, OUTPUT_NAME
from facerec_embedder.model import dlib_format as dlib_format
from facerec_embedder.model.convert import OPSET, convert_file, main
from facerec_embedder.model.files import RECOGNITION_MODEL, model_file
from tests.embedder.real_faces import (
    SAMPLE_PHOTOS,
    SHARED_FACES_SUBSET,
    DetectedFace,
    dlib_descriptor,
    faces_in,
    load_rgb,
)

MAX_ABS_DIFF = 1e-5
FACE_API_L2 = 1e-4
STANDARD_OPS = {"Cast", "Sub", "Mul", "Add", "Transpose", "Conv", "Relu", "MaxPool", "AveragePool", "Pad"}
STANDARD_OPS |= {"GlobalAveragePool", "Flatten", "MatMul", "Identity"}


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory) -> Path:
    """A fresh conversion (not the repository's copy, so these tests do not depend on set-up)."""
    path = tmp_path_factory.mktemp("model") / "model.onnx"
    convert_file(model_file(RECOGNITION_MODEL), path)
    return path


@pytest.fixture(scope="module")
def session(onnx_path) -> ort.InferenceSession:
    return ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])


def embed(session: ort.InferenceSession, chips: np.ndarray) -> np.ndarray:
    return session.run([OUTPUT_NAME], {INPUT_NAME: chips})[0]


def assert_matches_dlib(session: ort.InferenceSession, faces: list[DetectedFace]) -> None:
    assert faces, "no face was detected: the test would prove nothing"
    chips = np.stack([face.dlib_chip for face in faces])
    ours = embed(session, chips)
    reference = np.stack([dlib_descriptor(face.dlib_chip) for face in faces])
    worst = float(np.abs(ours - reference).max())
    assert worst <= MAX_ABS_DIFF, f"max abs diff {worst:.2e} over {len(faces)} faces"


def test_descriptors_match_dlib_on_the_sample_photos(session, samples_dir):
    assert_matches_dlib(session, faces_in(samples_dir, SAMPLE_PHOTOS))


def test_descriptors_match_dlib_on_labelled_photos(session, shared_faces_dir):
    faces = faces_in(shared_faces_dir, SHARED_FACES_SUBSET)
    assert len(faces) >= 20
    assert_matches_dlib(session, faces)


def test_descriptors_match_the_face_api_reference_values(session, shared_faces_dir):
    # face-api.js computed these with its own port of the same network, on 150x150 grey chips.
    for index in (1, 2):
        chip = load_rgb(shared_faces_dir / "faceapi_test_images" / f"face{index}.png")
        reference = json.loads((shared_faces_dir / "faceapi_test_data" / f"faceDescriptor{index}.json").read_text())
        assert len(reference) == EMBEDDING_DIM
        distance = float(np.linalg.norm(embed(session, chip[None])[0] - np.asarray(reference)))
        assert distance <= FACE_API_L2, f"face{index}: L2 {distance:.2e}"


def test_our_alignment_and_model_together_give_dlibs_descriptor(session, samples_dir):
    faces = faces_in(samples_dir, SAMPLE_PHOTOS)
    chips = np.stack([face_chip(face.image, face.landmarks) for face in faces])
    reference = np.stack([dlib_descriptor(face.dlib_chip) for face in faces])
    assert np.abs(embed(session, chips) - reference).max() <= MAX_ABS_DIFF


def test_same_person_is_closer_than_the_threshold_and_others_are_farther(session, samples_dir):
    obama = [faces_in(samples_dir, (name,))[0] for name in ("obama.jpg", "obama2.jpg", "obama3.jpg")]
    biden = faces_in(samples_dir, ("biden.jpg",))[0]
    vectors = embed(session, np.stack([face.dlib_chip for face in [*obama, biden]]))
    same = [np.linalg.norm(vectors[i] - vectors[j]) for i in range(3) for j in range(i + 1, 3)]
    different = [np.linalg.norm(vectors[i] - vectors[3]) for i in range(3)]
    assert max(same) < 0.6 < min(different)


def test_a_batch_gives_the_same_rows_as_single_chips(session, samples_dir):
    chips = np.stack([face.dlib_chip for face in faces_in(samples_dir, SAMPLE_PHOTOS)])
    batched = embed(session, chips)
    singles = np.concatenate([embed(session, chip[None]) for chip in chips])
    assert np.abs(batched - singles).max() <= 1e-6


def test_the_graph_takes_uint8_chips_and_gives_128_floats_with_a_dynamic_batch(onnx_path):
    model = onnx.load(str(onnx_path))
    (chips,) = model.graph.input
    (embeddings,) = model.graph.output
    assert (chips.name, chips.type.tensor_type.elem_type) == (INPUT_NAME, onnx.TensorProto.UINT8)
    assert [d.dim_param or d.dim_value for d in chips.type.tensor_type.shape.dim] == ["N", CHIP_SIZE, CHIP_SIZE, 3]
    assert (embeddings.name, embeddings.type.tensor_type.elem_type) == (OUTPUT_NAME, onnx.TensorProto.FLOAT)
    assert [d.dim_param or d.dim_value for d in embeddings.type.tensor_type.shape.dim] == ["N", EMBEDDING_DIM]


def test_the_graph_uses_standard_operators_of_opset_13_only(onnx_path):
    model = onnx.load(str(onnx_path))
    assert [(o.domain, o.version) for o in model.opset_import] == [("", OPSET)]
    assert OPSET == 13
    onnx.checker.check_model(model, full_check=True)
    assert {node.op_type for node in model.graph.node} <= STANDARD_OPS
    assert sum(node.op_type == "Conv" for node in model.graph.node) == 29


def test_the_parser_finds_dlibs_resnet_structure():
    network = dlib_format.read_network(model_file(RECOGNITION_MODEL))
    count = {
        kind: sum(isinstance(layer, kind) for layer in network.layers)
        for kind in (dlib_format.Conv, dlib_format.Affine, dlib_format.Relu, dlib_format.AddPrev, dlib_format.Pool)
    }
    assert count == {
        dlib_format.Conv: 29,
        dlib_format.Affine: 29,
        dlib_format.Relu: 29,
        dlib_format.AddPrev: 14,
        dlib_format.Pool: 6,
    }
    assert isinstance(network.layers[0], dlib_format.InputRGB)
    assert (network.layers[0].rows, network.layers[0].cols) == (CHIP_SIZE, CHIP_SIZE)
    assert network.layers[0].mean_rgb == pytest.approx((122.782, 117.001, 104.298), abs=1e-3)
    fc = network.layers[-1]
    assert isinstance(fc, dlib_format.FullyConnected) and fc.bias is None
    assert fc.weights.shape == (256, EMBEDDING_DIM)
    assert network.loss.distance_threshold == pytest.approx(0.6)


def test_the_parser_refuses_a_truncated_file():
    data = model_file(RECOGNITION_MODEL).read_bytes()
    with pytest.raises(dlib_format.DlibFormatError, match="end of data"):
        dlib_format.parse_network(data[: len(data) // 2])


def test_the_parser_refuses_trailing_bytes():
    data = model_file(RECOGNITION_MODEL).read_bytes()
    with pytest.raises(dlib_format.DlibFormatError, match="left after"):
        dlib_format.parse_network(data + b"\x00")


def test_dlib_portable_numbers_are_decoded():
    # 0.04 as dlib writes it: mantissa 0xa3d70a (3 bytes), exponent -28 (sign bit in the control byte).
    stream = dlib_format.DlibStream(bytes([0x03, 0x0A, 0xD7, 0xA3, 0x81, 0x1C, 0x01, 0x00, 0x82, 0x00, 0x01]))
    assert stream.read_float() == pytest.approx(0.04, rel=1e-7)
    assert stream.read_int() == 0
    assert stream.read_int() == -256


def test_conversion_is_skipped_when_the_output_is_up_to_date(tmp_path):
    out = tmp_path / "model.onnx"
    source = model_file(RECOGNITION_MODEL)
    assert convert_file(source, out) is True
    written = out.stat().st_mtime_ns
    assert convert_file(source, out) is False
    assert out.stat().st_mtime_ns == written


def test_conversion_replaces_a_damaged_output(tmp_path):
    out = tmp_path / "model.onnx"
    out.write_bytes(b"not a model")
    assert convert_file(model_file(RECOGNITION_MODEL), out) is True
    assert onnx.load(str(out)).graph.name == MODEL_ID


def test_the_command_line_converts_and_forces(tmp_path, capsys):
    out = tmp_path / "nested" / "model.onnx"
    assert main(["--out", str(out)]) == 0
    assert main(["--out", str(out)]) == 0
    assert main(["--out", str(out), "--force"]) == 0
    assert capsys.readouterr().err.splitlines() == [f"wrote {out}", f"up to date: {out}", f"wrote {out}"]
    assert out.stat().st_mode & 0o044 == 0o044, "the model must be readable by a server running as another user"
