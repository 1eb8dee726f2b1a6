"""Audit, retention, transient collections and erasure upkeep of the registry running as its own process.

- the audit record of acknowledged writes survives SIGKILL of the registry, read back after a restart, with
  the callers' actor and request ids; a torn last line (a crash in mid-append) is cut off on open;
- the retention purge runs by itself (FACEREC_REGISTRY_RETENTION_INTERVAL_S) and is recorded;
- transient collections are gone after a restart;
- erased descriptors leave the data folder's files by the registry's own upkeep.
"""

from __future__ import annotations

import asyncio
import os
import struct
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import numpy as np
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from facerec.registry.v1 import registry_pb2 as pb
from facerec.registry.v1 import registry_pb2_grpc as pb_grpc
from facerec.runtime.context import ACTOR_HEADER, REQUEST_ID_HEADER
from facerec.v1 import audit_pb2
from tests.registry_service.process import RegistryProcess, serving

DIM = 128
STAFF = "acme__staff"
ACTOR = "key:0123456789abcdef"
QUICK_UPKEEP = {"FACEREC_REGISTRY_RETENTION_INTERVAL_S": "0.3"}


def _metadata(request: int) -> tuple[tuple[str, str], ...]:
    return ((ACTOR_HEADER, ACTOR), (REQUEST_ID_HEADER, f"req-{request}"))


def _faces(start: int, count: int, enrolled_at: datetime | None = None) -> list[pb.FaceRecord]:
    rng = np.random.default_rng(start)
    faces = []
    for i in range(start, start + count):
        face = pb.FaceRecord(
            face_id=f"face-{i}", person_id=f"person-{i // 2}", embedding=rng.normal(0, 0.1, DIM).tolist(), model_id="m"
        )
        if enrolled_at is not None:
            stamp = Timestamp()
            stamp.FromDatetime(enrolled_at)
            face.enrolled_at.CopyFrom(stamp)
        faces.append(face)
    return faces


async def _create(stub: pb_grpc.RegistryAsyncStub, name: str = STAFF, **settings: object) -> None:
    request = pb.CreateCollectionRequest(name=name, model_id="m", dimension=DIM, default_threshold=0.6, tenant="acme")
    for key, value in settings.items():
        setattr(request, key, value)
    await stub.CreateCollection(request, metadata=_metadata(0), timeout=10)


async def _record(stub: pb_grpc.RegistryAsyncStub) -> list[audit_pb2.AuditEvent]:
    events: list[audit_pb2.AuditEvent] = []
    token = ""
    while True:
        page = await stub.ListAuditEvents(
            pb.ListAuditEventsRequest(tenant="acme", page_size=7, page_token=token), timeout=10
        )
        events.extend(page.events)
        token = page.next_page_token
        if not token:
            return events


async def _eventually(condition: Callable[[], Awaitable[bool]], timeout_s: float) -> float:
    """Seconds until ``condition`` holds; fails after ``timeout_s``."""
    started = time.perf_counter()
    while not await condition():
        assert time.perf_counter() - started < timeout_s, "the condition never held"
        await asyncio.sleep(0.05)
    return time.perf_counter() - started


async def test_the_audit_record_of_acknowledged_writes_survives_kill_9(tmp_path: Path) -> None:
    first = RegistryProcess(tmp_path)
    try:
        stub = await serving(first)
        await _create(stub)
        for batch in range(20):
            request = pb.UpsertFacesRequest(collection=STAFF, faces=_faces(batch * 4, 4))
            await stub.UpsertFaces(request, metadata=_metadata(batch + 1), timeout=10)
        delete = pb.DeletePersonRequest(collection=STAFF, person_id="person-3")
        await stub.DeletePerson(delete, metadata=_metadata(99), timeout=10)
        first.kill()  # at once after the last acknowledgement: no flush, no graceful shutdown
    finally:
        first.stop()

    second = RegistryProcess(tmp_path)
    try:
        events = await _record(await serving(second))
    finally:
        second.stop()

    assert len(events) == 1 + 20 * 2 + 1
    assert [e.sequence for e in events] == list(range(1, 43))
    assert events[0].action == audit_pb2.AUDIT_COLLECTION_CREATE
    assert [e.person_id for e in events[1:41]] == [f"person-{i}" for i in range(40)]
    assert {(e.action, e.faces) for e in events[1:41]} == {(audit_pb2.AUDIT_ENROLL, 2)}
    assert (events[-1].action, events[-1].person_id, events[-1].faces) == (audit_pb2.AUDIT_PERSON_DELETE, "person-3", 2)
    assert {e.actor for e in events} == {ACTOR}
    assert [e.request_id for e in events[1:3]] == ["req-1", "req-1"] and events[-1].request_id == "req-99"


async def test_a_torn_last_line_is_cut_off_and_the_record_goes_on(tmp_path: Path) -> None:
    first = RegistryProcess(tmp_path)
    try:
        stub = await serving(first)
        await _create(stub)
        await stub.UpsertFaces(pb.UpsertFacesRequest(collection=STAFF, faces=_faces(0, 2)), timeout=10)
        first.kill()
    finally:
        first.stop()
    record_file = tmp_path / "audit" / "tenant-acme.jsonl"
    with record_file.open("ab") as file:
        file.write(b'{"seq": 3, "time": "2026-12-01T10:')  # what a crash in mid-append leaves

    second = RegistryProcess(tmp_path)
    try:
        stub = await serving(second)
        await stub.DeleteFace(pb.DeleteFaceRequest(collection=STAFF, face_id="face-0"), timeout=10)
        events = await _record(stub)
    finally:
        second.stop()

    assert [(e.sequence, e.action) for e in events] == [
        (1, audit_pb2.AUDIT_COLLECTION_CREATE),
        (2, audit_pb2.AUDIT_ENROLL),
        (3, audit_pb2.AUDIT_FACE_DELETE),
    ]
    assert record_file.read_bytes().count(b"\n") == 3


async def test_the_registry_purges_expired_people_by_itself_and_records_it(tmp_path: Path) -> None:
    registry = RegistryProcess(tmp_path, QUICK_UPKEEP)
    try:
        stub = await serving(registry)
        await _create(stub, retention_seconds=86_400)
        old = datetime.now(UTC) - timedelta(days=2)
        await stub.UpsertFaces(pb.UpsertFacesRequest(collection=STAFF, faces=_faces(0, 4, enrolled_at=old)), timeout=10)
        await stub.UpsertFaces(pb.UpsertFacesRequest(collection=STAFF, faces=_faces(10, 2)), timeout=10)

        async def purged() -> bool:
            return (await stub.Count(pb.CountRequest(collection=STAFF), timeout=10)).faces == 2

        waited = await _eventually(purged, timeout_s=10)
        events = await _record(stub)
        listed = await stub.ListPeople(pb.ListPeopleRequest(collection=STAFF), timeout=10)
    finally:
        registry.stop()

    purges = [e for e in events if e.action == audit_pb2.AUDIT_RETENTION_PURGE]
    assert waited < 10
    assert [p.person_id for p in listed.people] == ["person-5"]
    assert sorted((e.person_id, e.faces) for e in purges) == [("person-0", 2), ("person-1", 2)]
    assert {(e.actor, e.request_id, e.detail) for e in purges} == {
        ("registry:retention", "", "retention_seconds=86400")
    }


async def test_transient_collections_are_gone_after_a_restart_and_never_listed(tmp_path: Path) -> None:
    first = RegistryProcess(tmp_path)
    try:
        stub = await serving(first)
        await _create(stub, "acme__work", transient=True)
        await stub.UpsertFaces(pb.UpsertFacesRequest(collection="acme__work", faces=_faces(0, 4)), timeout=10)
        listed = await stub.ListCollections(pb.ListCollectionsRequest(), timeout=10)
        got = await stub.GetCollection(pb.GetCollectionRequest(name="acme__work"), timeout=10)
        first.kill()
    finally:
        first.stop()

    second = RegistryProcess(tmp_path)
    try:
        stub = await serving(second)
        with pytest.raises(grpc.aio.AioRpcError) as gone:
            await stub.GetCollection(pb.GetCollectionRequest(name="acme__work"), timeout=10)
        events = await _record(stub)
    finally:
        second.stop()

    assert listed.collections == [] and got.transient and got.face_count == 4
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    assert events == []


def _in_files(folder: Path, vector: Sequence[float]) -> bool:
    """Whether the descriptor's bytes (little-endian float32, or the WAL's CBOR form) are in any file under
    ``folder``; files the registry replaces meanwhile are skipped."""
    floats = np.asarray(vector, dtype=np.float32)
    forms = [floats.astype("<f4").tobytes(), b"".join(b"\xfa" + struct.pack(">f", x) for x in floats.tolist())]
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                content = (Path(root) / name).read_bytes()
            except FileNotFoundError:
                continue
            if any(form in content for form in forms):
                return True
    return False


async def test_erased_descriptors_leave_the_files_by_the_registrys_own_upkeep(tmp_path: Path) -> None:
    registry = RegistryProcess(tmp_path, QUICK_UPKEEP)
    try:
        stub = await serving(registry)
        await _create(stub)
        faces = _faces(0, 40)
        await stub.UpsertFaces(pb.UpsertFacesRequest(collection=STAFF, faces=faces), timeout=10)
        erased, kept = faces[0].embedding, faces[2].embedding  # person-0's first face; person-1's
        assert _in_files(tmp_path, erased)
        await stub.DeletePerson(pb.DeletePersonRequest(collection=STAFF, person_id="person-0"), timeout=10)

        async def gone() -> bool:
            return not _in_files(tmp_path, erased)

        waited = await _eventually(gone, timeout_s=30)
        count = await stub.Count(pb.CountRequest(collection=STAFF), timeout=10)
    finally:
        registry.stop()

    print(f"erased descriptors left the files {waited:.1f} s after DeletePerson (upkeep every 0.3 s)")
    assert _in_files(tmp_path, kept)
    assert count.faces == 38
