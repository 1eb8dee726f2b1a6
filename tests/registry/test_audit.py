"""The audit record: every write of the registry appends its events to its tenant's record, read back in order.

Run against every store (conftest.py): the embedded store keeps the record in files beside its data, the server
store in the Qdrant server itself (qdrant-client's local mode here, a real server where one answers).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from facerec.runtime.errors import InvalidArgument
from facerec_registry.audit import AuditAction, AuditEvent, Caller
from facerec_registry.domain import CollectionUpdate, FaceRecord, PersonAttributes, PersonUpdate
from facerec_registry.registry import Registry
from facerec_registry.store.base import FaceStore
from tests.registry.faces import DIMENSION, MODEL_ID, gallery

pytestmark = [
    pytest.mark.filterwarnings("ignore:Local mode performs exact:UserWarning"),
    pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning"),
]

STAFF = "acme__staff"
ALICE = Caller(actor="key:0123456789abcdef", request_id="req-1")


def _faces(people: int, per_person: int, seed: int = 1, prefix: str = "") -> list[FaceRecord]:
    vectors, owners, _ = gallery(people, per_person, np.random.default_rng(seed))
    return [
        FaceRecord(f"{prefix}f{i}", f"{prefix}p{owner}", vector, MODEL_ID)
        for i, (vector, owner) in enumerate(zip(vectors, owners, strict=True))
    ]


def _record(registry: Registry, tenant: str = "acme", **query: object) -> list[AuditEvent]:
    """The whole record of a tenant, read page by page with small pages."""
    events: list[AuditEvent] = []
    token = ""
    while True:
        page = registry.list_audit_events(tenant, page_size=3, page_token=token, **query)  # type: ignore[arg-type]
        events.extend(page.events)
        token = page.next_page_token
        if not token:
            return events


def _actions(events: list[AuditEvent]) -> list[tuple[AuditAction, str, int]]:
    return [(e.entry.action, e.entry.person_id, e.entry.faces) for e in events]


def test_every_write_appends_its_event_with_the_caller(registry: Registry) -> None:
    registry.create_collection(STAFF, MODEL_ID, DIMENSION, 0.6, tenant="acme", caller=ALICE)
    registry.upsert_faces(STAFF, _faces(2, 3), [PersonAttributes("p0", "Ada")], caller=ALICE)
    registry.update_person(STAFF, PersonUpdate("p1", display_name="Bob"), caller=ALICE)
    registry.delete_face(STAFF, "f0", caller=ALICE)
    registry.move_face(STAFF, "f1", "p1", caller=ALICE)
    registry.delete_person(STAFF, "p1", caller=ALICE)
    registry.update_collection(STAFF, CollectionUpdate(retention_seconds=86_400), caller=ALICE)
    registry.delete_collection(STAFF, caller=ALICE)

    events = _record(registry)

    assert _actions(events) == [
        (AuditAction.COLLECTION_CREATE, "", 0),
        (AuditAction.ENROLL, "p0", 3),
        (AuditAction.ENROLL, "p1", 3),
        (AuditAction.PERSON_UPDATE, "p1", 0),
        (AuditAction.FACE_DELETE, "p0", 1),
        (AuditAction.FACE_MOVE, "p0", 1),
        (AuditAction.PERSON_DELETE, "p1", 4),
        (AuditAction.COLLECTION_UPDATE, "", 0),
        (AuditAction.COLLECTION_DELETE, "", 1),
    ]
    assert {(e.entry.actor, e.entry.request_id, e.entry.collection) for e in events} == {
        ("key:0123456789abcdef", "req-1", STAFF)
    }
    assert [e.entry.face_id for e in events if e.entry.face_id] == ["f0", "f1"]
    assert events[5].entry.detail == "from person 'p0' to person 'p1'"
    assert events[7].entry.detail == "retention_seconds=86400"
    sequences = [e.sequence for e in events]
    assert sequences == sorted(set(sequences))
    assert all(a.time <= b.time for a, b in itertools.pairwise(events))


def test_tenants_keep_separate_records(registry: Registry) -> None:
    registry.create_collection("acme__a", MODEL_ID, DIMENSION, 0.6, tenant="acme")
    registry.create_collection("globex__a", MODEL_ID, DIMENSION, 0.6, tenant="globex")
    registry.create_collection("shared", MODEL_ID, DIMENSION, 0.6)
    registry.upsert_faces("globex__a", _faces(1, 2))

    assert [e.entry.collection for e in _record(registry, "acme")] == ["acme__a"]
    assert _actions(_record(registry, "globex")) == [
        (AuditAction.COLLECTION_CREATE, "", 0),
        (AuditAction.ENROLL, "p0", 2),
    ]
    assert [e.entry.collection for e in _record(registry, "")] == ["shared"]
    assert _record(registry, "nobody") == []


def test_what_changes_nothing_records_nothing(registry: Registry) -> None:
    registry.create_collection(STAFF, MODEL_ID, DIMENSION, 0.6, tenant="acme")
    registry.upsert_faces(STAFF, _faces(1, 2))
    before = _record(registry)

    registry.create_collection(STAFF, MODEL_ID, DIMENSION, 0.6, tenant="acme")  # the same settings again
    assert registry.delete_face(STAFF, "no-such-face") is None
    registry.move_face(STAFF, "f0", "p0")  # to the person it belongs to
    with pytest.raises(InvalidArgument):
        registry.upsert_faces(STAFF, [replace(_faces(1, 1)[0], embedding=np.full(DIMENSION, np.nan, np.float32))])

    assert _record(registry) == before


def test_an_erasure_is_recorded_even_when_the_person_had_no_face(registry: Registry) -> None:
    registry.create_collection(STAFF, MODEL_ID, DIMENSION, 0.6, tenant="acme")

    registry.delete_person(STAFF, "ghost")

    assert _actions(_record(registry))[-1] == (AuditAction.PERSON_DELETE, "ghost", 0)


def test_transient_collections_are_not_recorded(registry: Registry) -> None:
    registry.create_collection("acme__work", MODEL_ID, DIMENSION, 0.6, tenant="acme", transient=True)
    registry.upsert_faces("acme__work", _faces(2, 2))
    registry.delete_person("acme__work", "p0")
    registry.delete_collection("acme__work")

    assert _record(registry) == []


def test_the_record_holds_no_descriptor(registry: Registry) -> None:
    registry.create_collection(STAFF, MODEL_ID, DIMENSION, 0.6, tenant="acme")
    registry.upsert_faces(STAFF, _faces(3, 2))

    fields = [vars(e.entry) for e in _record(registry)]

    # Ids, counts and short words only: nothing the size of a descriptor.
    assert all(len(str(value)) < 200 for entry in fields for value in entry.values())


def test_the_record_is_read_since_a_time_and_for_one_collection(registry: Registry) -> None:
    registry.create_collection("acme__a", MODEL_ID, DIMENSION, 0.6, tenant="acme")
    registry.create_collection("acme__b", MODEL_ID, DIMENSION, 0.6, tenant="acme")
    for batch in range(4):
        registry.upsert_faces("acme__a", _faces(1, 1, seed=batch, prefix=f"a{batch}"))
        registry.upsert_faces("acme__b", _faces(1, 1, seed=batch, prefix=f"b{batch}"))
    everything = _record(registry)
    middle = everything[5]

    since = _record(registry, since=middle.time)
    only_b = _record(registry, collection="acme__b")

    assert since == [e for e in everything if e.time >= middle.time]
    assert since[0].time == middle.time and len(since) < len(everything)
    assert only_b == [e for e in everything if e.entry.collection == "acme__b"]
    assert len(only_b) == 5
    assert _record(registry, since=datetime.now(UTC) + timedelta(hours=1)) == []


def test_pages_resume_where_the_last_one_ended_while_events_are_appended(registry: Registry) -> None:
    registry.create_collection(STAFF, MODEL_ID, DIMENSION, 0.6, tenant="acme")
    registry.upsert_faces(STAFF, _faces(5, 1))
    first = registry.list_audit_events("acme", page_size=4)
    registry.upsert_faces(STAFF, _faces(2, 1, seed=9, prefix="late"))

    rest = registry.list_audit_events("acme", page_size=100, page_token=first.next_page_token)

    assert len(first.events) == 4 and first.next_page_token
    assert [e.entry.person_id for e in rest.events] == ["p3", "p4", "latep0", "latep1"]
    assert rest.next_page_token == ""


def test_foreign_page_tokens_and_sizes_are_refused(registry: Registry) -> None:
    for bad in [{"page_token": "bm90LWEtdG9rZW4"}, {"page_size": 5000}, {"collection": "bad name!"}]:
        with pytest.raises(InvalidArgument):
            registry.list_audit_events("acme", **bad)  # type: ignore[arg-type]


def test_the_record_outlives_the_store_being_reopened(
    open_face_store: Callable[[], FaceStore], store_kind: str
) -> None:
    first = open_face_store()
    registry = Registry(first)
    registry.create_collection(STAFF, MODEL_ID, DIMENSION, 0.6, tenant="acme")
    registry.upsert_faces(STAFF, _faces(2, 1))
    before = _record(registry)
    if store_kind != "qdrant-local":  # the in-memory reference keeps nothing once closed: a second replica reads it
        first.close()

    reopened = Registry(open_face_store())
    reopened.delete_person(STAFF, "p0")
    after = _record(reopened)

    assert after[: len(before)] == before
    assert _actions(after[len(before) :]) == [(AuditAction.PERSON_DELETE, "p0", 1)]
    assert after[-1].sequence > before[-1].sequence
