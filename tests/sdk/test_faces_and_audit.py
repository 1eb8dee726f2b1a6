"""The SDK's faces of a person, audit record and retention: typed results from the messages and back, every page
fetched by the iterators of both clients, and what the requests carry (against the faces double)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest

from facerec.sdk import (
    AsyncClient,
    AuditAction,
    AuditEvent,
    BoundingBox,
    Client,
    EnrolledFace,
    FaceQuality,
    NotFound,
    convert,
    messages,
)
from facerec.v1 import audit_pb2, facerec_pb2
from tests.sdk.faces_double import FACES, T0, Served, serve


@pytest.fixture
def gateway() -> Iterator[Served]:
    with serve() as served:
        yield served


def test_an_enrolled_face_reads_back_as_written_and_unset_measures_stay_none() -> None:
    full = EnrolledFace("f-1", "ann", "ann.jpg", T0, FaceQuality(96.5, 50.25, 2.5, 0.875), BoundingBox(-3, 4, 96, 96))
    bare = EnrolledFace("f-2", "ann")

    assert convert.enrolled_face_from_proto(convert.enrolled_face_to_proto(full)) == full
    message = convert.enrolled_face_to_proto(bare)
    assert not message.HasField("quality") and not message.HasField("box") and not message.HasField("enrolled_at")
    assert convert.enrolled_face_from_proto(message) == bare


def test_an_audit_event_reads_back_as_written_and_an_unknown_action_is_unspecified() -> None:
    event = AuditEvent(7, T0, AuditAction.RETENTION_PURGE, "staff", "bob", "", 2, "", "registry:retention", "")

    assert convert.audit_event_from_proto(convert.audit_event_to_proto(event)) == event
    assert convert.audit_event_to_proto(event).action == audit_pb2.AUDIT_RETENTION_PURGE
    assert convert.audit_action_from_proto(99) is AuditAction.UNSPECIFIED
    assert {a.value for a in AuditAction} == set(audit_pb2.AuditAction.keys())


def test_retention_travels_only_when_given() -> None:
    assert not messages.create_collection_request("staff").HasField("retention_seconds")
    assert messages.create_collection_request("staff", retention_seconds=60).retention_seconds == 60
    update = messages.update_collection_request("staff", retention_seconds=0)
    assert update.HasField("retention_seconds") and not update.HasField("threshold")
    with pytest.raises(ValueError, match="retention_seconds"):
        messages.update_collection_request("staff")
    shown = convert.collection_from_proto(facerec_pb2.Collection(name="staff", retention_seconds=2592000))
    assert shown.retention_seconds == 2592000


def test_since_without_a_time_zone_is_utc_and_with_one_is_converted() -> None:
    naive = messages.list_audit_events_request(since=datetime(2026, 12, 1, 9, 0))
    aware = messages.list_audit_events_request(since=datetime(2026, 12, 1, 10, 0, tzinfo=timezone(timedelta(hours=1))))

    assert naive.since.ToDatetime(tzinfo=UTC) == aware.since.ToDatetime(tzinfo=UTC) == T0
    assert not messages.list_audit_events_request().HasField("since")


def test_the_sync_client_lists_moves_and_deletes_faces_and_reads_the_record(gateway: Served) -> None:
    with Client(gateway.address, "k", timeout=10) as client:
        page = client.list_faces("ann", collection="staff", page_size=2)
        faces = list(client.iter_faces("ann", collection="staff", page_size=2))
        moved = client.move_face("face-2", "bob", collection="staff")
        deleted = client.delete_face("face-1", collection="staff")
        events = list(client.iter_audit_events(since=T0, page_size=2))
        with pytest.raises(NotFound):
            client.list_faces("nobody")

    assert [f.face_id for f in page.items] == FACES[:2] and page.next_page_token == "2"
    assert [f.face_id for f in faces] == FACES
    assert faces[0].quality == FaceQuality(96.5, 0.0, 2.25, 0.875) and faces[0].box == BoundingBox(10, 20, 96, 96)
    assert faces[0].enrolled_at == T0 and (faces[-1].quality, faces[-1].box) == (None, None)
    assert (moved.from_person_id, moved.face.person_id, moved.face.face_id) == ("ann", "bob", "face-2")
    assert (deleted.person_id, deleted.faces_left) == ("ann", 4)
    assert [e.action for e in events] == [AuditAction.ENROLL, AuditAction.FACE_MOVE, AuditAction.RETENTION_PURGE]
    assert events[0].time == T0 + timedelta(minutes=1) and events[0].actor == "key:0123456789abcdef"
    assert gateway.gateway.metadata[0]["authorization"] == "Bearer k"


async def test_the_async_client_does_the_same(gateway: Served) -> None:
    async with AsyncClient(gateway.address, "k", timeout=10) as client:
        faces = [f async for f in client.iter_faces("ann", page_size=3)]
        moved = await client.move_face("face-2", "bob")
        deleted = await client.delete_face("face-1")
        events = [e async for e in client.iter_audit_events(collection="staff", page_size=1)]
        page = await client.list_audit_events(page_size=2)

    assert [f.face_id for f in faces] == FACES and moved.face.person_id == "bob" and deleted.faces_left == 4
    assert [e.sequence for e in events] == [1, 2, 3] and [e.sequence for e in page.items] == [1, 2]
    requests = gateway.gateway.requests["ListAuditEvents"]
    assert [r.page_token for r in requests[:3]] == ["", "1", "2"]  # type: ignore[attr-defined]
    assert requests[0].collection == "staff"  # type: ignore[attr-defined]
