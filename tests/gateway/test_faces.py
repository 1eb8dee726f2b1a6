"""The faces of a person (ListFaces) and corrections of one face (DeleteFace, MoveFace), over fakes of the embedder
and the registry; and what enrollment stores beside each face so that a listing can show it."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from facerec.api_keys import hash_key, key_fingerprint
from facerec.runtime import errors
from facerec.runtime.deadlines import Deadline
from facerec.v1 import facerec_pb2
from facerec_gateway import face_metadata
from facerec_gateway.auth import ApiKeys, Tenant
from facerec_gateway.collections import Collections
from facerec_gateway.decisions import DEFAULT_TARGET_FPIR
from facerec_gateway.domain import Box, FaceQuality
from facerec_gateway.enrollment import EnrollRequest, Photo
from facerec_gateway.errors import CollectionNotAllowed, InvalidRequest
from facerec_gateway.identification import IdentifyRequest
from facerec_gateway.recognition import FaceRecognition
from facerec_gateway.servicer import FaceRecognitionServicer
from tests.gateway.fakes import TENANT, FakeEmbedder, FakeRegistry, face, recognition, vector

QUALITY = FaceQuality(face_size_px=118.37, interocular_px=51.2, sharpness=2.713, frontality=0.8125)


def deadline() -> Deadline:
    return Deadline.after(5.0)


@pytest.fixture
def embedder() -> FakeEmbedder:
    embedder = FakeEmbedder()
    embedder.shows(b"ann-1", face(vector(1, 0, 0, 0), x=10, quality=QUALITY))
    embedder.shows(b"ann-2", face(vector(1, 0.1, 0, 0), x=20))
    embedder.shows(b"bob-in-anns-album", face(vector(0, 1, 0, 0), x=30))
    embedder.shows(b"bob-1", face(vector(0, 1, 0.1, 0), x=40))
    return embedder


@pytest.fixture
def registry() -> FakeRegistry:
    registry = FakeRegistry()
    registry.add_collection("acme__staff", threshold=0.5)
    return registry


@pytest.fixture
def service(embedder: FakeEmbedder, registry: FakeRegistry) -> FaceRecognition:
    return recognition(embedder, registry)


async def enroll(service: FaceRecognition, person_id: str, *photos: tuple[bytes, str]) -> list[str]:
    request = EnrollRequest("staff", person_id, tuple(Photo(image, name) for image, name in photos))
    enrolled = await service.enroller.enroll(TENANT, request, deadline())
    return [p.face_id for p in enrolled.photos]


@pytest.fixture
async def ann(service: FaceRecognition) -> list[str]:
    """Ann's faces: her two photos and one of Bob enrolled under her name by mistake."""
    return await enroll(
        service, "ann", (b"ann-1", "ann-1.jpg"), (b"ann-2", ""), (b"bob-in-anns-album", "album/bob.jpg")
    )


# ------------------------------------------------------------------------------------------ what enrollment stores


def test_the_stored_measures_read_back_exactly_and_missing_ones_read_as_none() -> None:
    stored = face_metadata.face_metadata("ann-1.jpg", face(vector(1, 0, 0, 0), x=-4, quality=QUALITY))

    assert set(stored) == set(face_metadata.KEYS)
    assert stored[face_metadata.BOX] == "-4,0,120,120"
    assert face_metadata.quality(stored) == QUALITY
    assert face_metadata.box(stored) == Box(-4, 0, 120, 120)
    assert face_metadata.photo_name(stored) == "ann-1.jpg"
    assert face_metadata.quality({face_metadata.SHARPNESS: "2.5"}) is None
    assert face_metadata.box({face_metadata.BOX: "1,2,3"}) is None
    assert face_metadata.box({}) is None and face_metadata.photo_name({}) == ""


def test_a_float32_measure_survives_the_text_form() -> None:
    measured = float(np.float32(0.1234567))
    stored = face_metadata.face_metadata(
        "", face(vector(1, 0, 0, 0), quality=dataclasses.replace(QUALITY, sharpness=measured))
    )

    assert face_metadata.PHOTO not in stored
    parsed = face_metadata.quality(stored)
    assert parsed is not None and np.float32(parsed.sharpness) == np.float32(measured)


# ------------------------------------------------------------------------------------------ ListFaces


async def test_a_persons_faces_are_listed_with_photo_time_quality_and_box(
    service: FaceRecognition, ann: list[str], registry: FakeRegistry
) -> None:
    await enroll(service, "bob", (b"bob-1", "bob-1.jpg"))

    page = await service.faces.list_page(TENANT, "staff", "ann", 0, "", deadline())

    assert [f.face_id for f in page.faces] == sorted(ann) and page.next_page_token == ""
    by_id = {f.face_id: f for f in page.faces}
    first = by_id[ann[0]]
    assert (first.person_id, first.photo_name, first.quality, first.box) == (
        "ann",
        "ann-1.jpg",
        QUALITY,
        Box(10, 0, 120, 120),
    )
    assert by_id[ann[1]].photo_name == "" and by_id[ann[2]].photo_name == "album/bob.jpg"
    assert all(f.enrolled_at is not None and f.enrolled_at <= datetime.now(UTC) for f in page.faces)
    assert registry.calls[-1] == "ListFaces"


async def test_faces_enrolled_before_the_measures_were_stored_have_none(
    service: FaceRecognition, registry: FakeRegistry
) -> None:
    registry.add_face("acme__staff", "old", vector(1, 0, 0, 0), face_id="old-1")

    (listed,) = (await service.faces.list_page(TENANT, "staff", "old", 0, "", deadline())).faces

    assert (listed.photo_name, listed.quality, listed.box) == ("", None, None)


async def test_faces_are_paged_as_the_registry_pages_them(service: FaceRecognition, ann: list[str]) -> None:
    first = await service.faces.list_page(TENANT, "staff", "ann", 2, "", deadline())
    second = await service.faces.list_page(TENANT, "staff", "ann", 2, first.next_page_token, deadline())

    assert len(first.faces) == 2 and first.next_page_token
    assert [f.face_id for f in first.faces + second.faces] == sorted(ann) and second.next_page_token == ""


async def test_a_person_without_faces_is_not_found(service: FaceRecognition, ann: list[str]) -> None:
    with pytest.raises(errors.NotFound, match="person 'carol' has no face in collection 'staff'"):
        await service.faces.list_page(TENANT, "staff", "carol", 0, "", deadline())


@pytest.mark.parametrize("person_id", ["", "x" * 129, "tab\there"])
async def test_the_person_is_required_and_checked(service: FaceRecognition, person_id: str) -> None:
    with pytest.raises(InvalidRequest):
        await service.faces.list_page(TENANT, "staff", person_id, 0, "", deadline())


async def test_an_absent_collection_is_not_found_and_is_not_created(
    service: FaceRecognition, registry: FakeRegistry
) -> None:
    with pytest.raises(errors.NotFound):
        await service.faces.list_page(TENANT, "", "ann", 0, "", deadline())
    assert "acme__default" not in registry.stored


async def test_faces_of_a_collection_the_key_may_not_use_are_refused(service: FaceRecognition, ann: list[str]) -> None:
    visitor = Tenant("acme", frozenset({"visitors"}))
    with pytest.raises(CollectionNotAllowed):
        await service.faces.list_page(visitor, "staff", "ann", 0, "", deadline())
    with pytest.raises(CollectionNotAllowed):
        await service.faces.delete(visitor, "staff", ann[0], deadline())
    with pytest.raises(CollectionNotAllowed):
        await service.faces.move(visitor, "staff", ann[0], "bob", deadline())


async def test_another_tenants_faces_are_out_of_reach(service: FaceRecognition, ann: list[str]) -> None:
    other = Tenant("globex", frozenset({"*"}))
    with pytest.raises(errors.NotFound):
        await service.faces.list_page(other, "staff", "ann", 0, "", deadline())
    with pytest.raises(errors.NotFound):
        await service.faces.delete(other, "staff", ann[0], deadline())


# ------------------------------------------------------------------------------------------ DeleteFace


async def test_deleting_one_face_keeps_the_persons_other_faces(
    service: FaceRecognition, ann: list[str], registry: FakeRegistry
) -> None:
    deleted = await service.faces.delete(TENANT, "staff", ann[2], deadline())

    assert (deleted.person_id, deleted.faces_left) == ("ann", 2)
    listed = await service.faces.list_page(TENANT, "staff", "ann", 0, "", deadline())
    assert sorted(f.face_id for f in listed.faces) == sorted(ann[:2])


async def test_deleting_a_persons_last_face_leaves_none(service: FaceRecognition, registry: FakeRegistry) -> None:
    (only,) = await enroll(service, "bob", (b"bob-1", "bob-1.jpg"))

    deleted = await service.faces.delete(TENANT, "staff", only, deadline())

    assert (deleted.person_id, deleted.faces_left) == ("bob", 0)
    with pytest.raises(errors.NotFound):
        await service.people.get(TENANT, "staff", "bob", deadline())


async def test_deleting_an_absent_face_is_not_found_and_an_empty_id_is_invalid(
    service: FaceRecognition, ann: list[str]
) -> None:
    with pytest.raises(errors.NotFound, match="no face 'nope' in collection 'staff'"):
        await service.faces.delete(TENANT, "staff", "nope", deadline())
    with pytest.raises(InvalidRequest, match="face_id is required"):
        await service.faces.delete(TENANT, "staff", "", deadline())
    await service.faces.delete(TENANT, "staff", ann[0], deadline())
    with pytest.raises(errors.NotFound):
        await service.faces.delete(TENANT, "staff", ann[0], deadline())


# ------------------------------------------------------------------------------------------ MoveFace


async def test_a_moved_face_is_identified_as_its_new_person(
    service: FaceRecognition, ann: list[str], registry: FakeRegistry
) -> None:
    await enroll(service, "bob", (b"bob-1", "bob-1.jpg"))
    before = await service.identifier.identify(TENANT, IdentifyRequest("staff", b"bob-in-anns-album"), deadline())
    assert before.faces[0].match is not None and before.faces[0].match.person_id == "ann"

    moved = await service.faces.move(TENANT, "staff", ann[2], "bob", deadline())

    assert moved.from_person_id == "ann"
    assert (moved.face.face_id, moved.face.person_id, moved.face.photo_name) == (ann[2], "bob", "album/bob.jpg")
    assert moved.face.box == Box(30, 0, 120, 120) and moved.face.quality is not None
    after = await service.identifier.identify(TENANT, IdentifyRequest("staff", b"bob-in-anns-album"), deadline())
    assert after.faces[0].match is not None and after.faces[0].match.person_id == "bob"
    assert (await service.people.get(TENANT, "staff", "ann", deadline())).face_count == 2
    assert (await service.people.get(TENANT, "staff", "bob", deadline())).face_count == 2


async def test_a_face_can_be_moved_to_a_new_person_or_to_its_own(service: FaceRecognition, ann: list[str]) -> None:
    moved = await service.faces.move(TENANT, "staff", ann[2], "bob", deadline())
    assert moved.face.person_id == "bob"
    assert (await service.people.get(TENANT, "staff", "bob", deadline())).face_ids == (ann[2],)

    unchanged = await service.faces.move(TENANT, "staff", ann[0], "ann", deadline())
    assert (unchanged.from_person_id, unchanged.face.person_id) == ("ann", "ann")
    assert (await service.people.get(TENANT, "staff", "ann", deadline())).face_count == 2


@pytest.mark.parametrize("to_person_id", ["", "x" * 129, "new\nline"])
async def test_the_new_person_id_follows_the_person_id_rule(
    service: FaceRecognition, ann: list[str], registry: FakeRegistry, to_person_id: str
) -> None:
    with pytest.raises(InvalidRequest):
        await service.faces.move(TENANT, "staff", ann[0], to_person_id, deadline())
    assert "MoveFace" not in registry.calls


async def test_moving_an_absent_face_is_not_found(service: FaceRecognition, ann: list[str]) -> None:
    with pytest.raises(errors.NotFound, match="no face 'nope' in collection 'staff'"):
        await service.faces.move(TENANT, "staff", "nope", "bob", deadline())


async def test_corrections_tell_the_collection_cache_that_the_counts_changed(
    embedder: FakeEmbedder, registry: FakeRegistry
) -> None:
    registry.add_collection("acme__sized", threshold=0.6, target_fpir=DEFAULT_TARGET_FPIR)
    service = recognition(embedder, registry)
    collections: Collections = service.collections
    ids = [
        (await service.enroller.enroll(TENANT, EnrollRequest("sized", p, (Photo(image),)), deadline()))
        .photos[0]
        .face_id
        for p, image in (("ann", b"ann-1"), ("bob", b"bob-1"))
    ]
    for correction in (
        service.faces.move(TENANT, "sized", ids[0], "bob", deadline()),
        service.faces.delete(TENANT, "sized", ids[1], deadline()),
    ):
        await service.collections.get(TENANT, "sized", deadline())  # cached with its counts
        assert collections.cache.last_known("acme__sized").size is not None  # type: ignore[union-attr]
        await correction
        assert collections.cache.last_known("acme__sized").size is None  # type: ignore[union-attr]


# ------------------------------------------------------------------------------------------ through the servicer


class _Context:
    """What the servicer reads of a call: its metadata and deadline."""

    def __init__(self, key: str) -> None:
        self._metadata = (("authorization", f"Bearer {key}"),)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def time_remaining(self) -> float:
        return 5.0


async def test_the_public_messages_leave_quality_and_box_unset_when_not_stored(
    service: FaceRecognition, ann: list[str], registry: FakeRegistry
) -> None:
    registry.add_face("acme__staff", "ann", vector(1, 0, 0, 0.05), face_id="zz-old")
    keys = ApiKeys.from_document({"keys": [{"sha256": hash_key("k"), "tenant": "acme", "collections": ["*"]}]})
    servicer = FaceRecognitionServicer(service, keys, default_timeout_s=5.0)
    context: Any = _Context("k")

    response = await servicer.ListFaces(facerec_pb2.ListFacesRequest(collection="staff", person_id="ann"), context)

    old = response.faces[-1]
    assert old.face_id == "zz-old" and not old.HasField("quality") and not old.HasField("box")
    new = next(f for f in response.faces if f.face_id == ann[0])
    assert new.photo_name == "ann-1.jpg" and new.HasField("enrolled_at")
    assert new.quality.face_size_px == pytest.approx(QUALITY.face_size_px) and new.box.x == 10
    moved = await servicer.MoveFace(
        facerec_pb2.MoveFaceRequest(collection="staff", face_id=ann[2], to_person_id="bob"), context
    )
    assert (moved.from_person_id, moved.face.person_id) == ("ann", "bob")
    deleted = await servicer.DeleteFace(facerec_pb2.DeleteFaceRequest(collection="staff", face_id=ann[2]), context)
    assert (deleted.person_id, deleted.faces_left) == ("bob", 0)
    # Every registry call of these corrections was made for the caller's key.
    assert set(registry.actors[-4:]) == {key_fingerprint("k")}
