"""Corrections of one face (move it to another person, delete it) and transient collections, on every store."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from facerec.runtime.errors import InvalidArgument, NotFound
from facerec_registry.domain import FaceRecord, PersonAttributes, SearchQuery
from facerec_registry.registry import Registry
from tests.registry.faces import DIMENSION, MODEL_ID, gallery

pytestmark = [
    pytest.mark.filterwarnings("ignore:Local mode performs exact:UserWarning"),
    pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning"),
]

STAFF = "staff"
ENROLLED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def staff(registry: Registry) -> tuple[Registry, list[FaceRecord]]:
    """Ada (p0) with 2 faces, Bob (p1) with 2, each face with its photo's name."""
    registry.create_collection(STAFF, MODEL_ID, DIMENSION, 0.6)
    vectors, owners, _ = gallery(2, 2, np.random.default_rng(3))
    faces = [
        FaceRecord(f"f{i}", f"p{owner}", vector, MODEL_ID, metadata={"photo": f"{i}.jpg"}, enrolled_at=ENROLLED)
        for i, (vector, owner) in enumerate(zip(vectors, owners, strict=True))
    ]
    people = [PersonAttributes("p0", "Ada", {"team": "a"}), PersonAttributes("p1", "Bob", {"team": "b"})]
    registry.upsert_faces(STAFF, faces, people)
    return registry, faces


def test_a_moved_face_keeps_its_id_descriptor_and_time_and_takes_the_new_persons_attributes(
    staff: tuple[Registry, list[FaceRecord]],
) -> None:
    registry, faces = staff

    moved = registry.move_face(STAFF, "f0", "p1")

    assert moved.from_person_id == "p0"
    assert (moved.face.face_id, moved.face.person_id, moved.face.enrolled_at) == ("f0", "p1", ENROLLED)
    assert dict(moved.face.metadata) == {"photo": "0.jpg"} and moved.face.embedding.size == 0
    assert registry.get_person(STAFF, "p0").face_ids == ("f1",)
    bob = registry.get_person(STAFF, "p1")
    assert (bob.face_ids, bob.display_name, dict(bob.metadata)) == (("f0", "f2", "f3"), "Bob", {"team": "b"})
    [stored] = [
        f for f in registry.list_faces(STAFF, person_id="p1", include_embeddings=True).faces if f.face_id == "f0"
    ]
    assert np.array_equal(stored.embedding, faces[0].embedding)
    [[match]] = registry.search(STAFF, SearchQuery([faces[0].embedding], top_k=1, all_faces=True))
    assert (match.face_id, match.person_id, match.display_name) == ("f0", "p1", "Bob")
    assert (registry.count(STAFF).faces, registry.count(STAFF).people) == (4, 2)


def test_a_face_moved_to_a_new_person_makes_that_person(staff: tuple[Registry, list[FaceRecord]]) -> None:
    registry, _ = staff

    registry.move_face(STAFF, "f0", "p9")
    registry.move_face(STAFF, "f1", "p9")

    assert [p.person_id for p in registry.list_people(STAFF).people] == ["p1", "p9"]
    assert registry.get_person(STAFF, "p9").display_name == ""
    with pytest.raises(NotFound):
        registry.get_person(STAFF, "p0")


def test_moving_a_face_to_its_own_person_changes_nothing(staff: tuple[Registry, list[FaceRecord]]) -> None:
    registry, _ = staff

    moved = registry.move_face(STAFF, "f0", "p0")

    assert (moved.from_person_id, moved.face.person_id) == ("p0", "p0")
    assert registry.get_person(STAFF, "p0").face_ids == ("f0", "f1")


def test_moving_an_unknown_face_is_not_found_and_bad_ids_are_refused(staff: tuple[Registry, list[FaceRecord]]) -> None:
    registry, _ = staff

    with pytest.raises(NotFound, match="no face 'nope'"):
        registry.move_face(STAFF, "nope", "p1")
    with pytest.raises(InvalidArgument):
        registry.move_face(STAFF, "", "p1")
    with pytest.raises(InvalidArgument):
        registry.move_face(STAFF, "f0", "")
    with pytest.raises(NotFound):
        registry.move_face("missing", "f0", "p1")


def test_deleting_a_face_says_whose_it_was(staff: tuple[Registry, list[FaceRecord]]) -> None:
    registry, _ = staff

    assert registry.delete_face(STAFF, "f3") == "p1"
    assert registry.delete_face(STAFF, "f3") is None
    assert registry.get_person(STAFF, "p1").face_ids == ("f2",)


def test_transient_collections_work_like_others_but_are_not_listed(registry: Registry) -> None:
    registry.create_collection("visible", MODEL_ID, DIMENSION, 0.6, tenant="t")
    work = registry.create_collection("work-1", MODEL_ID, DIMENSION, 0.6, tenant="t", transient=True)
    vectors, owners, _ = gallery(3, 2, np.random.default_rng(4))
    registry.upsert_faces(
        "work-1",
        [FaceRecord(f"f{i}", f"p{o}", v, MODEL_ID) for i, (v, o) in enumerate(zip(vectors, owners, strict=True))],
    )

    assert work.collection.transient is True
    assert registry.collection_settings("work-1").transient is True
    assert [c.collection.name for c in registry.list_collections()] == ["visible"]
    assert [c.collection.name for c in registry.list_collections("t")] == ["visible"]
    [[match]] = registry.search("work-1", SearchQuery([vectors[4]], top_k=1, all_faces=True))
    assert match.face_id == "f4"
    assert len(registry.list_faces("work-1", include_embeddings=True).faces) == 6


def test_leftover_transient_collections_are_removed_at_start(registry: Registry) -> None:
    registry.create_collection("visible", MODEL_ID, DIMENSION, 0.6)
    registry.create_collection("work-1", MODEL_ID, DIMENSION, 0.6, transient=True)

    removed = registry.remove_transient_collections()

    if registry._store.exclusive:
        assert removed == ["work-1"]
        with pytest.raises(NotFound):
            registry.collection_settings("work-1")
    else:
        # Over a shared server a young one may be another replica's running call: it stays.
        assert removed == []
    assert registry.collection_settings("visible").transient is False
