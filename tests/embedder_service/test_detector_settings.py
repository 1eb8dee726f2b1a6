"""The detector settings: YuNet by default, dlib's HOG on request, both serving real photos through the service."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import grpc
import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from facerec.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from facerec.runtime.server import ServiceRunner
from facerec_embedder.app import EmbedderApp, face_detector
from facerec_embedder.detectors import HogDetector, YuNetDetector
from facerec_embedder.settings import EmbedderSettings
from facerec_embedder.triton.launcher import TritonServer
from tests.fixtures.stack import QUICK, start, wait_serving


def test_yunet_is_the_default_detector_on_a_copy_bounded_to_640_px() -> None:
    detector = face_detector(EmbedderSettings())

    assert isinstance(detector.boxes, YuNetDetector)
    assert detector.max_side == 640 and detector.default_upsample == 0
    assert detector.boxes.score_threshold == 0.9 and detector.boxes.threads == 1


def test_hog_is_chosen_by_the_environment_with_its_own_default_upsampling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEREC_EMBEDDER_DETECTOR", "hog")
    monkeypatch.setenv("FACEREC_EMBEDDER_DETECTION_MAX_SIDE", "1280")

    detector = face_detector(EmbedderSettings())

    assert isinstance(detector.boxes, HogDetector)
    assert detector.max_side == 1280 and detector.default_upsample == 1


def test_upsample_setting_overrides_the_detectors_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEREC_EMBEDDER_UPSAMPLE", "1")

    assert face_detector(EmbedderSettings()).default_upsample == 1


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FACEREC_EMBEDDER_DETECTOR", "mtcnn"),
        ("FACEREC_EMBEDDER_YUNET_SCORE_THRESHOLD", "1.5"),
        ("FACEREC_EMBEDDER_DETECTION_MAX_SIDE", "10"),
        ("FACEREC_EMBEDDER_UPSAMPLE", "4"),
    ],
)
def test_a_setting_out_of_range_stops_the_service_at_start(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(ValidationError):
        EmbedderSettings()


@pytest.fixture(scope="module", params=["yunet", "hog"])
async def service(request: pytest.FixtureRequest, triton_server: TritonServer) -> AsyncIterator[ServiceRunner]:
    settings = EmbedderSettings(**QUICK, triton_url=triton_server.grpc_url, detector=request.param)  # type: ignore[arg-type]
    runner = await start(EmbedderApp(settings), settings)
    await wait_serving(runner.address)
    yield runner
    await runner.stop(0)


async def embed(runner: ServiceRunner, photo: bytes) -> embedder_pb2.EmbedPhotoResponse:
    async with grpc.aio.insecure_channel(runner.address) as channel:
        stub = embedder_pb2_grpc.EmbedderStub(channel)
        response: embedder_pb2.EmbedPhotoResponse = await stub.EmbedPhoto(
            embedder_pb2.EmbedPhotoRequest(image=photo), timeout=120
        )
        return response


async def test_each_detector_gives_the_face_of_a_12_mp_photo_in_its_pixels(service: ServiceRunner, samples_dir) -> None:
    sample = Image.open(samples_dir / "obama.jpg").convert("RGB")
    buffer = io.BytesIO()
    sample.resize((3230, 4032), Image.Resampling.BICUBIC).save(buffer, "JPEG", quality=90)

    large = await embed(service, buffer.getvalue())
    small = await embed(service, (samples_dir / "obama.jpg").read_bytes())

    assert (large.image_size.width, large.image_size.height) == (3230, 4032)
    (large_face,), (small_face,) = large.faces, small.faces
    assert abs(large_face.box.width / small_face.box.width - 3230 / 910) < 0.2
    distance = np.linalg.norm(np.asarray(large_face.embedding.values) - np.asarray(small_face.embedding.values))
    assert distance < 0.1


async def test_each_detector_finds_no_face_in_the_photo_of_dogs(service: ServiceRunner, shared_faces_dir) -> None:
    response = await embed(service, (shared_faces_dir / "dlib_faces" / "dogs.jpg").read_bytes())

    assert list(response.faces) == []
    assert (response.image_size.width, response.image_size.height) == (900, 916)
