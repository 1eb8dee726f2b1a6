"""The embedded store's audit record: one append-only JSON-lines file per tenant beside the store's data.

Layout under ``<data_dir>/audit/``: ``tenant-<tenant>.jsonl`` (``no-tenant.jsonl`` for collections without one;
a tenant whose name is not a plain file name gets ``tenant-x<hex of its UTF-8>.jsonl``). One event per line::

    {"seq": 7, "time": "2026-12-01T10:00:00.123456Z", "tenant": "acme", "action": "enroll",
     "collection": "acme__staff", "person_id": "p-1", "face_id": "", "faces": 3,
     "request_id": "5f0c...", "actor": "key:3a7bd3e2360a3d29", "detail": ""}

Sequences start at 1 and grow by one per event; times never go back (an event is never dated before the one
before it, whatever the clock does), so that ``since`` is a binary search. An append is one ``write`` of whole
lines followed by ``fsync`` before it returns (the folder is synced when a file is made), so an acknowledged
event survives a crash of the process or the machine. A crash in the middle of an append can leave a torn last
line (or a tail of zeros on some file systems): when a file is opened, everything after its last complete
line is cut off, so the record reads and grows as if the append had never begun (that call was never
acknowledged). A damaged line elsewhere is logged and skipped, never fatal.

Only the registry process opens these files (the data folder is locked). Each tenant's file is indexed in
memory on first use (sequence, time and offset of every line: 24 bytes an event), so a page is read from its
offset, not by scanning the file.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import re
import threading
from array import array
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from facerec_registry.audit import AuditAction, AuditEntry, AuditEvent, AuditPosition, AuditQuery, AuditSlice

log = logging.getLogger(__name__)

_PLAIN_TENANT = re.compile(r"[A-Za-z0-9_-]{1,64}")
# A page filtered by collection reads at most this many events (it then says where to resume), so that a call
# never reads a whole long record to find a rare collection's events.
_SCAN_LIMIT = 10_000
_READ_CHUNK = 1 << 20


def tenant_file_name(tenant: str) -> str:
    """The file of a tenant's record (see the module's docstring)."""
    if not tenant:
        return "no-tenant.jsonl"
    if _PLAIN_TENANT.fullmatch(tenant):
        return f"tenant-{tenant}.jsonl"
    return f"tenant-x{tenant.encode('utf-8').hex()}.jsonl"


def _micros(moment: datetime) -> int:
    delta = moment.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _moment(micros: int) -> datetime:
    return datetime.fromtimestamp(micros // 1_000_000, UTC).replace(microsecond=micros % 1_000_000)


def event_line(tenant: str, event: AuditEvent) -> bytes:
    """One event as a line of the file."""
    entry = event.entry
    fields: dict[str, Any] = {
        "seq": event.sequence,
        "time": event.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "tenant": tenant,
        "action": entry.action.name.lower(),
        "collection": entry.collection,
        "person_id": entry.person_id,
        "face_id": entry.face_id,
        "faces": entry.faces,
        "request_id": entry.request_id,
        "actor": entry.actor,
        "detail": entry.detail,
    }
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


def parse_line(line: bytes) -> AuditEvent:
    """The event of one line; ``ValueError`` (or ``KeyError``) when the line is not one."""
    fields = json.loads(line)
    time = datetime.strptime(str(fields["time"]), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    entry = AuditEntry(
        action=AuditAction[str(fields["action"]).upper()],
        collection=str(fields["collection"]),
        person_id=str(fields["person_id"]),
        face_id=str(fields["face_id"]),
        faces=int(fields["faces"]),
        request_id=str(fields["request_id"]),
        actor=str(fields["actor"]),
        detail=str(fields["detail"]),
    )
    return AuditEvent(sequence=int(fields["seq"]), time=time, entry=entry)


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class _TenantRecord:
    """One tenant's file and its in-memory index; thread-safe."""

    def __init__(self, path: Path, tenant: str) -> None:
        self.path = path
        self.tenant = tenant
        self.lock = threading.Lock()
        self.sequences = array("q")
        self.times = array("q")
        self.offsets = array("q")
        # Offset of the end of the last complete line: where the next append goes.
        self.end = 0
        self._open()

    def _open(self) -> None:
        if not self.path.exists():
            self.path.touch(mode=0o600)
            _fsync_folder(self.path.parent)
            return
        offset = 0
        with self.path.open("rb") as file:
            for line in file:  # streamed: a long record is never read into memory at once
                if not line.endswith(b"\n"):
                    break  # the unfinished tail
                try:
                    event = parse_line(line)
                except (ValueError, KeyError, TypeError):
                    log.error("audit record %s: skipping a damaged line at offset %d", self.path, offset)
                else:
                    if not self.sequences or event.sequence > self.sequences[-1]:
                        self._index(event, offset)
                    else:
                        log.error("audit record %s: skipping an out-of-order line at offset %d", self.path, offset)
                offset += len(line)
        self.end = offset
        size = self.path.stat().st_size
        if self.end < size:
            # What a crash left of an append that never finished: cut off, as if it had never begun.
            log.warning("audit record %s: removing %d bytes of an unfinished append", self.path, size - self.end)
            with self.path.open("r+b") as file:
                file.truncate(self.end)
                os.fsync(file.fileno())

    def _index(self, event: AuditEvent, offset: int) -> None:
        self.sequences.append(event.sequence)
        self.times.append(_micros(event.time))
        self.offsets.append(offset)

    def append(self, entries: Sequence[AuditEntry], now: datetime) -> list[AuditEvent]:
        with self.lock:
            sequence = self.sequences[-1] if self.sequences else 0
            micros = max(_micros(now), self.times[-1] if self.times else 0)
            events = [AuditEvent(sequence + i + 1, _moment(micros), entry) for i, entry in enumerate(entries)]
            lines = [event_line(self.tenant, event) for event in events]
            self._write(b"".join(lines))
            offset = self.end
            for event, line in zip(events, lines, strict=True):
                self._index(event, offset)
                offset += len(line)
            self.end = offset
            return events

    def _write(self, data: bytes) -> None:
        """Appends ``data`` at the end and syncs it; on failure nothing of it stays."""
        descriptor = os.open(self.path, os.O_WRONLY)
        try:
            try:
                written = 0
                while written < len(data):
                    written += os.pwrite(descriptor, data[written:], self.end + written)
                os.fsync(descriptor)
            except OSError:
                os.ftruncate(descriptor, self.end)
                raise
        finally:
            os.close(descriptor)

    def read(self, query: AuditQuery) -> AuditSlice:
        with self.lock:
            count, end = len(self.sequences), self.end
            start = 0
            if query.after is not None:
                start = bisect.bisect_right(self.sequences, query.after.sequence)
            if query.since is not None:
                start = max(start, bisect.bisect_left(self.times, _micros(query.since)))
        events: list[AuditEvent] = []
        scanned = 0
        last = 0
        for event in self._events(start, count, end):
            scanned += 1
            last = event.sequence
            if not query.collection or event.entry.collection == query.collection:
                events.append(event)
                if len(events) == query.limit:
                    break
            if scanned >= _SCAN_LIMIT:
                break
        more = start + scanned < count
        return AuditSlice(events=tuple(events), next=AuditPosition(last) if more else None)

    def _events(self, start: int, count: int, end: int) -> Iterator[AuditEvent]:
        """The indexed events from the ``start``-th on (of the first ``count``), read about a MiB at a time."""
        if start >= count:
            return
        descriptor = os.open(self.path, os.O_RDONLY)
        try:
            index = start
            while index < count:
                low = self.offsets[index]
                # The lines that start within one chunk's length (at least one).
                stop = bisect.bisect_right(self.offsets, low + _READ_CHUNK, index + 1, count)
                high = self.offsets[stop] if stop < count else end
                chunk = os.pread(descriptor, high - low, low)
                for line in range(index, stop):
                    begin = self.offsets[line] - low
                    yield parse_line(chunk[begin : chunk.index(b"\n", begin)])
                index = stop
        finally:
            os.close(descriptor)


class FileAuditLog:
    """``AuditLog`` in a folder of per-tenant JSON-lines files (only this process opens the folder)."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._records: dict[str, _TenantRecord] = {}

    def _record(self, tenant: str) -> _TenantRecord:
        with self._lock:
            record = self._records.get(tenant)
            if record is None:
                record = _TenantRecord(self._folder / tenant_file_name(tenant), tenant)
                self._records[tenant] = record
            return record

    def append(self, tenant: str, entries: Sequence[AuditEntry]) -> list[AuditEvent]:
        """Appends the entries to the tenant's file; returns once they are on disk."""
        if not entries:
            return []
        return self._record(tenant).append(entries, datetime.now(UTC))

    def read(self, query: AuditQuery) -> AuditSlice:
        """Events of the tenant's record from the query's position (a filtered reading stops after 10,000)."""
        if not (self._folder / tenant_file_name(query.tenant)).exists():
            return AuditSlice(events=(), next=None)
        return self._record(query.tenant).read(query)

    def close(self) -> None:
        """Nothing stays open between calls; forgets the indexes."""
        with self._lock:
            self._records.clear()
