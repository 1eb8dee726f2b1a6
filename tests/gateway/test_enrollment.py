"""Which face of an enrollment photo is enrolled, and why a photo is rejected; the enrollment of one person
over fakes of the embedder and the registry."""

from __future__ import annotations

import pytest

from facerec.runtime.deadlines import Deadline
from facerec.v1 import facerec_pb2  # the domain's reasons are the contract's values: compared with them
from facerec_gateway.domain import Box, Face, FaceQuality, RejectionReason
from facerec_gateway.enrollment import (
    EnrollRequest,
    FaceSelection,
    Photo,
    QualityPolicy,
    choose_face,
    face_id,
)
from facerec_gateway.errors import EnrollmentRejected, InvalidRequest
from facerec_gateway.recognition import FaceRecognition
from tests.gateway.fakes import TENANT, FakeEmbedder, FakeRegistry, face, recognition, vector

POLICY = QualityPolicy(min_face_size_px=20, min_sharpness=0.6, min_frontality=0.3)
SINGLE = FaceSelection.UNSPECIFIED
LARGEST = FaceSelection.LARGEST


def _face(size: float = 120, sharpness: float = 2.5, frontality: float = 0.9, x: int = 0) -> Face:
    quality = FaceQuality(face_size_px=size, interocular_px=size / 2, sharpness=sharpness, frontality=frontality)
    return Face(Box(x, 0, int(size), int(size)), None, 0.9, quality, None, 0)


def _reasons(faces: list[Face], selection: FaceSelection = SINGLE) -> list[int]:
    return [r.reason for r in choose_face(faces, POLICY, selection).rejections]


def test_photo_with_one_good_face_enrolls_it() -> None:
    face = _face()
    choice = choose_face([face], POLICY, SINGLE)
    assert choice.face == face and choice.rejections == []


def test_photo_without_a_face_is_rejected_as_no_face() -> None:
    assert _reasons([]) == [facerec_pb2.NO_FACE]


def test_photo_with_two_good_faces_is_rejected_unless_the_largest_is_asked_for() -> None:
    big, small = _face(200), _face(100, x=300)
    assert _reasons([big, small]) == [facerec_pb2.MULTIPLE_FACES]
    assert choose_face([big, small], POLICY, LARGEST).face == big


def test_small_blurry_and_turned_faces_are_rejected_with_each_reason() -> None:
    assert _reasons([_face(size=16)]) == [facerec_pb2.FACE_TOO_SMALL]
    assert _reasons([_face(sharpness=0.3)]) == [facerec_pb2.FACE_TOO_BLURRY]
    assert _reasons([_face(frontality=0.2)]) == [facerec_pb2.FACE_NOT_FRONTAL]
    assert _reasons([_face(size=16, sharpness=0.3)]) == [facerec_pb2.FACE_TOO_SMALL, facerec_pb2.FACE_TOO_BLURRY]


def test_each_rejection_names_its_measure_the_value_and_the_minimum() -> None:
    rejections = choose_face([_face(size=17.4, sharpness=0.31, frontality=0.25)], POLICY, SINGLE).rejections

    assert [r.message.split(",")[0] for r in rejections] == [
        "face size is 17.4 px",
        "face sharpness is 0.31",
        "face frontality is 0.25",
    ]
    assert "the minimum is 20 px" in rejections[0].message
    assert "the minimum is 0.60" in rejections[1].message
    assert "the minimum is 0.30" in rejections[2].message


def test_measures_at_the_minimums_are_accepted() -> None:
    assert _reasons([_face(size=20, sharpness=0.6, frontality=0.3)]) == []


def test_a_tiny_background_face_does_not_make_a_photo_multi_face() -> None:
    main, background = _face(150), _face(12, x=400)
    assert choose_face([main, background], POLICY, SINGLE).face == main


def test_face_ids_are_deterministic_and_distinguish_person_photo_and_face() -> None:
    face = _face()
    first = face_id("c", "ann", b"photo-bytes", face)
    assert first == face_id("c", "ann", b"photo-bytes", face)
    assert first != face_id("c", "bob", b"photo-bytes", face)
    assert first != face_id("c", "ann", b"other-photo", face)
    assert first != face_id("c", "ann", b"photo-bytes", _face(x=10))


# ------------------------------------------------------------------------------------------ one person


@pytest.fixture
def embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def registry() -> FakeRegistry:
    registry = FakeRegistry()
    registry.add_collection("acme__staff")
    return registry


@pytest.fixture
def service(embedder: FakeEmbedder, registry: FakeRegistry) -> FaceRecognition:
    return recognition(embedder, registry)


def deadline() -> Deadline:
    return Deadline.after(5.0)


async def test_a_person_is_enrolled_from_every_good_photo_in_one_write(
    service: FaceRecognition, embedder: FakeEmbedder, registry: FakeRegistry
) -> None:
    photos = (
        Photo(embedder.shows(b"a1", face(vector(1, 0, 0, 0))), "a1.jpg"),
        Photo(embedder.shows(b"a2", face(vector(1, 0.1, 0, 0)))),
    )
    request = EnrollRequest("staff", "ann", photos, display_name="Ann")

    enrolled = await service.enroller.enroll(TENANT, request, deadline())

    assert enrolled.faces_enrolled == 2 and all(p.enrolled for p in enrolled.photos)
    assert enrolled.person.display_name == "Ann" and enrolled.person.face_count == 2
    assert enrolled.person.collection == "staff"
    assert registry.calls == ["GetCollection(settings)", "UpsertFaces", "UpdatePerson"]
    assert registry.stored["acme__staff"].faces[enrolled.photos[0].face_id].metadata["photo"] == "a1.jpg"


async def test_one_rejected_photo_refuses_the_whole_enrollment_naming_each_reason(
    service: FaceRecognition, embedder: FakeEmbedder, registry: FakeRegistry
) -> None:
    photos = (
        Photo(embedder.shows(b"good", face(vector(1, 0, 0, 0))), "good.jpg"),
        Photo(embedder.shows(b"none"), "empty.jpg"),
        Photo(b"not an image", "broken.jpg"),
    )

    with pytest.raises(EnrollmentRejected) as refused:
        await service.enroller.enroll(TENANT, EnrollRequest("staff", "ann", photos), deadline())

    assert [p.photo_name for p in refused.value.photos] == ["empty.jpg", "broken.jpg"]
    assert [r.reason for p in refused.value.photos for r in p.rejections] == [
        RejectionReason.NO_FACE,
        RejectionReason.INVALID_IMAGE,
    ]
    assert "empty.jpg: no face was found" in refused.value.message and "broken.jpg" in refused.value.message
    assert "UpsertFaces" not in registry.calls and registry.stored["acme__staff"].faces == {}


async def test_copies_of_one_photo_are_stored_once(
    service: FaceRecognition, embedder: FakeEmbedder, registry: FakeRegistry
) -> None:
    image = embedder.shows(b"same", face(vector(1, 0, 0, 0)))

    enrolled = await service.enroller.enroll(
        TENANT, EnrollRequest("staff", "ann", (Photo(image), Photo(image))), deadline()
    )

    assert enrolled.faces_enrolled == 1 and enrolled.photos[0].face_id == enrolled.photos[1].face_id
    assert len(registry.stored["acme__staff"].faces) == 1


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (EnrollRequest("staff", "", (Photo(b"x"),)), "person_id is required"),
        (EnrollRequest("staff", "ann", ()), "at least one photo"),
        (EnrollRequest("staff", "ann", (Photo(b"x"),) * 65), "the maximum is 64"),
    ],
)
async def test_bad_enrollments_are_refused_before_any_work(
    service: FaceRecognition, registry: FakeRegistry, request_: EnrollRequest, message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        await service.enroller.enroll(TENANT, request_, deadline())
    assert registry.calls == []


async def test_photos_the_embedder_refuses_as_overloaded_wait_their_turn_within_the_deadline(
    service: FaceRecognition, embedder: FakeEmbedder, registry: FakeRegistry
) -> None:
    images = [embedder.shows(f"p{i}".encode(), face(vector(1, i / 100, 0, 0))) for i in range(12)]
    for image in images:
        embedder.delay_s[image] = 0.02
    embedder.in_flight_limit = 2  # the 12 photos go at once; the embedder admits 2 and advises a delay
    request = EnrollRequest("staff", "ann", tuple(Photo(image) for image in images))

    enrolled = await service.enroller.enroll(TENANT, request, deadline())

    assert embedder.refused > 0
    assert enrolled.faces_enrolled == 12 and all(p.enrolled for p in enrolled.photos)


async def test_a_photo_over_a_limit_is_rejected_at_once_not_retried(
    service: FaceRecognition, embedder: FakeEmbedder
) -> None:
    good = embedder.shows(b"good", face(vector(1, 0, 0, 0)))
    embedder.too_large.add(b"huge")
    request = EnrollRequest("staff", "ann", (Photo(good), Photo(b"huge")))

    enrolled = await service.enroller.enroll(TENANT, request, deadline(), atomic=False)

    assert [p.enrolled for p in enrolled.photos] == [True, False]
    assert enrolled.photos[1].rejections[0].reason is RejectionReason.IMAGE_TOO_LARGE
    assert embedder.calls == 2
