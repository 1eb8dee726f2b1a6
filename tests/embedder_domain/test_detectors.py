"""The detector seam's two implementations on real photos: YuNet (the service's default) and dlib's HOG, each
searching a copy of the photo bounded to the service's default size (640 px)."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image
from yuface.yuface import detect as yuface_detect

from facerec_embedder.detection import FaceDetector
from facerec_embedder.detectors import BoxDetector, HogDetector, ScoredBox, YuNetDetector
from facerec_embedder.images import decode_image

from .photos import rgb_array, sample, sample_image, shared_face_photo

SAMPLE_PHOTOS = ["obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "32bit.png"]
MAX_SIDE = 640
PHONE_PHOTO = (4032, 3024)


@pytest.fixture(scope="module")
def yunet() -> YuNetDetector:
    return YuNetDetector()


@pytest.fixture(scope="module")
def detectors(yunet: YuNetDetector) -> dict[str, FaceDetector]:
    """Both detectors as the service builds them: bounded copy, default threshold and upsampling."""
    return {
        "yunet": FaceDetector(boxes=yunet, max_side=MAX_SIDE),
        "hog": FaceDetector(boxes=HogDetector(), max_side=MAX_SIDE),
    }


def face_on_canvas(face_px: int, canvas: tuple[int, int]) -> np.ndarray:
    """The obama sample scaled so that its face (HOG box: 269 px wide) is ``face_px`` wide, on a plain canvas."""
    photo = sample_image("obama.jpg").convert("RGB")
    scale = face_px / 269
    scaled = photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.Resampling.LANCZOS)
    background = Image.new("RGB", canvas, (120, 110, 100))
    background.paste(scaled, ((canvas[0] - scaled.width) // 2, (canvas[1] - scaled.height) // 2))
    return rgb_array(background)


def tight_crop(side: int) -> np.ndarray:
    """The obama sample's face filling a ``side`` x ``side`` photo (the face is 90 % of its width)."""
    photo = sample_image("obama.jpg").convert("RGB")
    crop = photo.crop((349 - 13, 142 - 13, 349 + 269 + 13, 142 + 269 + 13))
    return rgb_array(crop.resize((side, side), Image.Resampling.BICUBIC))


def boxes_of(found: list[ScoredBox]) -> list[tuple[int, int, int, int, float]]:
    return [(f.box.x, f.box.y, f.box.width, f.box.height, f.score) for f in found]


def test_both_detectors_satisfy_the_seam(yunet: YuNetDetector) -> None:
    seam: list[BoxDetector] = [yunet, HogDetector()]

    assert [(d.name, d.default_upsample) for d in seam] == [("yunet", 0), ("hog", 1)]


@pytest.mark.parametrize("name", ["yunet", "hog"])
@pytest.mark.parametrize("photo", SAMPLE_PHOTOS)
def test_each_detector_finds_the_one_face_of_each_sample_photo(
    detectors: dict[str, FaceDetector], name: str, photo: str
) -> None:
    faces = detectors[name].detect(decode_image(sample(photo)))

    assert len(faces) == 1
    assert faces[0].box.width > 200


@pytest.mark.parametrize("name", ["yunet", "hog"])
def test_each_detector_finds_no_face_in_the_photo_of_dogs(detectors: dict[str, FaceDetector], name: str) -> None:
    assert detectors[name].detect(decode_image(shared_face_photo("dlib_faces/dogs.jpg"))) == []


def test_at_the_librarys_default_threshold_yunet_takes_dogs_for_faces() -> None:
    dogs = decode_image(shared_face_photo("dlib_faces/dogs.jpg"))

    faces = FaceDetector(boxes=YuNetDetector(score_threshold=0.5), max_side=MAX_SIDE).detect(dogs)

    assert faces  # hence the default of 0.9
    assert all(0.5 <= face.score < 0.9 for face in faces)


@pytest.mark.parametrize("name", ["yunet", "hog"])
def test_each_detector_finds_most_faces_of_the_group_photo(detectors: dict[str, FaceDetector], name: str) -> None:
    faces = detectors[name].detect(decode_image(shared_face_photo("dlib_faces/bald_guys.jpg")))

    assert len(faces) >= 20  # about 25 faces, some half hidden


def test_yunet_scores_are_fractions_at_or_above_its_threshold(detectors: dict[str, FaceDetector]) -> None:
    faces = detectors["yunet"].detect(decode_image(shared_face_photo("dlib_faces/bald_guys.jpg")))

    assert all(0.9 <= face.score <= 1.0 for face in faces)


def test_yunet_called_through_ctypes_answers_as_yufaces_own_function(yunet: YuNetDetector) -> None:
    image = decode_image(shared_face_photo("dlib_faces/bald_guys.jpg"))

    rows = yunet.raw_detections(image)

    assert len(rows) >= 20
    np.testing.assert_array_equal(rows, yuface_detect(np.ascontiguousarray(image[:, :, ::-1]))[:, :15])


def test_yunet_box_is_mapped_to_the_square_hog_gives_the_same_face() -> None:
    image = decode_image(sample("obama.jpg"))  # HOG's box: (349, 142) 269 x 268

    (yunet_face,) = FaceDetector(boxes=YuNetDetector()).detect(image)
    (hog_face,) = FaceDetector(boxes=HogDetector()).detect(image)

    assert abs(yunet_face.box.x - hog_face.box.x) <= 10 and abs(yunet_face.box.y - hog_face.box.y) <= 10
    assert abs(yunet_face.box.width - hog_face.box.width) <= 10
    # dlib's landmark model, trained on HOG boxes, then places the same five points.
    assert np.abs(yunet_face.landmarks.points - hog_face.landmarks.points).max() <= 2


def test_yunet_from_many_threads_gives_the_same_boxes_as_one_thread(yunet: YuNetDetector) -> None:
    images = [decode_image(sample(name)) for name in ("obama.jpg", "biden.jpg", "obama2.jpg")]
    expected = [boxes_of(yunet.find(image, 0)) for image in images]

    with ThreadPoolExecutor(max_workers=3) as threads:
        found = list(threads.map(lambda i: boxes_of(yunet.find(images[i % 3], 0)), range(12)))

    assert found == [expected[i % 3] for i in range(12)]


async def test_yunet_lets_the_event_loop_run_while_it_detects(yunet: YuNetDetector) -> None:
    image = decode_image(shared_face_photo("dlib_faces/bald_guys.jpg"))[:747, :960].copy()
    gaps: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        last = time.monotonic()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    calls = 4
    ticker = asyncio.ensure_future(tick())
    started = time.monotonic()
    for _ in range(calls):
        await asyncio.to_thread(yunet.find, image, 0)
    elapsed = time.monotonic() - started
    done.set()
    await ticker

    # Holding the GIL through a detection would stall the loop for a whole call (elapsed / calls).
    assert max(gaps) < elapsed / calls / 2


def test_with_a_larger_bound_a_face_filling_the_photo_is_found_although_yunet_misses_faces_that_large() -> None:
    photo = tight_crop(960)  # a 860 px face

    assert not (YuNetDetector().raw_detections(photo)[:, 0] >= 90).any()  # YuNet alone, at the photo's size
    faces = FaceDetector(boxes=YuNetDetector(), max_side=960).detect(photo)

    assert len(faces) == 1
    assert faces[0].box.width > 700


def test_upsampling_makes_yunet_find_a_face_too_small_for_it() -> None:
    detector = FaceDetector(boxes=YuNetDetector(), max_side=MAX_SIDE)
    photo = sample_image("obama.jpg").convert("RGB")
    tiny = rgb_array(photo.resize((photo.width * 12 // 269, photo.height * 12 // 269), Image.Resampling.LANCZOS))

    assert detector.detect(tiny) == []
    (face,) = detector.detect(tiny, upsample=1)
    assert 8 <= face.box.width <= 18  # in pixels of the photo itself


@pytest.mark.parametrize(
    ("name", "canvas", "found_px", "missed_px"),
    [
        ("yunet", PHONE_PHOTO, 128, 112),
        ("yunet", (1280, 960), 40, 32),
        ("yunet", (640, 480), 20, 16),
        ("hog", PHONE_PHOTO, 200, 160),
        ("hog", (1280, 960), 56, 48),
        ("hog", (640, 480), 28, 24),
    ],
)
def test_smallest_face_found_in_pixels_of_the_original_photo(
    detectors: dict[str, FaceDetector], name: str, canvas: tuple[int, int], found_px: int, missed_px: int | None
) -> None:
    """The README's table: the smallest face found grows with the photo's longest side over the 640 px bound."""
    assert len(detectors[name].detect(face_on_canvas(found_px, canvas))) == 1
    if missed_px is not None:
        assert detectors[name].detect(face_on_canvas(missed_px, canvas)) == []
