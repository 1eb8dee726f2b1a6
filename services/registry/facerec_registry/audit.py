"""The audit record: who changed which enrolled data, when, and how much; per tenant, durable, read back in order.

Every write of the registry (collection changes, enrollment, face and person changes, erasure) and every
retention purge appends events here before it returns. An event holds ids, counts and short words only, never
a descriptor or an image. Where the record is kept depends on the store (``AuditLog``): beside the embedded
store's data, a file per tenant (``store/audit_file.py``); with a Qdrant server, which several registry replicas
share, in the server itself (``store/audit_server.py``), so that the replicas keep one record, not one each.

Pure data and rules here; nothing knows about gRPC or Qdrant.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from facerec import limits
from facerec.runtime.context import valid_request_id
from facerec_registry.errors import InvalidPageRequest

# The actor of the purges the registry runs by itself.
RETENTION_ACTOR = "registry:retention"


class AuditAction(enum.IntEnum):
    """What an event records; the numbers are those of ``facerec.v1.AuditAction``."""

    ENROLL = 1
    FACE_DELETE = 2
    FACE_MOVE = 3
    PERSON_UPDATE = 4
    PERSON_DELETE = 5
    RETENTION_PURGE = 6
    COLLECTION_CREATE = 7
    COLLECTION_UPDATE = 8
    COLLECTION_DELETE = 9


@dataclass(frozen=True)
class Caller:
    """Who a write acts for and which request made it, as the call's metadata named them."""

    actor: str = ""
    request_id: str = ""

    @classmethod
    def named(cls, actor: str, request_id: str) -> Caller:
        """A caller from untrusted metadata: a value that is not 1-128 printable ASCII characters is left out
        (it would make the record unreadable, or be someone's attempt to forge lines)."""
        return cls(
            actor=actor if valid_request_id(actor) else "",
            request_id=request_id if valid_request_id(request_id) else "",
        )


ANONYMOUS = Caller()
RETENTION = Caller(actor=RETENTION_ACTOR)


@dataclass(frozen=True)
class AuditEntry:
    """One change, as the registry reports it (the record gives it a sequence number and a time)."""

    action: AuditAction
    collection: str
    person_id: str = ""
    face_id: str = ""
    faces: int = 0
    request_id: str = ""
    actor: str = ""
    detail: str = ""


@dataclass(frozen=True)
class AuditEvent:
    """An entry as recorded: its position in the tenant's record (increasing with time) and when it was made."""

    sequence: int
    time: datetime
    entry: AuditEntry


@dataclass(frozen=True)
class AuditPosition:
    """Where a reading of a record resumes: after ``sequence``; ``seen`` holds the ids of events at exactly that
    sequence already returned (several registry replicas may record events in the same microsecond)."""

    sequence: int
    seen: tuple[str, ...] = ()


@dataclass(frozen=True)
class AuditQuery:
    """What to read of one tenant's record: events at or after ``since``, of one collection when given."""

    tenant: str
    since: datetime | None = None
    collection: str = ""
    limit: int = 100
    after: AuditPosition | None = None


@dataclass(frozen=True)
class AuditSlice:
    """Events read (oldest first), and where the next reading resumes (``None``: the record's end)."""

    events: tuple[AuditEvent, ...]
    next: AuditPosition | None


@dataclass(frozen=True)
class AuditPage:
    """One page of a tenant's record, oldest first; ``next_page_token`` is empty on the last page."""

    events: tuple[AuditEvent, ...]
    next_page_token: str


class AuditLog(Protocol):
    """Where the events of every tenant are kept. ``append`` returns once the events are durable."""

    def append(self, tenant: str, entries: Sequence[AuditEntry]) -> list[AuditEvent]:
        """Records the entries, in order, in the tenant's record; returns them as recorded."""
        ...

    def read(self, query: AuditQuery) -> AuditSlice:
        """Up to ``query.limit`` events of the query, oldest first (fewer when a reading stops early: the slice
        then says where to resume)."""
        ...

    def close(self) -> None:
        """Releases what the record holds open."""
        ...


def encode_audit_token(position: AuditPosition) -> str:
    """An opaque page token for a position in a record."""
    raw = json.dumps({"v": 1, "audit_after": position.sequence, "seen": list(position.seen)}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_audit_token(token: str) -> AuditPosition | None:
    """The position a page token names; ``None`` for the first page; ``InvalidPageRequest`` for a foreign one."""
    try:
        if not limits.check_page_token(token):
            return None
    except ValueError as error:
        raise InvalidPageRequest(str(error)) from error
    try:
        content = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        sequence, seen = content["audit_after"], content["seen"]
    except (binascii.Error, ValueError, KeyError, TypeError) as error:
        raise InvalidPageRequest("page_token was not issued by this registry for an audit listing") from error
    valid = (
        content.get("v") == 1
        and isinstance(sequence, int)
        and isinstance(seen, list)
        and all(isinstance(i, str) for i in seen)
    )
    if not valid:
        raise InvalidPageRequest("page_token was not issued by this registry for an audit listing")
    return AuditPosition(sequence=sequence, seen=tuple(seen))
