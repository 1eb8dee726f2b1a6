"""The registry's behaviours, one suite run against every store (see conftest.py): same answers everywhere.

Expected answers come from numpy on the same descriptors, never from the store under test.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from facerec.limits import MAX_REGISTRY_COLLECTION_NAME_LENGTH
from facerec.runtime.errors import AlreadyExists, InvalidArgument, NotFound
from facerec_registry.domain import FaceRecord, PersonAttributes, PersonUpdate, SearchQuery
from facerec_registry.registry import Registry
from facerec_registry.store.base import FaceStore
from tests.registry.faces import DIMENSION, MODEL_ID, faces_around, gallery

pytestmark = [
    # qdrant-client's local mode warns that HNSW parameters and payload indexes have no effect on it.
    pytest.mark.filterwarnings("ignore:Local mode performs exact:UserWarning"),
    pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning"),
]

GALLERY = "staff"


def _faces(vectors: npt.NDArray[np.float32], owners: npt.NDArray[np.int64], **metadata: str) -> list[FaceRecord]:
    return [
        FaceRecord(
            face_id=f"face-{i:04d}",
            person_id=f"person-{owner:03d}",
            embedding=vector,
            model_id=MODEL_ID,
            metadata=dict(metadata),
        )
        for i, (vector, owner) in enumerate(zip(vectors, owners, strict=True))
    ]


@pytest.fixture
def enrolled(registry: Registry) -> tuple[Registry, list[FaceRecord]]:
    """A gallery of 30 people with 3 faces each."""
    registry.create_collection(GALLERY, MODEL_ID, DIMENSION, 0.6)
    vectors, owners, _ = gallery(30, 3, np.random.default_rng(7))
    faces = _faces(vectors, owners)
    registry.upsert_faces(GALLERY, faces)
    return registry, faces


def _nearest_people(faces: list[FaceRecord], query: npt.NDArray[np.float32], k: int) -> list[tuple[str, str, float]]:
    """(person, nearest face, distance) of the k nearest people, computed with numpy."""
    best: dict[str, tuple[str, float]] = {}
    for face in faces:
        distance = float(np.linalg.norm(np.asarray(face.embedding, dtype=np.float64) - query))
        if face.person_id not in best or distance < best[face.person_id][1]:
            best[face.person_id] = (face.face_id, distance)
    ranked = sorted(best.items(), key=lambda item: item[1][1])[:k]
    return [(person, face_id, distance) for person, (face_id, distance) in ranked]


# --- collections -----------------------------------------------------------------------------------------


def test_created_collection_is_returned_by_get_and_list(registry: Registry) -> None:
    created = registry.create_collection(GALLERY, MODEL_ID, DIMENSION, 0.6, tenant="acme")

    got = registry.get_collection(GALLERY)

    assert got.collection == created.collection
    assert (got.collection.model_id, got.collection.dimension, got.collection.tenant) == (MODEL_ID, 128, "acme")
    assert got.collection.default_threshold == pytest.approx(0.6)
    assert [s.collection.name for s in registry.list_collections()] == [GALLERY]


def test_collections_are_listed_by_name_and_filtered_by_tenant(registry: Registry) -> None:
    for name, tenant in [("zeta", "a"), ("alpha", "b"), ("mid", "a")]:
        registry.create_collection(name, MODEL_ID, DIMENSION, 0.6, tenant=tenant)

    assert [s.collection.name for s in registry.list_collections()] == ["alpha", "mid", "zeta"]
    assert [s.collection.name for s in registry.list_collections(tenant="a")] == ["mid", "zeta"]


def test_creating_a_collection_again_with_identical_settings_returns_it(registry: Registry) -> None:
    first = registry.create_collection(GALLERY, MODEL_ID, DIMENSION, 0.6)

    again = registry.create_collection(GALLERY, MODEL_ID, DIMENSION, 0.6)

    assert again.collection == first.collection


@pytest.mark.parametrize("settings", [("other-model", DIMENSION, 0.6), (MODEL_ID, 64, 0.6), (MODEL_ID, DIMENSION, 0.5)])
def test_creating_a_collection_again_with_other_settings_is_refused(
    registry: Registry, settings: tuple[str, int, float]
) -> None:
    registry.create_collection(GALLERY, MODEL_ID, DIMENSION, 0.6)

    with pytest.raises(AlreadyExists):
        registry.create_collection(GALLERY, *settings)


@pytest.mark.parametrize(
    "name", ["", "-starts-with-dash", "has space", "a" * (MAX_REGISTRY_COLLECTION_NAME_LENGTH + 1), "dot.ted"]
)
def test_malformed_collection_names_are_refused(registry: Registry, name: str) -> None:
    with pytest.raises(InvalidArgument):
        registry.create_collection(name, MODEL_ID, DIMENSION, 0.6)


def test_unknown_collection_is_not_found(registry: Registry) -> None:
    with pytest.raises(NotFound):
        registry.get_collection("absent")
    with pytest.raises(NotFound):
        registry.search("absent", SearchQuery([np.zeros(DIMENSION, np.float32)], top_k=1))


def test_deleting_a_collection_removes_it_and_reports_its_faces(
    enrolled: tuple[Registry, list[FaceRecord]],
) -> None:
    registry, faces = enrolled

    assert registry.delete_collection(GALLERY) == len(faces)

    with pytest.raises(NotFound):
        registry.get_collection(GALLERY)
    assert registry.list_collections() == []


def test_collection_reports_its_counts(enrolled: tuple[Registry, list[FaceRecord]]) -> None:
    registry, _ = enrolled

    counts = registry.get_collection(GALLERY).counts

    assert (counts.faces, counts.people) == (90, 30)
    assert registry.count(GALLERY) == counts


def test_collection_settings_alone_are_the_collections_settings(enrolled: tuple[Registry, list[FaceRecord]]) -> None:
    registry, _ = enrolled

    assert registry.collection_settings(GALLERY) == registry.get_collection(GALLERY).collection
    with pytest.raises(NotFound):
        registry.collection_settings("absent")


# --- upserts ---------------------------------------------------------------------------------------------


def test_upserting_the_same_faces_twice_stores_them_once(enrolled: tuple[Registry, list[FaceRecord]]) -> None:
    registry, faces = enrolled

    assert registry.upsert_faces(GALLERY, faces) == len(faces)

    counts = registry.count(GALLERY)
    assert (counts.faces, counts.people) == (90, 30)


def test_upserting_a_face_id_again_replaces_its_descriptor(enrolled: tuple[Registry, list[FaceRecord]]) -> None:
    registry, _ = enrolled
    moved = np.full(DIMENSION, 0.5, dtype=np.float32)
    registry.upsert_faces(GALLERY, [FaceRecord("face-0000", "person-000", moved, MODEL_ID)])

    [[match]] = registry.search(GALLERY, SearchQuery([moved], top_k=1))

    assert match.face_id == "face-0000"
    assert match.distance == pytest.approx(0.0, abs=1e-5)
    assert registry.count(GALLERY).faces == 90


def test_a_face_id_written_for_another_person_moves_the_face_and_the_counts(
    enrolled: tuple[Registry, list[FaceRecord]],
) -> None:
    registry, faces = enrolled
    # person-001's three faces go to person-000 and to a newcomer: person-001 has none left.
    registry.upsert_faces(
        GALLERY,
        [
            FaceRecord("face-0003", "person-000", faces[3].embedding, MODEL_ID),
            FaceRecord("face-0004", "newcomer", faces[4].embedding, MODEL_ID),
            FaceRecord("face-0005", "newcomer", faces[5].embedding, MODEL_ID),
        ],
    )

    counts = registry.count(GALLERY)
    assert (counts.faces, counts.people) == (90, 30)
    listed = {p.person_id: p.face_ids for p in registry.list_people(GALLERY, page_size=1000).people}
    assert "person-001" not in listed
    assert listed["person-000"] == ("face-0000", "face-0001", "face-0002", "face-0003")
    assert listed["newcomer"] == ("face-0004", "face-0005")


def test_deleting_a_persons_last_face_removes_them_from_counts_and_listing(
    enrolled: tuple[Registry, list[FaceRecord]],
) -> None:
    registry, _ = enrolled

    for face_id in ("face-0003", "face-0004", "face-0005"):
        registry.delete_face(GALLERY, face_id)

    assert (registry.count(GALLERY).faces, registry.count(GALLERY).people) == (87, 29)
    assert "person-001" not in {p.person_id for p in registry.list_people(GALLERY, page_size=1000).people}


def _bad_faces() -> dict[str, FaceRecord]:
    good = np.full(DIMENSION, 0.1, dtype=np.float32)
    nan = good.copy()
    nan[3] = np.nan
    inf = good.copy()
    inf[5] = np.inf
    return {
        "nan": FaceRecord("bad", "p", nan, MODEL_ID),
        "inf": FaceRecord("bad", "p", inf, MODEL_ID),
        "short": FaceRecord("bad", "p", good[:100], MODEL_ID),
        "empty face id": FaceRecord("", "p", good, MODEL_ID),
        "empty person id": FaceRecord("bad", "", good, MODEL_ID),
        "long person id": FaceRecord("bad", "p" * 129, good, MODEL_ID),
        "control character": FaceRecord("bad", "p\x00q", good, MODEL_ID),
        "other model": FaceRecord("bad", "p", good, "other-model"),
    }


@pytest.mark.parametrize("case", list(_bad_faces()))
def test_one_invalid_face_refuses_the_whole_upsert_and_writes_nothing(
    enrolled: tuple[Registry, list[FaceRecord]], case: str
) -> None:
    registry, _ = enrolled
    fresh = FaceRecord("fresh", "newcomer", np.full(DIMENSION, 0.2, np.float32), MODEL_ID)

    with pytest.raises(InvalidArgument):
        registry.upsert_faces(GALLERY, [fresh, _bad_faces()[case]])

    counts = registry.count(GALLERY)
    assert (counts.faces, counts.people) == (90, 30)


def test_upsert_into_an_unknown_collection_is_not_found(registry: Registry) -> None:
    face = FaceRecord("f", "p", np.zeros(DIMENSION, np.float32), MODEL_ID)

    with pytest.raises(NotFound):
        registry.upsert_faces("absent", [face])


def test_attributes_for_a_person_without_faces_are_refused(enrolled: tuple[Registry, list[FaceRecord]]) -> None:
    registry, faces = enrolled

    with pytest.raises(InvalidArgument):
        registry.upsert_faces(GALLERY, faces[:1], [PersonAttributes("nobody", "No Body")])

    with pytest.raises(NotFound):
        registry.get_person(GALLERY, "nobody")


def test_new_faces_of_a_known_person_keep_their_attributes(enrolled: tuple[Registry, list[FaceRecord]]) -> None:
    registry, _ = enrolled
    registry.update_person(GALLERY, PersonUpdate("person-001", display_name="Ada", metadata={"team": "x"}))
    extra = FaceRecord("face-extra", "person-001", np.full(DIMENSION, 0.3, np.float32), MODEL_ID)

    registry.upsert_faces(GALLERY, [extra])

    [[match]] = registry.search(GALLERY, SearchQuery([extra.embedding], top_k=1, all_faces=True))
    assert (match.face_id, match.display_name) == ("face-extra", "Ada")
    assert registry.get_person(GALLERY, "person-001").metadata == {"team": "x"}


def test_attributes_given_with_an_upsert_apply_to_all_faces_of_the_person(
    enrolled: tuple[Registry, list[FaceRecord]],
) -> None:
    registry, faces = enrolled
    extra = FaceRecord("face-extra", "person-002", np.full(DIMENSION, 0.3, np.float32), MODEL_ID)

    registry.upsert_faces(GALLERY, [extra], [PersonAttributes("person-002", "Grace", {"role": "admiral"})])

    old_face = next(f for f in faces if f.person_id == "person-002")
    [[match]] = registry.search(GALLERY, SearchQuery([old_face.embedding], top_k=1, all_faces=True))
    assert (match.face_id, match.display_name) == (old_face.face_id, "Grace")
    person = registry.get_person(GALLERY, "person-002")
    assert (person.display_name, person.metadata, person.face_count) == ("Grace", {"role": "admiral"}, 4)


def test_attributes_alone_update_a_known_person(enrolled: tuple[Registry, list[FaceRecord]]) -> None:
    registry, _ = enrolled

    assert registry.upsert_faces(GALLERY, [], [PersonAttributes("person-007", "Alan", {"k": "v"})]) == 0

    person = registry.get_person(GALLERY, "person-007")
    assert (person.display_name, person.metadata, person.face_count) == ("Alan", {"k": "v"}, 3)


# --- search ----------------------------------------------------------------------------------------------


def test_search_returns_nearest_people_first_with_numpy_distances(
    enrolled: tuple[Registry, list[FaceRecord]],
) -> None:
    registry, faces = enrolled
    query = faces_around(np.asarray(faces[10].embedding), 1, np.random.default_rng(3))[0]

    [matches] = registry.search(GALLERY, SearchQuery([query], top_k=5))

    expected = _nearest_people(faces, query.astype(np.float64), 5)
    assert [(m.person_id, m.face_id) for m in matches] == [(p, f) for p, f, _ in expected]
    assert [m.distance for m in matches] == pytest.approx([d for _, _, d in expected], abs=1e-4)


def test_search_returns_each_person_once_with_their_nearest_face(registry: Registry) -> None:
    registry.create_collection(GALLERY, MODEL_ID, DIMENSION, 0.6)
    rng = np.random.default_rng(11)
    vectors, owners, centres = gallery(12, 1, rng)
    # One person has 25 faces all nearer the query than anyone else: over-fetching must still find 5 people.
    crowd = faces_around(centres[0], 25, rng)
    faces = _faces(np.vstack([vectors, crowd]), np.concatenate([owners, np.zeros(25, np.int64)]))
    registry.upsert_faces(GALLERY, faces)

    [matches] = registry.search(GALLERY, SearchQuery([centres[0]], top_k=5))

    expected = _nearest_people(faces, centres[0].astype(np.float64), 5)
    assert [(m.person_id, m.face_id) for m in matches] == [(p, f) for p, f, _ in expected]
    assert len({m.person_id for m in matches}) == 5


def test_search_with_all_faces_counts_each_face(enrolled: tuple[Registry, list[FaceRecord]]) -> None:
    registry, faces = enrolled
    query = np.asarray(faces[0].embedding)

    [matches] = registry.search(GALLERY, SearchQuery([query], top_k=3, all_faces=True))

    expected = sorted(faces, key=lambda f: float(np.linalg.norm(np.asarray(f.embedding) - query)))[:3]
    assert [m.face_id for m in matches] == [f.face_id for f in expected]
    assert {m.person_id for m in matches} == {"person-000"}


def test_search_drops_matches_beyond_max_distance(enrolled: tuple[Registry, list[FaceRecord]]) -> None:
    registry, faces = enrolled
    query = np.asarray(faces[0].embedding)

    [matches] = registry.search(GALLERY, SearchQuery([query], top_k=10, max_distance=0.6))

    assert [m.person_id for m in matches] == ["person-000"]
    assert all(m.distance <= 0.6 for m in matches)


def test_search_filters_on_face_metadata(registry: Registry) -> None:
    registry.create_collection(GALLERY, MODEL_ID, DIMENSION, 0.6)
    vectors, owners, _ = gallery(6, 2, np.random.default_rng(5))
    indoor = _faces(vectors[:6], owners[:6], camera="door", site="hq")
    outdoor = [
        FaceRecord(f"out-{i}", f.person_id, np.asarray(v), MODEL_ID, {"camera": "yard", "site": "hq"})
        for i, (f, v) in enumerate(zip(_faces(vectors[6:], owners[6:]), vectors[6:], strict=True))
    ]
    registry.upsert_faces(GALLERY, indoor + outdoor)

    [matches] = registry.search(
        GALLERY, SearchQuery([vectors[0]], top_k=10, all_faces=True, metadata_filter={"camera": "yard", "site": "hq"})
    )

    assert {m.face_id for m in matches} == {f.face_id for f in outdoor}


def test_search_for_a_person_finds_only_that_persons_faces(registry: Registry) -> None:
    registry.create_collection(GALLERY, MODEL_ID, DIMENSION, 0.6)
    vectors, owners, _ = gallery(4, 3, np.random.default_rng(6))
    faces = _faces(vectors, owners)
    registry.upsert_faces(GALLERY, faces)
    wanted = faces[-1].person_id

    [matches] = registry.search(GALLERY, SearchQuery([vectors[0]], top_k=10, all_faces=True, person_id=wanted))

    assert {m.face_id for m in matches} == {f.face_id for f in faces if f.person_id == wanted}


def test_search_for_an_invalid_person_id_is_refused(enrolled: tuple[Registry, list[FaceRecord]]) -> None:
    registry, _ = enrolled

    with pytest.raises(InvalidArgument):
        registry.search(GALLERY, SearchQuery([np.zeros(DIMENSION, np.float32)], top_k=1, person_id="a\nb"))


@pytest.mark.parametrize("top_k", [0, 101, -1])
def test_top_k_out_of_range_is_refused(enrolled: tuple[Registry, list[FaceRecord]], top_k: int) -> None:
    registry, _ = enrolled

    with pytest.raises(InvalidArgument):
        registry.search(GALLERY, SearchQuery([np.zeros(DIMENSION, np.float32)], top_k=top_k))


@pytest.mark.parametrize("count", [0, 257])
def test_query_batches_out_of_range_are_refused(enrolled: tuple[Registry, list[FaceRecord]], count: int) -> None:
    registry, _ = enrolled

    with pytest.raises(InvalidArgument):
        registry.search(GALLERY, SearchQuery([np.zeros(DIMENSION, np.float32)] * count, top_k=1))


def test_query_of_another_dimension_is_refused(enrolled: tuple[Registry, list[FaceRecord]]) -> None:
    registry, _ = enrolled

    with pytest.raises(InvalidArgument):
        registry.search(GALLERY, SearchQuery([np.zeros(64, np.float32)], top_k=1))


def test_batch_of_queries_is_answered_in_request_order(enrolled: tuple[Registry, list[FaceRecord]]) -> None:
    registry, faces = enrolled
    picks = [faces[i] for i in (40, 3, 77, 12)]

    results = registry.search(GALLERY, SearchQuery([np.asarray(f.embedding) for f in picks], top_k=1))

    assert [r[0].face_id for r in results] == [f.face_id for f in picks]


# --- deletion --------------------------------------------------------------------------------------------


def test_deleting_a_person_erases_every_face_of_theirs(enrolled: tuple[Registry, list[FaceRecord]]) -> None:
    registry, faces = enrolled
    theirs = [f for f in faces if f.person_id == "person-004"]

    assert registry.delete_person(GALLERY, "person-004") == 3

    results = registry.search(GALLERY, SearchQuery([np.asarray(f.embedding) for f in theirs], top_k=100))
    assert all(m.person_id != "person-004" for result in results for m in result)
    with pytest.raises(NotFound):
        registry.get_person(GALLERY, "person-004")
    listed = registry.list_people(GALLERY, page_size=1000).people
    assert "person-004" not in {p.person_id for p in listed}
    assert (registry.count(GALLERY).faces, registry.count(GALLERY).people) == (87, 29)


def test_deleting_an_unknown_person_deletes_nothing(enrolled: tuple[Registry, list[FaceRecord]]) -> None:
    registry, _ = enrolled

    assert registry.delete_person(GALLERY, "nobody") == 0
    assert registry.count(GALLERY).faces == 90


def test_deleting_a_face_removes_only_that_face(enrolled: tuple[Registry, list[FaceRecord]]) -> None:
    registry, _ = enrolled

    assert registry.delete_face(GALLERY, "face-0001") == "person-000"
    assert registry.delete_face(GALLERY, "face-0001") is None

    assert registry.get_person(GALLERY, "person-000").face_ids == ("face-0000", "face-0002")
    assert registry.count(GALLERY).faces == 89


# --- people ----------------------------------------------------------------------------------------------


def test_page_tokens_walk_every_person_once_in_id_order(enrolled: tuple[Registry, list[FaceRecord]]) -> None:
    registry, _ = enrolled
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = registry.list_people(GALLERY, page_size=7, page_token=token)
        seen.extend(p.person_id for p in page.people)
        pages += 1
        token = page.next_page_token
        if not token:
            break

    assert seen == [f"person-{i:03d}" for i in range(30)]
    assert pages == 5


def test_people_are_paged_in_code_point_order_whatever_their_ids(registry: Registry) -> None:
    # Ids that share long prefixes, are prefixes of one another, and hold characters of 1 to 4 UTF-8 bytes.
    person_ids = [
        "a",
        "ab",
        "abcdef",
        "abcdefg",
        "abcdeg",
        "B",
        "person-0001",
        "person-00010",
        "person-0002",
        "x" * 30 + "a",
        "x" * 30,
        "x" * 31,
        "é",
        "e\u0301",
        "€uro",
        "\U0001d11e clef",
        "zz",
    ]
    registry.create_collection(GALLERY, MODEL_ID, DIMENSION, 0.6)
    rng = np.random.default_rng(3)
    registry.upsert_faces(
        GALLERY,
        [
            FaceRecord(f"face-{i}", person, rng.normal(size=DIMENSION).astype(np.float32), MODEL_ID)
            for i, person in enumerate(person_ids)
        ],
    )
    listed: list[str] = []
    token = ""
    while True:
        page = registry.list_people(GALLERY, page_size=3, page_token=token)
        listed.extend(p.person_id for p in page.people)
        token = page.next_page_token
        if not token:
            break

    assert listed == sorted(person_ids)
    assert registry.count(GALLERY).people == len(person_ids)


def test_paging_people_whose_ids_share_long_prefixes_lists_each_once_in_order(registry: Registry) -> None:
    # Few letters, one of 3 UTF-8 bytes: ids that share long prefixes, end mid-way through a key part, or
    # are prefixes of one another, so that pages end inside groups of every depth.
    rng = np.random.default_rng(11)
    letters = ["a", "b", "\u20ac"]
    person_ids = sorted({"".join(rng.choice(letters, size=rng.integers(1, 40))) for _ in range(150)})
    registry.create_collection(GALLERY, MODEL_ID, DIMENSION, 0.6)
    registry.upsert_faces(
        GALLERY,
        [
            FaceRecord(f"face-{i}", person, rng.normal(size=DIMENSION).astype(np.float32), MODEL_ID)
            for i, person in enumerate(person_ids)
        ],
    )
    for page_size in (1, 4, 25):
        listed: list[str] = []
        token = ""
        while True:
            page = registry.list_people(GALLERY, page_size=page_size, page_token=token)
            listed.extend(p.person_id for p in page.people)
            token = page.next_page_token
            if not token:
                break
        assert listed == person_ids, page_size


def test_listed_people_carry_their_face_ids(enrolled: tuple[Registry, list[FaceRecord]]) -> None:
    registry, _ = enrolled

    first = registry.list_people(GALLERY, page_size=1).people[0]

    assert (first.person_id, first.face_ids, first.face_count) == (
        "person-000",
        ("face-0000", "face-0001", "face-0002"),
        3,
    )


def test_page_size_zero_means_the_default_of_100(registry: Registry) -> None:
    registry.create_collection(GALLERY, MODEL_ID, DIMENSION, 0.6)
    vectors, owners, _ = gallery(105, 1, np.random.default_rng(2))
    registry.upsert_faces(GALLERY, _faces(vectors, owners))

    page = registry.list_people(GALLERY, page_size=0)

    assert len(page.people) == 100
    assert page.next_page_token


@pytest.mark.parametrize("size", [-1, 1001])
def test_page_sizes_out_of_range_are_refused(enrolled: tuple[Registry, list[FaceRecord]], size: int) -> None:
    registry, _ = enrolled

    with pytest.raises(InvalidArgument):
        registry.list_people(GALLERY, page_size=size)


def test_a_forged_page_token_is_refused(enrolled: tuple[Registry, list[FaceRecord]]) -> None:
    registry, _ = enrolled

    with pytest.raises(InvalidArgument):
        registry.list_people(GALLERY, page_token="person-010")


def test_updating_a_person_merges_metadata_and_an_empty_value_deletes_a_key(
    enrolled: tuple[Registry, list[FaceRecord]],
) -> None:
    registry, _ = enrolled
    registry.update_person(GALLERY, PersonUpdate("person-005", display_name="Lin", metadata={"a": "1", "b": "2"}))

    updated = registry.update_person(GALLERY, PersonUpdate("person-005", metadata={"b": "", "c": "3"}))

    assert (updated.display_name, updated.metadata) == ("Lin", {"a": "1", "c": "3"})
    assert registry.get_person(GALLERY, "person-005").metadata == {"a": "1", "c": "3"}


def test_updating_a_person_can_replace_all_metadata(enrolled: tuple[Registry, list[FaceRecord]]) -> None:
    registry, _ = enrolled
    registry.update_person(GALLERY, PersonUpdate("person-005", metadata={"a": "1", "b": "2"}))

    registry.update_person(GALLERY, PersonUpdate("person-005", metadata={"z": "9"}, replace_metadata=True))

    person = registry.get_person(GALLERY, "person-005")
    assert (person.metadata, person.display_name) == ({"z": "9"}, "")


def test_updated_display_name_is_returned_by_search(enrolled: tuple[Registry, list[FaceRecord]]) -> None:
    registry, faces = enrolled
    registry.update_person(GALLERY, PersonUpdate("person-006", display_name="Marie"))

    face = next(f for f in faces if f.person_id == "person-006")
    [[match]] = registry.search(GALLERY, SearchQuery([np.asarray(face.embedding)], top_k=1))

    assert (match.person_id, match.display_name) == ("person-006", "Marie")


def test_updating_an_unknown_person_is_not_found(enrolled: tuple[Registry, list[FaceRecord]]) -> None:
    registry, _ = enrolled

    with pytest.raises(NotFound):
        registry.update_person(GALLERY, PersonUpdate("nobody", display_name="x"))


# --- durability ------------------------------------------------------------------------------------------


def test_data_survives_closing_and_reopening_the_store(
    open_face_store: Callable[[], FaceStore], store: FaceStore, store_kind: str
) -> None:
    if store_kind == "qdrant-local":
        pytest.skip("the in-memory reference keeps nothing once closed")
    registry = Registry(store)
    registry.create_collection(GALLERY, MODEL_ID, DIMENSION, 0.6)
    vectors, owners, _ = gallery(10, 2, np.random.default_rng(9))
    registry.upsert_faces(GALLERY, _faces(vectors, owners), [PersonAttributes("person-003", "Kim")])
    store.close()

    reopened = Registry(open_face_store())

    assert (reopened.count(GALLERY).faces, reopened.count(GALLERY).people) == (20, 10)
    assert [p.person_id for p in reopened.list_people(GALLERY, page_size=3).people] == [
        "person-000",
        "person-001",
        "person-002",
    ]
    assert reopened.get_person(GALLERY, "person-003").display_name == "Kim"
    [[match]] = reopened.search(GALLERY, SearchQuery([vectors[7]], top_k=1, all_faces=True))
    assert match.face_id == "face-0007"


def test_the_store_never_pages_more_people_than_asked(registry: Registry, store: FaceStore) -> None:
    person_ids = ["carol", "alice", "bob", "al", "alicia", "x" * 30, "x" * 31]
    registry.create_collection(GALLERY, MODEL_ID, DIMENSION, 0.6)
    rng = np.random.default_rng(4)
    registry.upsert_faces(
        GALLERY,
        [
            FaceRecord(f"face-{i}", person, rng.normal(size=DIMENSION).astype(np.float32), MODEL_ID)
            for i, person in enumerate(person_ids)
        ],
    )

    for after in [None, *sorted(person_ids)]:
        for limit in (1, 2, 3):
            expected = [p for p in sorted(person_ids) if after is None or p > after][:limit]
            assert store.people_after(GALLERY, after, limit) == expected, (after, limit)
