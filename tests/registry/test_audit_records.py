"""The two places the audit record is kept: a file per tenant (embedded store), the Qdrant server (server store).

The file: what a crash in the middle of an append leaves (a torn last line, a tail of zeros) is cut off when the
file opens, and the record reads and grows as before. The server: events of several replicas in the same
microsecond are each read once across pages.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from facerec.runtime.errors import InvalidArgument
from facerec_registry.audit import (
    AuditAction,
    AuditEntry,
    AuditPosition,
    AuditQuery,
    AuditSlice,
    Caller,
    decode_audit_token,
    encode_audit_token,
)
from facerec_registry.store.audit_file import FileAuditLog, tenant_file_name
from facerec_registry.store.audit_server import ServerAuditLog
from facerec_registry.store.base import StoreConfig

pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")


def _entries(count: int, collection: str = "acme__staff") -> list[AuditEntry]:
    return [AuditEntry(AuditAction.ENROLL, collection, person_id=f"p{i}", faces=1) for i in range(count)]


def _read_all(log: FileAuditLog | ServerAuditLog, tenant: str, limit: int = 2) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    after: AuditPosition | None = None
    while True:
        page: AuditSlice = log.read(AuditQuery(tenant=tenant, limit=limit, after=after))
        found.extend((e.sequence, e.entry.person_id) for e in page.events)
        if page.next is None:
            return found
        after = page.next


def test_file_lines_are_json_with_sequences_from_one(tmp_path: Path) -> None:
    log = FileAuditLog(tmp_path)
    log.append("acme", _entries(2))

    lines = (tmp_path / "tenant-acme.jsonl").read_text().splitlines()

    assert [json.loads(line)["seq"] for line in lines] == [1, 2]
    first = json.loads(lines[0])
    assert first["action"] == "enroll" and first["tenant"] == "acme" and first["person_id"] == "p0"
    assert datetime.strptime(first["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC) <= datetime.now(UTC)


@pytest.mark.parametrize(
    "tail",
    [b'{"seq": 4, "time": "2026-', b"\0" * 300, b'{"seq":4}'],
    ids=["torn-line", "zeros", "line-without-newline"],
)
def test_what_a_crash_mid_append_leaves_is_cut_off_when_the_file_opens(tmp_path: Path, tail: bytes) -> None:
    FileAuditLog(tmp_path).append("acme", _entries(3))
    path = tmp_path / tenant_file_name("acme")
    complete = path.read_bytes()
    with path.open("ab") as file:
        file.write(tail)

    reopened = FileAuditLog(tmp_path)
    before = _read_all(reopened, "acme")
    reopened.append("acme", [AuditEntry(AuditAction.PERSON_DELETE, "acme__staff", person_id="p9")])

    assert before == [(1, "p0"), (2, "p1"), (3, "p2")]
    assert _read_all(FileAuditLog(tmp_path), "acme") == [*before, (4, "p9")]
    assert path.read_bytes().startswith(complete) and path.read_bytes().endswith(b"\n")


def test_a_damaged_line_inside_the_file_is_skipped_not_fatal(tmp_path: Path) -> None:
    FileAuditLog(tmp_path).append("acme", _entries(3))
    path = tmp_path / tenant_file_name("acme")
    lines = path.read_bytes().split(b"\n")
    lines[1] = b"x" * len(lines[1])
    path.write_bytes(b"\n".join(lines))

    assert _read_all(FileAuditLog(tmp_path), "acme") == [(1, "p0"), (3, "p2")]


def test_tenants_with_unusual_names_get_files_of_their_own(tmp_path: Path) -> None:
    log = FileAuditLog(tmp_path)
    for tenant in ["", "a/b", "a.b", "ü"]:
        log.append(tenant, _entries(1, collection=f"c-{len(tenant)}"))

    names = sorted(p.name for p in tmp_path.iterdir())

    assert len(names) == 4 and all("/" not in n and n.endswith(".jsonl") for n in names)
    assert "no-tenant.jsonl" in names
    assert [e.entry.collection for e in log.read(AuditQuery(tenant="a/b")).events] == ["c-3"]


def test_a_collection_filter_reads_a_bounded_stretch_and_says_where_to_resume(tmp_path: Path) -> None:
    log = FileAuditLog(tmp_path)
    log.append("acme", _entries(12_000, collection="acme__busy"))
    log.append("acme", _entries(1, collection="acme__rare"))

    first = log.read(AuditQuery(tenant="acme", collection="acme__rare"))
    assert first.events == () and first.next is not None
    second = log.read(AuditQuery(tenant="acme", collection="acme__rare", after=first.next))

    assert [e.sequence for e in second.events] == [12_001] and second.next is None


def test_times_never_go_back_in_a_file_even_when_the_clock_does(tmp_path: Path) -> None:
    log = FileAuditLog(tmp_path)
    log.append("acme", _entries(1))
    record = log._record("acme")
    late = record.append(_entries(1), datetime(2000, 1, 1, tzinfo=UTC))

    events = log.read(AuditQuery(tenant="acme")).events

    assert late[0].time == events[0].time == events[1].time
    assert [e.sequence for e in events] == [1, 2]


def test_replicas_writing_in_the_same_microsecond_are_each_read_once() -> None:
    client = QdrantClient(location=":memory:")
    frozen = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    replicas = [ServerAuditLog(client, StoreConfig(), clock=lambda: frozen) for _ in range(3)]
    for round_ in range(3):
        for index, replica in enumerate(replicas):
            replica.append("acme", [AuditEntry(AuditAction.ENROLL, "acme__staff", person_id=f"r{index}-{round_}")])
    replicas[0].append("globex", _entries(1, collection="globex__a"))

    found = _read_all(replicas[1], "acme", limit=2)

    assert sorted(person for _, person in found) == sorted(f"r{i}-{r}" for i in range(3) for r in range(3))
    assert [sequence for sequence, _ in found] == sorted(sequence for sequence, _ in found)
    assert len({sequence for sequence, _ in found}) == 3  # three replicas, three sequences each, shared


@pytest.mark.parametrize(
    ("actor", "kept"),
    [("key:0123456789abcdef", True), ("", False), ("x" * 129, False), ("ключ", False), ("a\tb", False)],
)
def test_a_callers_actor_is_kept_only_when_it_is_short_printable_ascii(actor: str, kept: bool) -> None:
    assert Caller.named(actor, "req-1") == Caller(actor=actor if kept else "", request_id="req-1")


def test_page_tokens_round_trip_and_foreign_ones_are_refused() -> None:
    position = AuditPosition(sequence=1_780_000_000_000_000, seen=("a", "b"))

    assert decode_audit_token(encode_audit_token(position)) == position
    assert decode_audit_token("") is None
    for foreign in ["x", encode_audit_token(position)[:-3], "e30"]:  # "e30" is "{}"
        with pytest.raises(InvalidArgument):
            decode_audit_token(foreign)
