"""Retention: a collection's period after which a person's faces are purged unless they were enrolled again.

Run against every store (conftest.py). Faces carry the enrollment time they were given, so "30 days ago" is a
real stored time, not a fake clock; the purge's cut-off is computed from the real one.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import qdrant_edge as edge
from qdrant_client import QdrantClient

from facerec.limits import MAX_RETENTION_SECONDS
from facerec.runtime.errors import InvalidArgument
from facerec_registry.audit import RETENTION_ACTOR, AuditAction
from facerec_registry.domain import CollectionUpdate, FaceRecord
from facerec_registry.registry import Registry
from facerec_registry.store.base import FaceStore, StoreConfig
from facerec_registry.store.edge import EdgeFaceStore
from facerec_registry.store.server import ServerFaceStore
from tests.registry.faces import DIMENSION, MODEL_ID, gallery

pytestmark = [
    pytest.mark.filterwarnings("ignore:Local mode performs exact:UserWarning"),
    pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning"),
]

STAFF = "acme__staff"
DAY = 86_400
NOW = datetime.now(UTC)


def _faces(person: str, count: int, enrolled_days_ago: float, seed: int = 0) -> list[FaceRecord]:
    vectors, _, _ = gallery(1, count, np.random.default_rng(seed))
    when = NOW - timedelta(days=enrolled_days_ago)
    return [
        FaceRecord(f"{person}-{seed}-{i}", person, vector, MODEL_ID, enrolled_at=when)
        for i, vector in enumerate(vectors)
    ]


@pytest.fixture
def staff(registry: Registry) -> Registry:
    """A 30-day collection: 'old' enrolled 40 days ago, 'recent' 10 days ago, 'renewed' 40 and 5 days ago."""
    registry.create_collection(STAFF, MODEL_ID, DIMENSION, 0.6, tenant="acme", retention_seconds=30 * DAY)
    registry.upsert_faces(STAFF, _faces("old", 3, 40, seed=1))
    registry.upsert_faces(STAFF, _faces("recent", 2, 10, seed=2))
    registry.upsert_faces(STAFF, [*_faces("renewed", 2, 40, seed=3), *_faces("renewed", 1, 5, seed=4)])
    return registry


def _purges(registry: Registry) -> list[tuple[str, int, str, str]]:
    events = registry.list_audit_events("acme", page_size=1000).events
    return [
        (e.entry.person_id, e.entry.faces, e.entry.actor, e.entry.detail)
        for e in events
        if e.entry.action == AuditAction.RETENTION_PURGE
    ]


def test_people_whose_newest_face_is_older_than_the_period_are_purged_and_recorded(staff: Registry) -> None:
    purged = staff.purge_expired()

    assert purged == 3
    assert [p.person_id for p in staff.list_people(STAFF).people] == ["recent", "renewed"]
    assert staff.get_person(STAFF, "renewed").face_count == 3  # the newest face counts: all are kept
    assert _purges(staff) == [("old", 3, RETENTION_ACTOR, f"retention_seconds={30 * DAY}")]
    assert staff.count(STAFF).faces == 5


def test_purging_again_deletes_nothing_and_records_nothing(staff: Registry) -> None:
    staff.purge_expired()
    before = staff.list_audit_events("acme", page_size=1000).events

    assert staff.purge_expired() == 0
    assert staff.list_audit_events("acme", page_size=1000).events == before


def test_enrolling_again_restarts_the_period(staff: Registry) -> None:
    staff.upsert_faces(STAFF, _faces("old", 1, 0, seed=5))

    assert staff.purge_expired() == 0
    assert staff.get_person(STAFF, "old").face_count == 4


def test_the_period_runs_from_each_persons_newest_face(staff: Registry) -> None:
    # 19 days on, 'recent' (enrolled 10 days ago) is 29 days old: kept; 21 days on, 31: purged. 'renewed' (newest
    # face 5 days ago) is 26 days old then: kept.
    assert staff.purge_expired(now=NOW + timedelta(days=19)) == 3
    assert staff.purge_expired(now=NOW + timedelta(days=21)) == 2
    assert [p.person_id for p in staff.list_people(STAFF).people] == ["renewed"]


def test_collections_without_a_period_keep_everything(registry: Registry) -> None:
    registry.create_collection(STAFF, MODEL_ID, DIMENSION, 0.6, tenant="acme")
    registry.upsert_faces(STAFF, _faces("ancient", 2, 3650))

    assert registry.purge_expired() == 0
    assert registry.count(STAFF).faces == 2


def test_a_period_set_later_applies_from_the_next_purge(registry: Registry) -> None:
    registry.create_collection(STAFF, MODEL_ID, DIMENSION, 0.6, tenant="acme")
    registry.upsert_faces(STAFF, _faces("old", 2, 40))
    registry.purge_expired()

    updated = registry.update_collection(STAFF, CollectionUpdate(retention_seconds=30 * DAY))

    assert updated.collection.retention_seconds == 30 * DAY
    assert registry.collection_settings(STAFF).retention_seconds == 30 * DAY
    assert registry.purge_expired() == 2


@pytest.mark.parametrize("seconds", [-1, MAX_RETENTION_SECONDS + 1])
def test_a_period_out_of_range_is_refused(registry: Registry, seconds: int) -> None:
    with pytest.raises(InvalidArgument, match="retention_seconds"):
        registry.create_collection(STAFF, MODEL_ID, DIMENSION, 0.6, retention_seconds=seconds)
    registry.create_collection(STAFF, MODEL_ID, DIMENSION, 0.6)
    with pytest.raises(InvalidArgument, match="retention_seconds"):
        registry.update_collection(STAFF, CollectionUpdate(retention_seconds=seconds))
    assert registry.collection_settings(STAFF).retention_seconds == 0


def test_a_different_period_is_another_collection(registry: Registry) -> None:
    registry.create_collection(STAFF, MODEL_ID, DIMENSION, 0.6, retention_seconds=DAY)

    assert registry.create_collection(STAFF, MODEL_ID, DIMENSION, 0.6, retention_seconds=DAY).collection.name
    with pytest.raises(Exception, match="other settings"):
        registry.create_collection(STAFF, MODEL_ID, DIMENSION, 0.6, retention_seconds=2 * DAY)


def test_the_purge_finds_its_candidates_through_the_enrollment_time(staff: Registry, store: FaceStore) -> None:
    cutoff = NOW - timedelta(days=30)

    assert store.expired_people(STAFF, cutoff, 10) == ["old"]
    assert store.expired_people(STAFF, NOW + timedelta(days=1), 10) == ["old", "recent", "renewed"]
    assert store.expired_people(STAFF, NOW + timedelta(days=1), 2) == ["old", "recent"]
    # A purge that comes after a new enrollment deletes nothing.
    staff.upsert_faces(STAFF, _faces("old", 1, 0, seed=6))
    assert store.purge_person(STAFF, "old", cutoff) == 0


def test_replicas_sharing_a_server_purge_each_person_once() -> None:
    client = QdrantClient(location=":memory:")
    replicas = [Registry(ServerFaceStore(StoreConfig(), client=client)) for _ in range(2)]
    replicas[0].create_collection(STAFF, MODEL_ID, DIMENSION, 0.6, tenant="acme", retention_seconds=30 * DAY)
    replicas[0].upsert_faces(STAFF, [*_faces("old", 2, 40, seed=1), *_faces("also-old", 1, 50, seed=2)])

    purged = [replica.purge_expired() for replica in replicas]

    assert purged == [3, 0]
    assert sorted(person for person, *_ in _purges(replicas[1])) == ["also-old", "old"]


def test_collections_made_before_retention_read_no_period(tmp_path: Path) -> None:
    store = EdgeFaceStore(StoreConfig(data_dir=tmp_path))
    Registry(store).create_collection(STAFF, MODEL_ID, DIMENSION, 0.6)
    store.close()
    entry_file = tmp_path / "collections" / STAFF / "collection.json"
    entry = json.loads(entry_file.read_text())
    del entry["collection"]["retention_seconds"], entry["collection"]["transient"]
    entry_file.write_text(json.dumps(entry))

    reopened = EdgeFaceStore(StoreConfig(data_dir=tmp_path))
    try:
        settings = Registry(reopened).collection_settings(STAFF)
        assert (settings.retention_seconds, settings.transient) == (0, False)
    finally:
        reopened.close()


def test_a_collection_made_before_the_enrollment_time_index_gets_it_when_it_opens(tmp_path: Path) -> None:
    store = EdgeFaceStore(StoreConfig(data_dir=tmp_path))
    Registry(store).create_collection(STAFF, MODEL_ID, DIMENSION, 0.6, retention_seconds=DAY)
    Registry(store).upsert_faces(STAFF, _faces("old", 2, 40))
    with store._collection(STAFF).writing() as shard:
        shard.update(edge.UpdateOperation.delete_field_index("enrolled_at"))
        assert "enrolled_at" not in shard.info().payload_schema
    store.close()

    reopened = EdgeFaceStore(StoreConfig(data_dir=tmp_path))
    try:
        with reopened._collection(STAFF).reading() as shard:
            assert shard.info().payload_schema["enrolled_at"].data_type == edge.PayloadSchemaType.Datetime
        assert Registry(reopened).purge_expired() == 2
    finally:
        reopened.close()
