"""Decision settings of collections, ``UpdateCollection``, ``ListFaces`` and the settings kept between searches:
registry behaviours run against every store (see conftest.py), like ``test_contract.py``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest

from facerec.runtime.errors import InvalidArgument, NotFound
from facerec_registry.domain import CollectionUpdate, FaceRecord, SearchQuery
from facerec_registry.registry import Registry
from facerec_registry.store.base import FaceStore
from tests.registry.faces import DIMENSION, MODEL_ID, gallery

pytestmark = [
    pytest.mark.filterwarnings("ignore:Local mode performs exact:UserWarning"),
    pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning"),
]

GALLERY = "staff"


def _faces(people: int, faces_per_person: int, seed: int = 3) -> list[FaceRecord]:
    vectors, owners, _ = gallery(people, faces_per_person, np.random.default_rng(seed))
    # Face ids not in person order, so that an order by face id alone would interleave people.
    return [
        FaceRecord(
            face_id=f"face-{(i * 7919) % len(owners):04d}",
            person_id=f"person-{owner:03d}",
            embedding=vector,
            model_id=MODEL_ID,
            metadata={"photo": f"{i}.jpg"},
        )
        for i, (vector, owner) in enumerate(zip(vectors, owners, strict=True))
    ]


@pytest.fixture
def enrolled(registry: Registry) -> tuple[Registry, list[FaceRecord]]:
    """A gallery of 12 people with 3 faces each."""
    registry.create_collection(GALLERY, MODEL_ID, DIMENSION, 0.6)
    faces = _faces(12, 3)
    registry.upsert_faces(GALLERY, faces)
    return registry, faces


# --- decision settings ------------------------------------------------------------------------------------


def test_a_collection_keeps_its_target_fpir_and_min_margin(registry: Registry) -> None:
    registry.create_collection(GALLERY, MODEL_ID, DIMENSION, 0.6, "acme", target_fpir=0.01, min_margin=0.05)

    got = registry.get_collection(GALLERY).collection
    [listed] = registry.list_collections()

    assert (got.target_fpir, got.min_margin) == pytest.approx((0.01, 0.05))
    assert listed.collection == got


def test_a_collection_created_without_them_has_a_fixed_threshold_and_no_margin(registry: Registry) -> None:
    registry.create_collection(GALLERY, MODEL_ID, DIMENSION, 0.6)

    got = registry.collection_settings(GALLERY)

    assert (got.target_fpir, got.min_margin) == (0.0, 0.0)


def test_creating_again_with_another_target_fpir_is_refused(registry: Registry) -> None:
    registry.create_collection(GALLERY, MODEL_ID, DIMENSION, 0.6, target_fpir=0.01)

    with pytest.raises(Exception, match="other settings"):
        registry.create_collection(GALLERY, MODEL_ID, DIMENSION, 0.6, target_fpir=0.02)


@pytest.mark.parametrize(
    "settings",
    [
        {"default_threshold": 0.0},
        {"default_threshold": 2.5},
        {"target_fpir": 0.6},
        {"target_fpir": -0.01},
        {"min_margin": 1.5},
        {"min_margin": float("nan")},
    ],
)
def test_decision_settings_out_of_range_are_refused_at_creation(registry: Registry, settings: dict[str, float]) -> None:
    with pytest.raises(InvalidArgument, match="out of range"):
        registry.create_collection(
            GALLERY,
            MODEL_ID,
            DIMENSION,
            settings.get("default_threshold", 0.6),
            target_fpir=settings.get("target_fpir", 0.0),
            min_margin=settings.get("min_margin", 0.0),
        )
    assert registry.list_collections() == []


def test_update_replaces_only_the_settings_given(enrolled: tuple[Registry, list[FaceRecord]]) -> None:
    registry, faces = enrolled

    after_fpir = registry.update_collection(GALLERY, CollectionUpdate(target_fpir=0.01))
    after_margin = registry.update_collection(GALLERY, CollectionUpdate(min_margin=0.04, default_threshold=0.55))
    got = registry.get_collection(GALLERY)

    assert (after_fpir.collection.default_threshold, after_fpir.collection.target_fpir) == pytest.approx((0.6, 0.01))
    assert after_fpir.collection.min_margin == 0.0
    assert (got.collection.default_threshold, got.collection.target_fpir, got.collection.min_margin) == pytest.approx(
        (0.55, 0.01, 0.04)
    )
    assert got.collection == after_margin.collection
    assert (got.counts.faces, got.counts.people) == (len(faces), 12)
    # Everything else stays: model, dimension, tenant, creation time, and the faces.
    created = after_fpir.collection
    assert (created.model_id, created.dimension, created.created_at) == (MODEL_ID, DIMENSION, got.collection.created_at)


def test_an_empty_update_changes_nothing(registry: Registry) -> None:
    created = registry.create_collection(GALLERY, MODEL_ID, DIMENSION, 0.6, target_fpir=0.01).collection

    assert registry.update_collection(GALLERY, CollectionUpdate()).collection == created


def test_target_fpir_0_returns_to_a_fixed_threshold(registry: Registry) -> None:
    registry.create_collection(GALLERY, MODEL_ID, DIMENSION, 0.6, target_fpir=0.01)

    updated = registry.update_collection(GALLERY, CollectionUpdate(target_fpir=0.0))

    assert updated.collection.target_fpir == 0.0


@pytest.mark.parametrize(
    "update",
    [CollectionUpdate(default_threshold=-1), CollectionUpdate(target_fpir=0.51), CollectionUpdate(min_margin=-0.1)],
)
def test_an_update_out_of_range_is_refused_and_changes_nothing(registry: Registry, update: CollectionUpdate) -> None:
    created = registry.create_collection(GALLERY, MODEL_ID, DIMENSION, 0.6, target_fpir=0.01).collection

    with pytest.raises(InvalidArgument, match="out of range"):
        registry.update_collection(GALLERY, update)
    assert registry.get_collection(GALLERY).collection == created


def test_updating_an_absent_collection_is_not_found(registry: Registry) -> None:
    with pytest.raises(NotFound):
        registry.update_collection("absent", CollectionUpdate(min_margin=0.1))


def test_updated_settings_survive_reopening_the_store(
    open_face_store: Callable[[], FaceStore], store_kind: str
) -> None:
    if store_kind == "qdrant-local":
        pytest.skip("the in-memory reference keeps nothing once closed")
    first = open_face_store()
    Registry(first).create_collection(GALLERY, MODEL_ID, DIMENSION, 0.6)
    Registry(first).update_collection(GALLERY, CollectionUpdate(target_fpir=0.02, min_margin=0.03))
    first.close()

    got = Registry(open_face_store()).collection_settings(GALLERY)

    assert (got.target_fpir, got.min_margin) == pytest.approx((0.02, 0.03))


# --- ListFaces --------------------------------------------------------------------------------------------


def _walk(registry: Registry, page_size: int, **options: object) -> tuple[list[FaceRecord], int]:
    faces: list[FaceRecord] = []
    token, pages = "", 0
    while True:
        page = registry.list_faces(GALLERY, page_size=page_size, page_token=token, **options)  # type: ignore[arg-type]
        faces.extend(page.faces)
        pages += 1
        token = page.next_page_token
        if not token:
            return faces, pages


@pytest.mark.parametrize("page_size", [1, 4, 7, 36, 100])
def test_faces_are_listed_once_each_by_person_then_face_id(
    enrolled: tuple[Registry, list[FaceRecord]], page_size: int
) -> None:
    registry, stored = enrolled

    listed, pages = _walk(registry, page_size)

    expected = sorted((face.person_id, face.face_id) for face in stored)
    assert [(face.person_id, face.face_id) for face in listed] == expected
    assert pages == max(1, -(-len(stored) // page_size))


def test_listed_faces_carry_their_model_metadata_and_enrollment_time(
    enrolled: tuple[Registry, list[FaceRecord]],
) -> None:
    registry, stored = enrolled
    by_id = {face.face_id: face for face in stored}

    page = registry.list_faces(GALLERY, page_size=5)

    for face in page.faces:
        assert (face.model_id, dict(face.metadata)) == (MODEL_ID, dict(by_id[face.face_id].metadata))
        assert face.enrolled_at is not None
        assert face.embedding.shape == (0,)


def test_faces_are_listed_with_their_descriptors_when_asked(enrolled: tuple[Registry, list[FaceRecord]]) -> None:
    registry, stored = enrolled
    by_id = {face.face_id: face for face in stored}

    listed, _ = _walk(registry, 10, include_embeddings=True)

    assert len(listed) == len(stored)
    for face in listed:
        assert face.embedding.dtype == np.float32
        np.testing.assert_allclose(face.embedding, by_id[face.face_id].embedding, atol=1e-6)


def test_one_persons_faces_are_listed_by_face_id(enrolled: tuple[Registry, list[FaceRecord]]) -> None:
    registry, stored = enrolled

    listed, pages = _walk(registry, 2, person_id="person-004")

    assert [face.face_id for face in listed] == sorted(f.face_id for f in stored if f.person_id == "person-004")
    assert pages == 2


def test_a_person_without_faces_lists_nothing(enrolled: tuple[Registry, list[FaceRecord]]) -> None:
    registry, _ = enrolled

    page = registry.list_faces(GALLERY, person_id="nobody")

    assert (page.faces, page.next_page_token) == ((), "")


def test_a_listing_goes_on_past_people_erased_meanwhile(enrolled: tuple[Registry, list[FaceRecord]]) -> None:
    registry, stored = enrolled
    first = registry.list_faces(GALLERY, page_size=4)
    last_person = first.faces[-1].person_id

    registry.delete_person(GALLERY, last_person)
    rest, _ = _walk_from(registry, first.next_page_token)

    remaining = sorted((f.person_id, f.face_id) for f in stored if f.person_id > last_person)
    assert [(f.person_id, f.face_id) for f in rest] == remaining


def _walk_from(registry: Registry, token: str) -> tuple[list[FaceRecord], int]:
    faces: list[FaceRecord] = []
    pages = 0
    while token:
        page = registry.list_faces(GALLERY, page_size=5, page_token=token)
        faces.extend(page.faces)
        token, pages = page.next_page_token, pages + 1
    return faces, pages


@pytest.mark.parametrize(
    "request_options",
    [{"page_size": -1}, {"page_size": 1001}, {"page_token": "not-a-token"}, {"person_id": "bad\nid"}],
)
def test_malformed_face_listings_are_refused(
    enrolled: tuple[Registry, list[FaceRecord]], request_options: dict[str, object]
) -> None:
    registry, _ = enrolled

    with pytest.raises(InvalidArgument):
        registry.list_faces(GALLERY, **request_options)  # type: ignore[arg-type]


def test_a_people_page_token_is_not_a_face_page_token(enrolled: tuple[Registry, list[FaceRecord]]) -> None:
    registry, _ = enrolled
    people_token = registry.list_people(GALLERY, page_size=2).next_page_token

    with pytest.raises(InvalidArgument, match="face listing"):
        registry.list_faces(GALLERY, page_token=people_token)


def test_listing_the_faces_of_an_absent_collection_is_not_found(registry: Registry) -> None:
    with pytest.raises(NotFound):
        registry.list_faces("absent")


# --- settings kept between searches -----------------------------------------------------------------------


@dataclass
class CountingStore:
    """The real store, counting the calls the registry makes to it (no behaviour of its own)."""

    store: FaceStore
    calls: dict[str, int] = field(default_factory=dict)

    def __getattr__(self, name: str) -> object:
        attribute = getattr(self.store, name)
        if not callable(attribute):
            return attribute

        def counted(*args: object, **kwargs: object) -> object:
            self.calls[name] = self.calls.get(name, 0) + 1
            return attribute(*args, **kwargs)

        return counted


def test_a_search_reads_no_collection_settings_from_the_store(store: FaceStore) -> None:
    counting = CountingStore(store)
    registry = Registry(counting)  # type: ignore[arg-type]
    registry.create_collection(GALLERY, MODEL_ID, DIMENSION, 0.6)
    faces = _faces(4, 2)
    registry.upsert_faces(GALLERY, faces)
    counting.calls.clear()

    for face in faces:
        registry.search(GALLERY, SearchQuery([face.embedding], top_k=1, all_faces=True))

    assert counting.calls == {"search": len(faces)}


def test_a_search_of_a_collection_deleted_through_another_registry_is_not_found(store: FaceStore) -> None:
    searching, deleting = Registry(store), Registry(store)
    searching.create_collection(GALLERY, MODEL_ID, DIMENSION, 0.6)
    query = SearchQuery([np.zeros(DIMENSION, np.float32)], top_k=1)
    searching.search(GALLERY, query)

    deleting.delete_collection(GALLERY)

    with pytest.raises(NotFound):
        searching.search(GALLERY, query)
    # Found gone, its settings are dropped: a collection made again under the name is searched as it is now.
    deleting.create_collection(GALLERY, MODEL_ID, 64, 0.6)
    assert searching.search(GALLERY, SearchQuery([np.zeros(64, np.float32)], top_k=1)) == [[]]


def test_settings_changed_through_another_registry_are_read_by_get_collection(store: FaceStore) -> None:
    mine, other = Registry(store), Registry(store)
    mine.create_collection(GALLERY, MODEL_ID, DIMENSION, 0.6)

    other.update_collection(GALLERY, CollectionUpdate(min_margin=0.07))

    assert mine.get_collection(GALLERY).collection.min_margin == pytest.approx(0.07)
    assert mine.collection_settings(GALLERY).min_margin == pytest.approx(0.07)


def test_settings_kept_over_a_shared_store_expire(store: FaceStore) -> None:
    counting = CountingStore(store)
    registry = Registry(counting, shared_settings_ttl_s=0.0)  # type: ignore[arg-type]
    registry.create_collection(GALLERY, MODEL_ID, DIMENSION, 0.6)
    counting.calls.clear()

    registry.search(GALLERY, SearchQuery([np.zeros(DIMENSION, np.float32)], top_k=1))

    # The embedded store sees every change: nothing to re-read. A server's collections may change elsewhere.
    assert counting.calls.get("get_collection", 0) == (0 if store.exclusive else 1)
