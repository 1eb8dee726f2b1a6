"""The photo -> faces pipeline: decode, detect, align, measure, embed."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import dlib
import numpy as np
import pytest
from PIL import Image

from facerec_embedder.align import face_chip
from facerec_embedder.app import face_detector
from facerec_embedder.batching import MicroBatcher
from facerec_embedder.detection import FaceDetector
from facerec_embedder.errors import InvalidUpsample, UnsupportedImage
from facerec_embedder.images import decode_image
from facerec_embedder.pipeline import FacePipeline, ImageSize, PhotoFaces
from facerec_embedder.runtime import Chips, Embeddings, OnnxRuntimeEmbedder
from facerec_embedder.settings import EmbedderSettings

from .photos import encoded, sample, sample_image, shared_face_photo


class UnusedRuntime:
    """A runtime that must not be called: detection-only requests and photos without faces skip it."""

    def __init__(self) -> None:
        self.calls = 0

    async def embed(self, chips: Chips) -> Embeddings:
        self.calls += 1
        raise AssertionError("the embedding runtime was called")

    async def is_ready(self) -> bool:
        return True


@pytest.fixture(scope="module")
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="detect") as threads:
        yield threads


@pytest.fixture
def pipeline(detector: FaceDetector, onnx_embedder: OnnxRuntimeEmbedder, executor: ThreadPoolExecutor) -> FacePipeline:
    return FacePipeline(detector, MicroBatcher(onnx_embedder), executor)


@pytest.fixture(scope="module")
def service_detector() -> FaceDetector:
    """The service's default: YuNet on a copy bounded to 640 px."""
    return face_detector(EmbedderSettings())


@pytest.fixture(scope="module")
def phone_photo() -> bytes:
    """The obama sample (910x1137) upscaled to 3230x4032 (13 MP), a phone photo's height, as a JPEG."""
    return encoded(sample_image("obama.jpg").convert("RGB").resize((3230, 4032), Image.Resampling.BICUBIC), "JPEG")


def embedding_of(photo: PhotoFaces) -> np.ndarray:
    (face,) = photo.faces
    assert face.embedding is not None
    return face.embedding


async def test_every_face_gets_a_descriptor_and_faces_come_largest_first(pipeline: FacePipeline) -> None:
    photo = await pipeline.analyze(shared_face_photo("dlib_faces/bald_guys.jpg"))

    assert photo.image_size == ImageSize(width=1986, height=1545)
    assert len(photo.faces) >= 20
    areas = [face.box.area for face in photo.faces]
    assert areas == sorted(areas, reverse=True)
    for face in photo.faces:
        assert face.embedding is not None
        assert face.embedding.shape == (128,)
        assert face.chip.shape == (150, 150, 3)


async def test_same_person_in_two_photos_is_closer_than_the_threshold(pipeline: FacePipeline) -> None:
    obama, obama2, biden = await asyncio.gather(
        *(pipeline.analyze(sample(name)) for name in ("obama.jpg", "obama2.jpg", "biden.jpg"))
    )

    def descriptor(photo: PhotoFaces) -> np.ndarray:
        (face,) = photo.faces
        assert face.embedding is not None
        return face.embedding

    assert np.linalg.norm(descriptor(obama) - descriptor(obama2)) < 0.6
    assert np.linalg.norm(descriptor(obama) - descriptor(biden)) > 0.6


async def test_detect_only_measures_faces_without_calling_the_runtime(
    detector: FaceDetector, executor: ThreadPoolExecutor
) -> None:
    runtime = UnusedRuntime()
    pipeline = FacePipeline(detector, runtime, executor)

    photo = await pipeline.analyze(sample("obama.jpg"), detect_only=True)

    (face,) = photo.faces
    assert face.embedding is None
    assert face.detection_score > 0
    assert face.quality.frontality > 0.9
    assert runtime.calls == 0


async def test_photo_without_a_face_gives_an_empty_list(detector: FaceDetector, executor: ThreadPoolExecutor) -> None:
    runtime = UnusedRuntime()
    pipeline = FacePipeline(detector, runtime, executor)

    photo = await pipeline.analyze(shared_face_photo("dlib_faces/dogs.jpg"))

    assert photo.faces == []
    assert photo.image_size == ImageSize(width=900, height=916)
    assert runtime.calls == 0


async def test_image_size_and_boxes_refer_to_the_upright_photo(
    detector: FaceDetector, executor: ThreadPoolExecutor
) -> None:
    upright = sample_image("obama2.jpg")
    exif = Image.Exif()
    exif[0x0112] = 8  # stored turned a quarter right: "rotate 90 degrees counter-clockwise to display"
    stored = encoded(upright.transpose(Image.Transpose.ROTATE_270), "JPEG", quality=95, exif=exif.tobytes())
    pipeline = FacePipeline(detector, UnusedRuntime(), executor)

    photo = await pipeline.analyze(stored, upsample=0, detect_only=True)
    reference = await pipeline.analyze(encoded(upright, "PNG"), upsample=0, detect_only=True)

    assert photo.image_size == ImageSize(width=upright.width, height=upright.height)
    (face,), (expected,) = photo.faces, reference.faces
    assert abs(face.box.x - expected.box.x) <= 8
    assert abs(face.box.y - expected.box.y) <= 8


async def test_bad_image_is_refused(detector: FaceDetector, executor: ThreadPoolExecutor) -> None:
    pipeline = FacePipeline(detector, UnusedRuntime(), executor)

    with pytest.raises(UnsupportedImage):
        await pipeline.analyze(b"\x00" * 1000)


async def test_bad_upsampling_is_refused(detector: FaceDetector, executor: ThreadPoolExecutor) -> None:
    pipeline = FacePipeline(detector, UnusedRuntime(), executor)

    with pytest.raises(InvalidUpsample):
        await pipeline.analyze(sample("obama.jpg"), upsample=9)


async def test_event_loop_keeps_running_while_a_photo_is_analysed(
    detector: FaceDetector, executor: ThreadPoolExecutor
) -> None:
    pipeline = FacePipeline(detector, UnusedRuntime(), executor)
    gaps: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        last = time.monotonic()
        while not done.is_set():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticker = asyncio.ensure_future(tick())
    started = time.monotonic()
    await pipeline.analyze(sample("obama3.jpg"), upsample=1, detect_only=True)  # about 1 s of detection
    elapsed = time.monotonic() - started
    done.set()
    await ticker

    assert elapsed > 0.3
    assert max(gaps) < elapsed / 3


async def test_a_12_mp_photo_gives_its_face_in_its_own_pixels_with_the_descriptor_of_the_small_photo(
    service_detector: FaceDetector, onnx_embedder: OnnxRuntimeEmbedder, executor: ThreadPoolExecutor, phone_photo: bytes
) -> None:
    pipeline = FacePipeline(service_detector, MicroBatcher(onnx_embedder), executor)

    large, small = await pipeline.analyze(phone_photo), await pipeline.analyze(sample("obama.jpg"))

    assert large.image_size == ImageSize(width=3230, height=4032)
    (large_face,), (small_face,) = large.faces, small.faces
    scale = np.array([3230 / 910, 4032 / 1137])
    assert abs(large_face.box.x - small_face.box.x * scale[0]) < 0.05 * large_face.box.width
    assert abs(large_face.box.y - small_face.box.y * scale[1]) < 0.05 * large_face.box.height
    np.testing.assert_allclose(large_face.landmarks.points, small_face.landmarks.points * scale, atol=0.01 * 4032)
    assert np.linalg.norm(embedding_of(large) - embedding_of(small)) < 0.1


async def test_the_chip_comes_from_the_full_resolution_photo_exactly_as_dlib_cuts_it(
    service_detector: FaceDetector, executor: ThreadPoolExecutor, phone_photo: bytes
) -> None:
    pipeline = FacePipeline(service_detector, UnusedRuntime(), executor)

    (face,) = (await pipeline.analyze(phone_photo, detect_only=True)).faces

    full = decode_image(phone_photo)
    parts = [dlib.point(round(x), round(y)) for x, y in face.landmarks.points]
    box = dlib.rectangle(face.box.x, face.box.y, face.box.x + face.box.width - 1, face.box.y + face.box.height - 1)
    expected = dlib.get_face_chip(full, dlib.full_object_detection(box, parts), size=150, padding=0.25)
    np.testing.assert_array_equal(face.chip, expected)
    np.testing.assert_array_equal(face.chip, face_chip(full, np.round(face.landmarks.points)))


async def test_with_yunet_the_same_person_is_closer_than_the_threshold_and_another_is_not(
    service_detector: FaceDetector, onnx_embedder: OnnxRuntimeEmbedder, executor: ThreadPoolExecutor
) -> None:
    pipeline = FacePipeline(service_detector, MicroBatcher(onnx_embedder), executor)

    obama, obama2, biden = await asyncio.gather(
        *(pipeline.analyze(sample(name)) for name in ("obama.jpg", "obama2.jpg", "biden.jpg"))
    )

    assert np.linalg.norm(embedding_of(obama) - embedding_of(obama2)) < 0.6
    assert np.linalg.norm(embedding_of(obama) - embedding_of(biden)) > 0.6


async def test_yunet_and_hog_give_nearly_the_same_descriptor_of_a_face(
    service_detector: FaceDetector,
    detector: FaceDetector,
    onnx_embedder: OnnxRuntimeEmbedder,
    executor: ThreadPoolExecutor,
) -> None:
    runtime = MicroBatcher(onnx_embedder)
    yunet, hog = FacePipeline(service_detector, runtime, executor), FacePipeline(detector, runtime, executor)

    for name in ("obama.jpg", "biden.jpg"):
        with_yunet, with_hog = await yunet.analyze(sample(name)), await hog.analyze(sample(name))
        distance = np.linalg.norm(embedding_of(with_yunet) - embedding_of(with_hog))
        assert distance < 0.1  # same-person pairs are 0.3-0.45 apart on average, the threshold 0.6


async def test_a_photo_without_a_face_gives_its_full_size_from_a_reduced_decode(
    service_detector: FaceDetector, executor: ThreadPoolExecutor
) -> None:
    dogs = Image.open(io.BytesIO(shared_face_photo("dlib_faces/dogs.jpg"))).convert("RGB")
    large = encoded(dogs.resize((dogs.width * 4, dogs.height * 4), Image.Resampling.BICUBIC), "JPEG")
    pipeline = FacePipeline(service_detector, UnusedRuntime(), executor)

    photo = await pipeline.analyze(large)

    assert photo.faces == []
    assert photo.image_size == ImageSize(width=3600, height=3664)


async def test_an_exif_rotated_12_mp_photo_keeps_its_upright_size_and_face(
    service_detector: FaceDetector, executor: ThreadPoolExecutor
) -> None:
    upright = sample_image("obama.jpg").convert("RGB").resize((3230, 4032), Image.Resampling.BICUBIC)
    exif = Image.Exif()
    exif[0x0112] = 8
    stored = encoded(upright.transpose(Image.Transpose.ROTATE_270), "JPEG", exif=exif.tobytes())
    pipeline = FacePipeline(service_detector, UnusedRuntime(), executor)

    photo = await pipeline.analyze(stored, detect_only=True)

    assert photo.image_size == ImageSize(width=3230, height=4032)
    (face,) = photo.faces
    assert 1000 < face.box.x + face.box.width / 2 < 2000  # the face is in the middle of the upright photo
