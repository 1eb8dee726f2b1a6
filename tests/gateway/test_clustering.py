"""Clustering over fakes of the embedder and the registry: the graph cut, the groups and noise, the checks on the
options, the working collection (transient, hidden, deleted however the call ends) and enrollment of the groups."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections.abc import AsyncIterator, Iterable

import numpy as np
import pytest

from facerec.runtime import errors
from facerec.runtime.deadlines import Deadline
from facerec_gateway.cluster_graph import Edges, chinese_whispers, connected_groups, groups
from facerec_gateway.clustering import (
    DEFAULT_MIN_FACES,
    DEFAULT_THRESHOLD,
    NEIGHBOURS,
    ClusterEvent,
    ClusterItem,
    ClusterOptions,
    ClusterProgress,
    ClusterResult,
    ClusterStage,
)
from facerec_gateway.domain import Box, RejectionReason
from facerec_gateway.enrollment import Photo, digest_face_id, face_id
from facerec_gateway.face_metadata import PHOTO
from tests.gateway.fakes import GOOD, TENANT, FakeEmbedder, FakeRegistry, face, recognition, vector

# ------------------------------------------------------------------------------------------ the graph


def edges(*pairs: tuple[int, int], distance: float = 0.1) -> Edges:
    sources, targets = zip(*pairs, strict=True) if pairs else ((), ())
    distances = np.full(len(pairs), distance, np.float32)
    return Edges(np.asarray(sources, np.int64), np.asarray(targets, np.int64), distances)


def clique(first: int, size: int) -> list[tuple[int, int]]:
    return [(a, b) for a in range(first, first + size) for b in range(first, first + size) if a != b]


def test_chinese_whispers_keeps_two_people_apart_across_one_false_link_where_components_merge_them() -> None:
    bridged = edges(*clique(0, 5), *clique(5, 5), (4, 5))

    whispers = chinese_whispers(10, bridged, 0.5)
    components = connected_groups(10, bridged, mutual=False)

    assert len(set(whispers[:5])) == 1 and len(set(whispers[5:])) == 1 and whispers[0] != whispers[9]
    assert len(set(components)) == 1, "one link chains the two groups into one component"


def test_links_near_the_threshold_weigh_little_against_close_ones() -> None:
    # Faces 0 and 1 are one person; 2-5 another, whom face 1 is barely under the threshold from.
    graph = Edges.concatenated([edges((0, 1), *clique(2, 4)), edges((1, 2), (1, 3), (1, 4), distance=0.48)])

    weighted = chinese_whispers(6, graph, 0.5)
    unweighted = chinese_whispers(6, graph, 0.5, weighted=False)

    assert weighted[0] == weighted[1] != weighted[2] and len(set(weighted[2:])) == 1
    assert unweighted[1] == unweighted[2], "counted 1 each, three faint links outvote one close one"


def test_a_pair_of_near_duplicates_joins_the_person_it_is_tied_to_by_ordinary_links() -> None:
    # The sample photos: obama2.jpg and 32bit.png are one photo saved twice (0.05 apart); the other photos of
    # Obama are 0.26-0.45 from them and 0.25-0.38 from each other.
    close = [(2, 4), (2, 5), (2, 6), (4, 5), (4, 6), (5, 6)]
    to_pair = {(0, 2): 0.364, (0, 4): 0.448, (0, 5): 0.417, (0, 6): 0.401, (3, 2): 0.357, (3, 4): 0.438}
    graph = Edges.concatenated(
        [edges(*close, distance=0.3), edges((0, 3), distance=0.053)]
        + [edges(pair, distance=d) for pair, d in to_pair.items()]
    )

    labels = chinese_whispers(7, graph, 0.5)

    assert len({int(labels[i]) for i in (0, 2, 3, 4, 5, 6)}) == 1 and labels[1] != labels[0]


def test_mutual_links_only_drop_a_link_found_from_one_end() -> None:
    one_way = edges(*clique(0, 3), *clique(3, 3), (2, 3))

    assert len(set(connected_groups(6, one_way))) == 2
    assert len(set(connected_groups(6, one_way, mutual=False))) == 1


def test_every_face_without_a_link_is_its_own_label() -> None:
    assert list(chinese_whispers(4, Edges.empty(), 0.5)) == [0, 1, 2, 3]
    assert list(chinese_whispers(0, Edges.empty(), 0.5)) == []
    assert list(chinese_whispers(2, edges((0, 1), distance=0.5), 0.5)) == [0, 1], "a link at the threshold"


def test_groups_are_largest_first_then_by_first_face_and_small_ones_are_noise() -> None:
    labels = np.asarray([7, 3, 7, 3, 9, 5, 5, 5], dtype=np.int64)

    kept, noise = groups(labels, min_faces=2)

    assert [list(g) for g in kept] == [[5, 6, 7], [0, 2], [1, 3]]
    assert list(noise) == [4]
    assert groups(labels, min_faces=4)[0] == [] and list(groups(labels, min_faces=4)[1]) == list(range(8))


def test_whispers_settle_on_a_random_graph_of_many_people_with_every_person_whole() -> None:
    rng = np.random.default_rng(3)
    people, size = 200, 8
    links = [pair for p in range(people) for pair in clique(p * size, size) if rng.random() < 0.6]
    strays = [(int(a), int(b)) for a, b in rng.integers(0, people * size, size=(100, 2))]

    labels = chinese_whispers(people * size, Edges.concatenated([edges(*links), edges(*strays, distance=0.45)]), 0.5)

    whole = sum(len(set(labels[p * size : (p + 1) * size])) == 1 for p in range(people))
    assert whole >= 0.95 * people
    assert len(set(labels)) >= 0.95 * people, "a stray link does not merge two people"


# ------------------------------------------------------------------------------------------ the domain

ANN, BOB, CID = vector(1, 0, 0, 0), vector(0, 1, 0, 0), vector(0, 0, 1, 0)
LONER = vector(0, 0, 0, 1)


def near(centre: np.ndarray, i: int) -> np.ndarray:
    """A face of the person at ``centre``, 0.05-0.1 from the others of theirs."""
    return (centre + 0.03 * np.sin(np.arange(4) + i)).astype(np.float32)


@pytest.fixture
def embedder() -> FakeEmbedder:
    embedder = FakeEmbedder()
    for i in range(4):
        embedder.shows(f"ann{i}".encode(), face(near(ANN, i)))
    for i in range(3):
        embedder.shows(f"bob{i}".encode(), face(near(BOB, i)))
    embedder.shows(b"loner", face(LONER))
    embedder.shows(b"pair", face(near(CID, 0), x=0), face(near(ANN, 9), x=200, size=100))
    embedder.shows(b"cid", face(near(CID, 1)))
    embedder.shows(b"landscape")
    embedder.shows(b"far-away", face(near(BOB, 5), size=12, quality=dataclasses.replace(GOOD, face_size_px=12)))
    return embedder


@pytest.fixture
def registry() -> FakeRegistry:
    registry = FakeRegistry()
    registry.add_collection("acme__staff")
    return registry


async def items(*messages: ClusterItem) -> AsyncIterator[ClusterItem]:
    for message in messages:
        yield message


def photos(*names: str) -> list[Photo]:
    return [Photo(name.encode(), f"{name}.jpg") for name in names]


async def run(service, messages: Iterable[ClusterItem]) -> tuple[list[ClusterProgress], ClusterResult]:
    events: list[ClusterEvent] = [
        e async for e in service.clusterer.cluster(TENANT, items(*messages), Deadline.after(5))
    ]
    *progress, result = events
    assert isinstance(result, ClusterResult) and all(isinstance(p, ClusterProgress) for p in progress)
    return progress, result  # type: ignore[return-value]


def names(result: ClusterResult) -> list[list[str]]:
    return [[f"{f.photo_name}#{f.face_index}" for f in cluster.faces] for cluster in result.clusters]


async def test_faces_of_the_same_person_are_grouped_largest_group_first_in_photo_order(embedder, registry) -> None:
    service = recognition(embedder, registry)
    stream = photos("bob0", "ann0", "ann1", "pair", "bob1", "ann2", "cid", "loner", "ann3", "bob2")

    _, result = await run(service, stream)

    assert names(result) == [
        ["ann0.jpg#0", "ann1.jpg#0", "pair.jpg#1", "ann2.jpg#0", "ann3.jpg#0"],
        ["bob0.jpg#0", "bob1.jpg#0", "bob2.jpg#0"],
        ["pair.jpg#0", "cid.jpg#0"],
    ]
    assert [(f.photo_name, f.photo_index) for f in result.noise] == [("loner.jpg", 7)]
    assert (result.photos, result.faces, result.skipped) == (10, 11, ())
    assert (result.threshold, result.min_faces) == (DEFAULT_THRESHOLD, DEFAULT_MIN_FACES)
    ann = result.clusters[0].faces[2]
    assert ann.box == Box(200, 0, 100, 100) and ann.quality.face_size_px == 120 and ann.face_id == ""
    assert all(cluster.person_id == "" for cluster in result.clusters), "nobody is enrolled without enroll"


async def test_min_faces_turns_smaller_groups_into_noise(embedder, registry) -> None:
    service = recognition(embedder, registry)

    _, result = await run(service, [ClusterOptions(min_faces=3), *photos("ann0", "ann1", "ann2", "cid", "pair")])

    assert names(result) == [["ann0.jpg#0", "ann1.jpg#0", "ann2.jpg#0", "pair.jpg#1"]]
    assert [f"{f.photo_name}#{f.face_index}" for f in result.noise] == ["cid.jpg#0", "pair.jpg#0"]
    assert result.min_faces == 3


async def test_a_photo_without_a_usable_face_is_skipped_with_its_reason_and_the_call_goes_on(
    embedder, registry
) -> None:
    service = recognition(embedder, registry)
    stream = [*photos("ann0", "landscape", "ann1", "far-away"), Photo(b"not a photo", "notes.txt"), Photo(b"", "e")]

    _, result = await run(service, stream)

    assert names(result) == [["ann0.jpg#0", "ann1.jpg#0"]]
    reasons = {s.photo_name: [r.reason for r in s.rejections] for s in result.skipped}
    assert reasons == {
        "landscape.jpg": [RejectionReason.NO_FACE],
        "far-away.jpg": [RejectionReason.FACE_TOO_SMALL],
        "notes.txt": [RejectionReason.INVALID_IMAGE],
        "e": [RejectionReason.INVALID_IMAGE],
    }
    assert [s.photo_index for s in result.skipped] == [1, 3, 4, 5]


async def test_progress_goes_through_the_stages_in_order_each_ending_done(embedder, registry) -> None:
    service = recognition(embedder, registry)
    registry.add_collection("acme__default")

    progress, result = await run(service, [ClusterOptions(enroll=True), *photos("ann0", "ann1", "bob0", "bob1")])

    stages = [p.stage for p in progress]
    assert stages == sorted(stages) and set(stages) == set(ClusterStage)
    last = {p.stage: p for p in progress}
    assert (last[ClusterStage.EMBEDDING].done, last[ClusterStage.EMBEDDING].total) == (4, 4)
    assert (last[ClusterStage.LINKING].done, last[ClusterStage.LINKING].total) == (4, 4)
    assert (last[ClusterStage.ENROLLING].done, last[ClusterStage.ENROLLING].total) == (2, 2)
    assert all(p.faces == 4 for p in progress[-4:]) and len(result.clusters) == 2


async def test_neighbours_are_searched_in_batches_within_the_threshold(embedder, registry) -> None:
    service = recognition(embedder, registry)

    await run(service, [ClusterOptions(threshold=0.3), *photos("ann0", "ann1", "bob0")])

    assert registry.searches and all(len(q.vectors) <= 256 for q in registry.searches)
    assert {(q.top_k, q.all_faces, q.max_distance) for q in registry.searches} == {(NEIGHBOURS + 1, True, 0.3)}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (ClusterOptions(threshold=3), "threshold 3 is out of range: it must be in (0, 2]"),
        (ClusterOptions(threshold=-0.5), "threshold -0.5 is out of range"),
        (ClusterOptions(min_faces=-1), "min_faces must be at least 1 (0 means 2), got -1"),
        (ClusterOptions(enroll=True, collection="no such"), "invalid collection name 'no such'"),
        (ClusterOptions(enroll=True, person_id_prefix="p" * 117), "person_id_prefix is 117 characters long"),
        (ClusterOptions(enroll=True, person_id_prefix="a\nb"), "person_id must not contain control characters"),
    ],
)
async def test_options_out_of_range_are_refused_before_any_work(embedder, registry, options, message) -> None:
    service = recognition(embedder, registry)

    with pytest.raises(errors.InvalidArgument) as refused:
        await run(service, [options, *photos("ann0")])

    assert message in refused.value.message
    assert embedder.calls == 0 and "CreateCollection" not in registry.calls


async def test_options_anywhere_but_first_refuse_the_call_and_the_working_collection_is_deleted(
    embedder, registry
) -> None:
    service = recognition(embedder, registry)

    with pytest.raises(errors.InvalidArgument) as refused:
        await run(service, [*photos("ann0", "ann1"), ClusterOptions(min_faces=3)])

    assert "ClusterOptions must be the first message of the stream" in refused.value.message
    assert "message 3 is options" in refused.value.message
    assert registry.calls.count("CreateCollection") == 1 and registry.calls[-1] == "DeleteCollection"
    assert list(registry.stored) == ["acme__staff"]


async def test_the_working_collection_is_transient_unlisted_and_deleted_after_the_call(embedder, registry) -> None:
    service = recognition(embedder, registry)
    seen: list[str] = []
    events = service.clusterer.cluster(TENANT, items(*photos("ann0", "ann1")), Deadline.after(5))
    async for event in events:
        if isinstance(event, ClusterProgress) and event.stage is ClusterStage.LINKING:
            seen = [name for name in registry.stored if name != "acme__staff"]
            working = registry.stored[seen[0]].collection
            assert working.transient and working.tenant == "" and working.name.startswith("acme___cluster-")
            listed = await service.collections.list_all(TENANT, Deadline.after(5))
            assert [c.name for c in listed] == ["staff"]

    assert len(seen) == 1 and seen[0] not in registry.stored


async def test_the_working_collection_is_deleted_when_the_caller_goes_away_mid_call(embedder, registry) -> None:
    service = recognition(embedder, registry)
    embedder.delay_s[b"ann1"] = 10.0
    events = service.clusterer.cluster(TENANT, items(*photos("ann0", "ann1")), Deadline.after(30))

    first = await anext(events)  # the call works; then the servicer closes it (the caller cancelled)
    await asyncio.wait_for(events.aclose(), timeout=2)

    assert isinstance(first, ClusterProgress) and first.stage is ClusterStage.EMBEDDING
    assert registry.calls[-1] == "DeleteCollection" and list(registry.stored) == ["acme__staff"]


async def test_the_working_collection_is_deleted_when_a_dependency_fails(embedder, registry) -> None:
    service = recognition(embedder, registry)

    async def down(*args: object, **kwargs: object) -> list[object]:
        raise errors.Unavailable("registry is unavailable: connection refused")

    registry.search = down

    with pytest.raises(errors.Unavailable):
        await run(service, photos("ann0", "ann1"))

    assert list(registry.stored) == ["acme__staff"]


async def test_with_enroll_each_group_is_a_new_person_with_the_faces_enrollment_would_store(embedder, registry) -> None:
    service = recognition(embedder, registry)
    options = ClusterOptions(collection="staff", enroll=True, person_id_prefix="trip-")

    _, result = await run(service, [options, *photos("ann0", "bob0", "ann1", "bob1", "loner")])

    assert [c.person_id for c in result.clusters] == ["trip-1", "trip-2"]
    stored = registry.stored["acme__staff"]
    assert sorted(stored.people) == ["trip-1", "trip-2"]
    ann0 = result.clusters[0].faces[0]
    enrolled = stored.faces[ann0.face_id]
    assert ann0.face_id == face_id("acme__staff", "trip-1", b"ann0", embedder.photos[b"ann0"][0])
    assert enrolled.person_id == "trip-1" and enrolled.metadata[PHOTO] == "ann0.jpg"
    assert np.allclose(enrolled.embedding, near(ANN, 0))
    assert len(stored.faces) == 4, "noise is not enrolled"
    assert result.noise[0].face_id == ""


async def test_without_a_prefix_each_call_enrolls_fresh_people(embedder, registry) -> None:
    service = recognition(embedder, registry)
    options = ClusterOptions(collection="staff", enroll=True)

    _, first = await run(service, [options, *photos("ann0", "ann1")])
    _, second = await run(service, [options, *photos("ann0", "ann1")])

    assert first.clusters[0].person_id.startswith("cluster-") and first.clusters[0].person_id.endswith("-1")
    assert first.clusters[0].person_id != second.clusters[0].person_id
    assert len(registry.stored["acme__staff"].people) == 2


async def test_enrolling_into_the_default_collection_creates_it_on_first_use(embedder, registry) -> None:
    service = recognition(embedder, registry)

    _, result = await run(service, [ClusterOptions(enroll=True, person_id_prefix="g"), *photos("ann0", "ann1")])

    assert sorted(registry.stored["acme__default"].people) == ["g1"] and result.clusters[0].person_id == "g1"


async def test_an_empty_stream_clusters_nothing(embedder, registry) -> None:
    service = recognition(embedder, registry)

    _, result = await run(service, [])

    assert (result.clusters, result.noise, result.photos, result.faces) == ((), (), 0, 0)
    assert list(registry.stored) == ["acme__staff"]


def test_enrolled_face_ids_are_enrollments_own() -> None:
    photo = b"\xff\xd8 some photo"
    shown = face(vector(1, 0, 0, 0), x=30)
    digest = hashlib.sha256(photo).hexdigest()

    assert digest_face_id("t__c", "p-1", digest, shown.box) == face_id("t__c", "p-1", photo, shown)
