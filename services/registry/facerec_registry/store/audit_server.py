"""The server store's audit record: events kept in the Qdrant server itself, which every registry replica shares.

A file per replica would split the record (each replica would hold the events of the calls it happened to
serve); the server holds one record for all. The events of every tenant are payload-only points (no vector) of
one Qdrant collection, ``<prefix>audit.events`` (a dot is never part of a registry collection's name):

- point id: a random UUID per event, so replicas never overwrite each other's events;
- payload: the event's fields, its ``tenant``, and ``sequence``: the time of the event in microseconds since
  1970, made strictly increasing within a replica (a later event of the same replica never gets a smaller or
  equal one, whatever the clock does);
- payload indexes: ``tenant`` (keyword, Qdrant's tenant index), ``collection`` (keyword), ``sequence``
  (integer with range: the ``since`` filter, and Qdrant's ``order_by`` gives the record oldest first).

Two replicas may record events in the same microsecond: a page token therefore holds the last sequence read and
the ids of the events at exactly that sequence already returned, and the next page excludes them (rare; a
handful of ids). An event another replica writes with a clock behind this one's may appear behind a position
already read: replicas' clocks should be kept in step (NTP), as for any time-ordered record.

Every write passes ``wait=True``: the call returns once the server has applied it; how durable that is, is the
server's (its WAL, and ``replication_factor`` copies on a cluster), as for the faces themselves.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import grpc
from qdrant_client import QdrantClient
from qdrant_client import models as qm
from qdrant_client.http.exceptions import UnexpectedResponse

from facerec_registry.audit import AuditAction, AuditEntry, AuditEvent, AuditPosition, AuditQuery, AuditSlice
from facerec_registry.store.base import StoreConfig
from facerec_registry.store.server_errors import already_exists, translated_errors

AUDIT_COLLECTION = "audit.events"
SEQUENCE = "sequence"
TENANT = "tenant"
COLLECTION = "collection"


def micros(moment: datetime) -> int:
    """Microseconds since 1970 (UTC), exactly."""
    delta = moment.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def moment(micros_since_1970: int) -> datetime:
    """The UTC time of a sequence."""
    seconds, rest = divmod(micros_since_1970, 1_000_000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest)


def audit_indexes() -> dict[str, qm.KeywordIndexParams | qm.IntegerIndexParams]:
    """Payload indexes of the audit collection."""
    return {
        TENANT: qm.KeywordIndexParams(type=qm.KeywordIndexType.KEYWORD, is_tenant=True),
        COLLECTION: qm.KeywordIndexParams(type=qm.KeywordIndexType.KEYWORD),
        SEQUENCE: qm.IntegerIndexParams(type=qm.IntegerIndexType.INTEGER, lookup=False, range=True),
    }


def _event_payload(tenant: str, sequence: int, entry: AuditEntry) -> dict[str, Any]:
    return {
        TENANT: tenant,
        SEQUENCE: sequence,
        "action": entry.action.name.lower(),
        COLLECTION: entry.collection,
        "person_id": entry.person_id,
        "face_id": entry.face_id,
        "faces": entry.faces,
        "request_id": entry.request_id,
        "actor": entry.actor,
        "detail": entry.detail,
    }


def _event(payload: dict[str, Any]) -> AuditEvent:
    entry = AuditEntry(
        action=AuditAction[str(payload["action"]).upper()],
        collection=str(payload[COLLECTION]),
        person_id=str(payload["person_id"]),
        face_id=str(payload["face_id"]),
        faces=int(payload["faces"]),
        request_id=str(payload["request_id"]),
        actor=str(payload["actor"]),
        detail=str(payload["detail"]),
    )
    sequence = int(payload[SEQUENCE])
    return AuditEvent(sequence=sequence, time=moment(sequence), entry=entry)


class ServerAuditLog:
    """``AuditLog`` in one Qdrant collection of the server (shared by every replica)."""

    def __init__(
        self, client: QdrantClient, config: StoreConfig, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._client = client
        self._config = config
        self._clock = clock
        self.collection_name = f"{config.server_collection_prefix}{AUDIT_COLLECTION}"
        self._lock = threading.Lock()
        self._last_sequence = 0
        self._ready = False

    def _ensure_collection(self) -> None:
        """Creates the audit collection and its indexes once per process (another replica may have)."""
        if self._ready:
            return
        if not self._client.collection_exists(self.collection_name):
            try:
                self._client.create_collection(
                    self.collection_name,
                    vectors_config={},
                    shard_number=self._config.shard_number,
                    replication_factor=self._config.replication_factor,
                )
            except (UnexpectedResponse, grpc.RpcError, ValueError) as error:
                if not already_exists(error):
                    raise
        for field, index in audit_indexes().items():
            self._client.create_payload_index(self.collection_name, field, field_schema=index, wait=True)
        self._ready = True

    def _next_sequences(self, count: int) -> list[int]:
        with self._lock:
            first = max(micros(self._clock()), self._last_sequence + 1)
            self._last_sequence = first + count - 1
        return list(range(first, first + count))

    def append(self, tenant: str, entries: Sequence[AuditEntry]) -> list[AuditEvent]:
        """Writes the entries as points; returns once the server has applied them."""
        if not entries:
            return []
        sequences = self._next_sequences(len(entries))
        points = [
            qm.PointStruct(id=str(uuid.uuid4()), vector={}, payload=_event_payload(tenant, sequence, entry))
            for sequence, entry in zip(sequences, entries, strict=True)
        ]
        with translated_errors():
            self._ensure_collection()
            self._client.upsert(self.collection_name, points=points, wait=True)
        return [AuditEvent(s, moment(s), e) for s, e in zip(sequences, entries, strict=True)]

    def read(self, query: AuditQuery) -> AuditSlice:
        """One ordered scroll of the tenant's events from the query's position."""
        must: list[qm.Condition] = [qm.FieldCondition(key=TENANT, match=qm.MatchValue(value=query.tenant))]
        if query.collection:
            must.append(qm.FieldCondition(key=COLLECTION, match=qm.MatchValue(value=query.collection)))
        low = micros(query.since) if query.since is not None else None
        if query.after is not None:
            low = query.after.sequence if low is None else max(low, query.after.sequence)
        if low is not None:
            must.append(qm.FieldCondition(key=SEQUENCE, range=qm.Range(gte=low)))
        seen = set(query.after.seen) if query.after is not None else set()
        must_not: list[qm.Condition] = [qm.HasIdCondition(has_id=sorted(seen))] if seen else []
        with translated_errors():
            self._ensure_collection()
            points, _ = self._client.scroll(
                self.collection_name,
                scroll_filter=qm.Filter(must=must, must_not=must_not or None),
                order_by=qm.OrderBy(key=SEQUENCE, direction=qm.Direction.ASC),
                limit=query.limit + 1,
                with_payload=True,
            )
        events = [_event(dict(p.payload or {})) for p in points[: query.limit]]
        if len(points) <= query.limit:
            return AuditSlice(events=tuple(events), next=None)
        last = events[-1].sequence
        ties = [str(p.id) for p in points[: query.limit] if int((p.payload or {})[SEQUENCE]) == last]
        # Events at the position's own sequence seen on earlier pages stay excluded.
        carried = sorted(seen) if query.after is not None and query.after.sequence == last else []
        return AuditSlice(events=tuple(events), next=AuditPosition(sequence=last, seen=(*carried, *ties)))

    def drop(self) -> None:
        """Deletes the whole record, every tenant's (for tests on a shared server: their prefix's record)."""
        with translated_errors():
            self._client.delete_collection(self.collection_name)
        self._ready = False

    def close(self) -> None:
        """The client belongs to the store, which closes it."""
        return None
