"""The embedder service on a real Triton started by our launcher: real photos in, faces and descriptors out."""

from __future__ import annotations

import asyncio
import io
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import dlib
import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image

from facerec.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from facerec.runtime.net import free_port
from facerec.runtime.server import ServiceRunner
from facerec.v1 import face_pb2
from facerec_embedder.app import EmbedderApp
from facerec_embedder.model.files import RECOGNITION_MODEL, model_file
from facerec_embedder.settings import EmbedderSettings
from facerec_embedder.triton.launcher import TritonServer
from tests.fixtures.stack import QUICK, wait_serving
from tests.fixtures.triton import settled_statistics


@pytest.fixture
async def embedder(embedder_service: ServiceRunner) -> AsyncIterator[embedder_pb2_grpc.EmbedderStub]:
    channel = grpc.aio.insecure_channel(embedder_service.address)
    yield embedder_pb2_grpc.EmbedderStub(channel)
    await channel.close()


def dlib_descriptor(photo: Path, face: face_pb2.Face) -> np.ndarray:
    """dlib on the photo and the service's face box (whichever detector found it): landmarks, chip, descriptor."""
    from facerec_embedder.detection import landmarks_model_path

    image = np.asarray(Image.open(photo).convert("RGB"))
    box = dlib.rectangle(face.box.x, face.box.y, face.box.x + face.box.width - 1, face.box.y + face.box.height - 1)
    shape = dlib.shape_predictor(str(landmarks_model_path()))(image, box)
    chip = dlib.get_face_chip(image, shape, size=150, padding=0.25)
    model = dlib.face_recognition_model_v1(str(model_file(RECOGNITION_MODEL)))
    return np.asarray(model.compute_face_descriptor(chip))


async def test_photo_gives_its_face_with_dlibs_descriptor(embedder, samples_dir) -> None:
    photo = samples_dir / "obama.jpg"
    response = await embedder.EmbedPhoto(embedder_pb2.EmbedPhotoRequest(image=photo.read_bytes()), timeout=60)
    assert len(response.faces) == 1 and response.model_id == "dlib_resnet_v1"
    face = response.faces[0]
    assert len(face.embedding.values) == 128 and face.embedding.model_id == "dlib_resnet_v1"
    difference = np.abs(np.asarray(face.embedding.values) - dlib_descriptor(photo, face)).max()
    assert difference <= 1e-5
    assert (response.image_size.width, response.image_size.height) == Image.open(photo).size
    assert face.quality.face_size_px > 100 and face.quality.frontality > 0.8


async def test_detect_only_leaves_the_descriptor_out_and_chips_come_on_request(embedder, samples_dir) -> None:
    request = embedder_pb2.EmbedPhotoRequest(
        image=(samples_dir / "biden.jpg").read_bytes(), detect_only=True, include_chips=True
    )
    response = await embedder.EmbedPhoto(request, timeout=60)
    assert len(response.faces) == 1 and not response.faces[0].embedding.values
    assert len(response.chips) == 1 and len(response.chips[0]) == 150 * 150 * 3


async def test_chips_give_the_same_descriptors_as_photos(embedder, samples_dir) -> None:
    request = embedder_pb2.EmbedPhotoRequest(image=(samples_dir / "obama2.jpg").read_bytes(), include_chips=True)
    photo = await embedder.EmbedPhoto(request, timeout=60)
    chips = await embedder.EmbedChips(embedder_pb2.EmbedChipsRequest(chips=list(photo.chips)), timeout=60)
    assert np.allclose(chips.embeddings[0].values, photo.faces[0].embedding.values, atol=1e-6)


async def test_concurrent_requests_share_triton_calls(embedder, samples_dir, triton_server: TritonServer) -> None:
    request = embedder_pb2.EmbedPhotoRequest(image=(samples_dir / "obama3.jpg").read_bytes(), include_chips=True)
    chip = (await embedder.EmbedPhoto(request, timeout=60)).chips[0]
    before = _statistics(triton_server)
    await asyncio.gather(
        *(embedder.EmbedChips(embedder_pb2.EmbedChipsRequest(chips=[chip]), timeout=60) for _ in range(16))
    )
    after = _statistics(triton_server)
    inferences, executions = after[0] - before[0], after[1] - before[1]
    assert inferences == 16
    assert executions < 16, f"16 concurrent single-chip requests took {executions} Triton executions"


def _statistics(server: TritonServer) -> tuple[int, int]:
    stats = settled_statistics(server.grpc_url, server.model_name)
    return int(stats.inference_count), int(stats.execution_count)


async def test_photo_without_a_face_gives_an_empty_list(embedder) -> None:
    blank = io.BytesIO()
    Image.new("RGB", (320, 240), (90, 120, 150)).save(blank, format="PNG")
    response = await embedder.EmbedPhoto(embedder_pb2.EmbedPhotoRequest(image=blank.getvalue()), timeout=60)
    assert list(response.faces) == []


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"GIF89a not what we accept", grpc.StatusCode.INVALID_ARGUMENT),
        (b"\xff\xd8\xff\xe0 truncated jpeg", grpc.StatusCode.INVALID_ARGUMENT),
        (b"", grpc.StatusCode.INVALID_ARGUMENT),
    ],
    ids=["gif", "truncated", "empty"],
)
async def test_bad_images_are_invalid_arguments(embedder, payload: bytes, code: grpc.StatusCode) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await embedder.EmbedPhoto(embedder_pb2.EmbedPhotoRequest(image=payload), timeout=60)
    assert raised.value.code() == code
    assert raised.value.details()


async def test_decompression_bomb_is_resource_exhausted_before_decoding(embedder) -> None:
    bomb = _png_header(50_000, 50_000)  # 2.5 gigapixels announced in 60 bytes
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await embedder.EmbedPhoto(embedder_pb2.EmbedPhotoRequest(image=bomb), timeout=60)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "pixels" in (raised.value.details() or "")


def _png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


async def test_wrong_chip_size_is_an_invalid_argument(embedder) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await embedder.EmbedChips(embedder_pb2.EmbedChipsRequest(chips=[b"\0" * 1000]), timeout=60)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_triton_down_gives_unavailable_naming_triton_and_the_service_recovers(samples_dir) -> None:
    """Stops and restarts a real Triton under a running embedder (its own Triton, on fixed ports)."""
    grpc_port, http_port, metrics_port = free_port(), free_port(), free_port()

    def same_ports_triton() -> TritonServer:
        return TritonServer(grpc_port=grpc_port, http_port=http_port, metrics_port=metrics_port).start(timeout=120)

    triton = same_ports_triton()
    settings = EmbedderSettings(**QUICK, triton_url=triton.grpc_url, triton_timeout_s=5)  # type: ignore[arg-type]
    runner = ServiceRunner(EmbedderApp(settings), settings)
    await runner.start()
    photo = embedder_pb2.EmbedPhotoRequest(image=(samples_dir / "obama.jpg").read_bytes())
    try:
        await wait_serving(runner.address)
        async with grpc.aio.insecure_channel(runner.address) as channel:
            stub = embedder_pb2_grpc.EmbedderStub(channel)
            assert len((await stub.EmbedPhoto(photo, timeout=60)).faces) == 1
            await asyncio.to_thread(triton.stop)
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.EmbedPhoto(photo, timeout=60)
            assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "Triton" in (raised.value.details() or "")
            await _wait_health(channel, health_pb2.HealthCheckResponse.NOT_SERVING)
            triton = await asyncio.to_thread(same_ports_triton)
            await _wait_health(channel, health_pb2.HealthCheckResponse.SERVING)
            assert len((await stub.EmbedPhoto(photo, timeout=60)).faces) == 1
    finally:
        await runner.stop(0)
        await asyncio.to_thread(triton.stop)


async def test_health_is_not_serving_while_triton_is_absent() -> None:
    settings = EmbedderSettings(**QUICK, triton_url=f"127.0.0.1:{free_port()}")  # type: ignore[arg-type]
    runner = ServiceRunner(EmbedderApp(settings), settings)
    await runner.start()
    try:
        async with grpc.aio.insecure_channel(runner.address) as channel:
            await asyncio.sleep(0.3)
            response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert response.status == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        await runner.stop(0)


async def _wait_health(channel: grpc.aio.Channel, status: int, timeout_s: float = 30) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    for _ in range(int(timeout_s / 0.1)):
        response = await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
        if response.status == status:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"health never became {status}")
