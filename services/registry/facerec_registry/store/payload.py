"""How a face is laid out as a Qdrant point; shared by the embedded and the server store.

Point id: ``uuid5(FACE_NAMESPACE, face_id)``, so a retried upsert lands on the same point (Qdrant takes only
UUIDs or integers as ids). Payload: the face's ids, model and metadata, plus its person's attributes copied
on each face. Copying the attributes keeps search answers (display names) one read, and erasing a person is
deleting their points, with no second store to keep in step; an update rewrites them on every face of the
person (a handful). Metadata is also kept as ``'["key", "value"]'`` strings in ``metadata_pairs`` so that an exact
metadata filter is a keyword match on one indexed array field, whatever characters the keys contain.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np

from facerec_registry.domain import FaceRecord, PersonAttributes, Vector
from facerec_registry.store.base import FaceSummary, ScoredFace, StoredFace

FACE_NAMESPACE = uuid.UUID("6f1d3c52-7f0e-4a5e-9a41-2b8f3f6c9d10")
PERSON_NAMESPACE = uuid.UUID("0b7e4a39-4c1d-5f60-8d2e-9a3c7b1e5f42")

PERSON_ID = "person_id"
FACE_ID = "face_id"
METADATA_PAIRS = "metadata_pairs"
DISPLAY_NAME = "display_name"
PERSON_METADATA = "person_metadata"
ENROLLED_AT = "enrolled_at"
# Payload fields indexed as keywords: person listing, erasure and grouping filter on the person id;
# metadata filters match pairs.
KEYWORD_INDEXES = (PERSON_ID, METADATA_PAIRS)
# Indexed as a datetime (RFC 3339, as ``datetime.isoformat`` writes it): the retention purge finds the faces
# enrolled before its cut-off with a range on it, never by reading every face.
DATETIME_INDEXES = (ENROLLED_AT,)
# The purge's candidates are checked for a newer face this many at a time (a facet over the newer faces of a
# MatchAny of them). A facet's cost grows faster than its MatchAny: measured with qdrant-edge-py 0.9.0 on 900
# candidates among 30k faces, 0.75 s in one request, 0.14 s in chunks of 100, 0.07 s in chunks of 10.
RETENTION_CHECK_CHUNK = 32


# A person's marker point (the server store's people directory) holds the person id, and the id's UTF-8
# bytes as integers of PERSON_KEY_BYTES bytes each, in fields "person_key_0", "person_key_1", ... Qdrant has
# no order or range on keywords, but it has integer ranges: comparing these integers one after the other
# compares the ids (UTF-8 byte order is code point order, Python's string order; person ids hold no control
# character, so the zero padding of the last integer sorts before any real byte). Six bytes: Qdrant's range
# bounds are float64, exact for integers below 2**53.
PERSON_KEY_BYTES = 6
PERSON_KEY_PREFIX = "person_key_"


def point_id(face_id: str) -> str:
    """The deterministic point id of a face."""
    return str(uuid.uuid5(FACE_NAMESPACE, face_id))


def person_point_id(person_id: str) -> str:
    """The deterministic point id of a person's marker."""
    return str(uuid.uuid5(PERSON_NAMESPACE, person_id))


def person_key(person_id: str) -> list[int]:
    """The person id's order key: its UTF-8 bytes, ``PERSON_KEY_BYTES`` to an integer, the last zero-padded."""
    raw = person_id.encode("utf-8")
    step = PERSON_KEY_BYTES
    return [int.from_bytes(raw[i : i + step].ljust(step, b"\0"), "big") for i in range(0, len(raw), step)]


def person_marker_payload(person_id: str) -> dict[str, Any]:
    """The payload of a person's marker point: the id and its order key."""
    key = {f"{PERSON_KEY_PREFIX}{i}": part for i, part in enumerate(person_key(person_id))}
    return {PERSON_ID: person_id, **key}


def metadata_pair(key: str, value: str) -> str:
    """The keyword that stands for one metadata entry; JSON keeps ("a=b", "c") apart from ("a", "b=c")."""
    return json.dumps([key, value], ensure_ascii=False)


def face_payload(stored: StoredFace, enrolled_at: datetime) -> dict[str, Any]:
    """The payload of a face's point."""
    face = stored.face
    return {
        FACE_ID: face.face_id,
        PERSON_ID: face.person_id,
        "model_id": face.model_id,
        "metadata": dict(face.metadata),
        METADATA_PAIRS: [metadata_pair(k, v) for k, v in sorted(face.metadata.items())],
        ENROLLED_AT: enrolled_at.astimezone(UTC).isoformat(),
        **person_payload(stored.person),
    }


def datetime_bound(moment: datetime) -> str:
    """A time as a bound of a datetime range on ``enrolled_at`` (the form the payload holds)."""
    return moment.astimezone(UTC).isoformat()


def person_payload(person: PersonAttributes) -> dict[str, Any]:
    """The part of a face's payload that holds its person's attributes."""
    return {DISPLAY_NAME: person.display_name, PERSON_METADATA: dict(person.metadata)}


def face_summary(payload: Mapping[str, Any]) -> FaceSummary:
    """The face id and person attributes held in a point's payload."""
    person = PersonAttributes(
        person_id=str(payload[PERSON_ID]),
        display_name=str(payload.get(DISPLAY_NAME, "")),
        metadata={str(k): str(v) for k, v in dict(payload.get(PERSON_METADATA) or {}).items()},
    )
    return FaceSummary(face_id=str(payload[FACE_ID]), person=person)


def scored_face(payload: Mapping[str, Any] | None, distance: float) -> ScoredFace:
    """A search hit from its payload and its score (the euclidean distance, in both Qdrant flavours)."""
    fields = payload or {}
    return ScoredFace(str(fields[FACE_ID]), str(fields[PERSON_ID]), float(distance), str(fields.get(DISPLAY_NAME, "")))


def face_record(payload: Mapping[str, Any], embedding: Vector | None) -> FaceRecord:
    """The stored face held in a point's payload, with its descriptor when given (else an empty one)."""
    enrolled_at = payload.get(ENROLLED_AT)
    return FaceRecord(
        face_id=str(payload[FACE_ID]),
        person_id=str(payload[PERSON_ID]),
        embedding=np.zeros(0, dtype=np.float32) if embedding is None else embedding,
        model_id=str(payload.get("model_id", "")),
        metadata={str(k): str(v) for k, v in dict(payload.get("metadata") or {}).items()},
        enrolled_at=datetime.fromisoformat(str(enrolled_at)).astimezone(UTC) if enrolled_at else None,
    )
