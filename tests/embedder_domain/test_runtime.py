"""The embedding runtimes: the ONNX model in-process, and the Triton client's failure paths."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import dlib
import grpc
import numpy as np
import pytest

from facerec.runtime.errors import status_code_for
from facerec.runtime.net import free_port
from facerec_embedder.detection import FaceDetector, align_chip, landmarks_model_path
from facerec_embedder.errors import InvalidChip, TritonTimeout, TritonUnavailable
from facerec_embedder.images import decode_image
from facerec_embedder.runtime import CHIP_BYTES, OnnxRuntimeEmbedder, TritonEmbedder, chips_from_bytes

from .photos import sample


def face_chip(detector: FaceDetector, name: str) -> np.ndarray:
    image = decode_image(sample(name))
    (face,) = detector.detect(image, upsample=0)
    return align_chip(image, face.landmarks)


@pytest.fixture(scope="module")
def chips(detector: FaceDetector) -> np.ndarray:
    """Aligned chips of obama, obama2 and biden, in that order."""
    return np.stack([face_chip(detector, name) for name in ("obama.jpg", "obama2.jpg", "biden.jpg")])


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """A TCP server that accepts connections and never answers: a hung Triton."""
    connections: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"127.0.0.1:{port}"
    for writer in connections:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_onnx_embedder_reproduces_dlibs_descriptors(
    onnx_embedder: OnnxRuntimeEmbedder, chips: np.ndarray
) -> None:
    dlib_model = dlib.face_recognition_model_v1(
        str(landmarks_model_path().with_name("dlib_face_recognition_resnet_model_v1.dat"))
    )
    expected = np.array([dlib_model.compute_face_descriptor(chip) for chip in chips])

    embeddings = await onnx_embedder.embed(chips)

    assert embeddings.shape == (3, 128)
    assert embeddings.dtype == np.float32
    np.testing.assert_allclose(embeddings, expected, atol=1e-5)


async def test_same_person_is_closer_than_the_threshold_and_others_farther(
    onnx_embedder: OnnxRuntimeEmbedder, chips: np.ndarray
) -> None:
    obama, obama2, biden = await onnx_embedder.embed(chips)

    assert np.linalg.norm(obama - obama2) < 0.6
    assert np.linalg.norm(obama - biden) > 0.6


async def test_onnx_embedder_gives_no_embeddings_for_no_chips(onnx_embedder: OnnxRuntimeEmbedder) -> None:
    embeddings = await onnx_embedder.embed(np.zeros((0, 150, 150, 3), dtype=np.uint8))

    assert embeddings.shape == (0, 128)


async def test_chips_of_the_wrong_size_are_invalid(onnx_embedder: OnnxRuntimeEmbedder) -> None:
    with pytest.raises(InvalidChip, match=r"\(N, 150, 150, 3\)") as raised:
        await onnx_embedder.embed(np.zeros((1, 112, 112, 3), dtype=np.uint8))

    assert status_code_for(raised.value) == grpc.StatusCode.INVALID_ARGUMENT


async def test_chips_of_the_wrong_type_are_invalid(onnx_embedder: OnnxRuntimeEmbedder) -> None:
    with pytest.raises(InvalidChip, match="uint8"):
        await onnx_embedder.embed(np.zeros((1, 150, 150, 3), dtype=np.float32))


def test_raw_chip_bytes_become_chips_in_order(chips: np.ndarray) -> None:
    restored = chips_from_bytes([chip.tobytes() for chip in chips])

    np.testing.assert_array_equal(restored, chips)


def test_raw_chip_of_the_wrong_length_is_invalid(chips: np.ndarray) -> None:
    with pytest.raises(InvalidChip, match=rf"chip 1 has 100 bytes; a 150x150 RGB chip has {CHIP_BYTES:,}"):
        chips_from_bytes([chips[0].tobytes(), b"\x00" * 100])


async def test_triton_down_is_unavailable_naming_triton_and_its_url(chips: np.ndarray) -> None:
    url = f"127.0.0.1:{free_port()}"
    embedder = TritonEmbedder(url, timeout_s=2.0)
    started = time.monotonic()

    with pytest.raises(TritonUnavailable, match=rf"Triton at {url} is unavailable") as raised:
        await embedder.embed(chips)

    assert time.monotonic() - started < 2.0
    assert status_code_for(raised.value) == grpc.StatusCode.UNAVAILABLE
    await embedder.close()


async def test_triton_down_is_not_ready() -> None:
    embedder = TritonEmbedder(f"127.0.0.1:{free_port()}", readiness_timeout_s=1.0)

    assert await embedder.is_ready() is False
    await embedder.close()


async def test_hung_triton_times_out_within_the_call_timeout(silent_server: str, chips: np.ndarray) -> None:
    embedder = TritonEmbedder(silent_server, timeout_s=0.5)
    started = time.monotonic()

    with pytest.raises(TritonTimeout, match=rf"Triton at {silent_server} did not answer within 0.5 s") as raised:
        await embedder.embed(chips)

    assert time.monotonic() - started < 2.0
    assert status_code_for(raised.value) == grpc.StatusCode.DEADLINE_EXCEEDED
    await embedder.close()


async def test_hung_triton_is_not_ready_within_the_readiness_timeout(silent_server: str) -> None:
    embedder = TritonEmbedder(silent_server, readiness_timeout_s=0.5)
    started = time.monotonic()

    assert await embedder.is_ready() is False
    assert time.monotonic() - started < 2.0
    await embedder.close()
