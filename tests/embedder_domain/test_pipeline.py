"""The photo -> faces pipeline: decode, detect, align, measure, embed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from facerec_embedder.batching import MicroBatcher
from facerec_embedder.detection import FaceDetector
from facerec_embedder.errors import InvalidUpsample, UnsupportedImage
from facerec_embedder.pipeline import FacePipeline, ImageSize, PhotoFaces
from facerec_embedder.runtime import Chips, Embeddings, OnnxRuntimeEmbedder

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
