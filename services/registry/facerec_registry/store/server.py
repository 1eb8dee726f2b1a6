"""The production store: a Qdrant server or cluster through ``qdrant-client`` (gRPC, API key, TLS).

Each registry collection is one Qdrant collection named ``<prefix><name>``; the registry's settings for it
(model id, dimension, threshold, tenant, creation time) live in that Qdrant collection's ``metadata``, so
the server holds the whole catalog and registry replicas stay stateless. One Qdrant collection per gallery
keeps erasure and deletion of a gallery simple and lets each have its own shards; a payload index on the
person id serves listing, erasure and grouping.

People: each gallery has a companion Qdrant collection ``<prefix><name>.people`` (a dot is never part of a
registry name) with one payload-only marker point per person who has a face. Counting people is counting
markers; a page of people walks the markers in id order through the integer parts of ``payload.person_key``
(Qdrant orders and ranges integers, not keywords): a scroll ordered by the first part, from the last id
listed, and where the page ends among ids sharing that part, the same one level deeper (see
``_people_in``). No request reads every face or every person, and replicas share the directory through the
server. (An exact facet over the markers would also come in id order, but takes 2.2 s at 100k people with
qdrant-edge-py, the same engine; an approximate one is not in id order.)
A marker is written before and again after its person's faces (a crash in between leaves a marker, never a
face without one), and removed once a count finds no face left; that count is repeated after the removal so
that a face written meanwhile by another replica restores it.

The audit record lives in the server too (``audit_server.py``), so that every replica writes one record.
Erased faces: Qdrant drops deleted points from a segment's files when its vacuum optimizer rewrites the segment
(once ``deleted_threshold`` of it, a fifth by default, is deleted) and from its WAL when the WAL rolls over; the
server does this by itself (``compact`` has nothing to start).

Every write passes ``wait=True``: the call returns once the server has applied it. Connection failures are
translated into ``StoreUnavailable`` at this boundary.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import grpc
import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as qm
from qdrant_client.http.exceptions import UnexpectedResponse

from facerec_registry.domain import Collection, FaceRecord, PersonAttributes
from facerec_registry.errors import CollectionNotFound
from facerec_registry.store import payload
from facerec_registry.store.audit_server import ServerAuditLog
from facerec_registry.store.base import FaceSummary, ScoredFace, StoreConfig, StoredFace, VectorQuery
from facerec_registry.store.server_errors import already_exists, translated_errors

log = logging.getLogger(__name__)

_SCROLL_PAGE = 1000
_RESULT_FIELDS = [payload.FACE_ID, payload.PERSON_ID, payload.DISPLAY_NAME]
PEOPLE_SUFFIX = ".people"
# Order-key parts with an integer index (the first 4 x 6 bytes of an id). Below them, people whose ids share a
# 24-byte prefix are read together and sorted here.
_INDEXED_KEY_PARTS = 4


def client_options(config: StoreConfig) -> dict[str, Any]:
    """Keyword arguments of ``QdrantClient`` for a server: gRPC preferred, API key, TLS, timeout."""
    return {
        "url": config.qdrant_url,
        "grpc_port": config.grpc_port,
        "api_key": config.api_key,
        "https": config.https,
        "prefer_grpc": True,
        "timeout": config.timeout_s,
    }


def collection_options(collection: Collection, config: StoreConfig) -> dict[str, Any]:
    """Keyword arguments of ``create_collection`` for a gallery: euclidean distance, HNSW, int8, shards."""
    quantization = (
        qm.ScalarQuantization(
            scalar=qm.ScalarQuantizationConfig(type=qm.ScalarType.INT8, quantile=0.99, always_ram=True)
        )
        if config.int8_quantization
        else None
    )
    return {
        "vectors_config": qm.VectorParams(size=collection.dimension, distance=qm.Distance.EUCLID),
        "hnsw_config": qm.HnswConfigDiff(m=config.hnsw_m, ef_construct=config.hnsw_ef_construct),
        "quantization_config": quantization,
        "shard_number": config.shard_number,
        "replication_factor": config.replication_factor,
        "metadata": _collection_metadata(collection),
    }


def payload_indexes() -> dict[str, qm.KeywordIndexParams | qm.DatetimeIndexParams]:
    """Payload indexes every gallery gets: keyword indexes on the person id and the metadata pairs, a datetime
    index on the enrollment time (the retention purge's range)."""
    indexes: dict[str, qm.KeywordIndexParams | qm.DatetimeIndexParams] = {
        field: qm.KeywordIndexParams(type=qm.KeywordIndexType.KEYWORD) for field in payload.KEYWORD_INDEXES
    }
    for field in payload.DATETIME_INDEXES:
        indexes[field] = qm.DatetimeIndexParams(type=qm.DatetimeIndexType.DATETIME)
    return indexes


def people_indexes() -> dict[str, qm.KeywordIndexParams | qm.IntegerIndexParams]:
    """Payload indexes of a gallery's people directory: the person id, and the first parts of its order key."""
    indexes: dict[str, qm.KeywordIndexParams | qm.IntegerIndexParams] = {
        payload.PERSON_ID: qm.KeywordIndexParams(type=qm.KeywordIndexType.KEYWORD)
    }
    for part in range(_INDEXED_KEY_PARTS):
        indexes[f"{payload.PERSON_KEY_PREFIX}{part}"] = qm.IntegerIndexParams(
            type=qm.IntegerIndexType.INTEGER, lookup=True, range=True
        )
    return indexes


def _key_field(part: int) -> str:
    return f"{payload.PERSON_KEY_PREFIX}{part}"


def _key_starts_with(prefix: Sequence[int]) -> list[qm.Condition]:
    return [qm.FieldCondition(key=_key_field(i), match=qm.MatchValue(value=part)) for i, part in enumerate(prefix)]


def _has_key_part(part: int) -> qm.Condition:
    return qm.FieldCondition(key=_key_field(part), range=qm.Range(gte=0))


def people_after_filter(person_id: str) -> qm.Filter:
    """Markers of people whose id sorts after ``person_id``: the order keys compared part by part."""
    key = payload.person_key(person_id)
    # Greater at the first part that differs, or equal throughout and longer.
    should: list[qm.Condition] = [
        qm.Filter(must=[*_key_starts_with(key[:i]), qm.FieldCondition(key=_key_field(i), range=qm.Range(gt=key[i]))])
        for i in range(len(key))
    ]
    should.append(qm.Filter(must=[*_key_starts_with(key), _has_key_part(len(key))]))
    return qm.Filter(should=should)


def _person_with_key(key: Sequence[int]) -> str | None:
    """The person id whose order key is exactly ``key``, if those bytes are one."""
    raw = b"".join(part.to_bytes(payload.PERSON_KEY_BYTES, "big") for part in key).rstrip(b"\0")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def search_params(config: StoreConfig, distinct_people: bool = False) -> qm.SearchParams:
    """Search parameters: beam width (wider when the registry looks for distinct people), and with int8
    quantization a rescore of oversampled candidates."""
    quantization = (
        qm.QuantizationSearchParams(rescore=True, oversampling=config.quantization_oversampling)
        if config.int8_quantization
        else None
    )
    return qm.SearchParams(hnsw_ef=config.search_ef(distinct_people), quantization=quantization)


def _collection_metadata(collection: Collection) -> dict[str, Any]:
    return {
        "facerec_collection": {
            "name": collection.name,
            "model_id": collection.model_id,
            "dimension": collection.dimension,
            "default_threshold": collection.default_threshold,
            "tenant": collection.tenant,
            "created_at": collection.created_at.isoformat(),
            "target_fpir": collection.target_fpir,
            "min_margin": collection.min_margin,
            "retention_seconds": collection.retention_seconds,
            "transient": collection.transient,
        }
    }


def _collection_from_metadata(metadata: dict[str, Any] | None) -> Collection | None:
    fields = (metadata or {}).get("facerec_collection")
    if not isinstance(fields, dict):
        return None
    return Collection(
        name=str(fields["name"]),
        model_id=str(fields["model_id"]),
        dimension=int(fields["dimension"]),
        default_threshold=float(fields["default_threshold"]),
        tenant=str(fields["tenant"]),
        created_at=datetime.fromisoformat(str(fields["created_at"])).astimezone(UTC),
        # Galleries made before these settings existed have none: a fixed threshold, no margin rule.
        target_fpir=float(fields.get("target_fpir", 0.0)),
        min_margin=float(fields.get("min_margin", 0.0)),
        retention_seconds=int(fields.get("retention_seconds", 0)),
        transient=bool(fields.get("transient", False)),
    )


def _person_filter(person_ids: Sequence[str]) -> qm.Filter:
    return qm.Filter(must=[qm.FieldCondition(key=payload.PERSON_ID, match=qm.MatchAny(any=list(person_ids)))])


def _enrolled(before: datetime | None = None, since: datetime | None = None) -> qm.FieldCondition:
    """Faces enrolled before ``before`` and/or at or after ``since`` (a range on the indexed enrollment time)."""
    return qm.FieldCondition(
        key=payload.ENROLLED_AT,
        range=qm.DatetimeRange(lt=before, gte=since),
    )


def _query_filter(query: VectorQuery) -> qm.Filter | None:
    must: list[qm.Condition] = [
        qm.FieldCondition(key=payload.METADATA_PAIRS, match=qm.MatchValue(value=payload.metadata_pair(k, v)))
        for k, v in sorted(query.metadata_filter.items())
    ]
    if query.person_id:
        must.append(qm.FieldCondition(key=payload.PERSON_ID, match=qm.MatchValue(value=query.person_id)))
    must_not: list[qm.Condition] = (
        [qm.FieldCondition(key=payload.PERSON_ID, match=qm.MatchAny(any=sorted(query.exclude_people)))]
        if query.exclude_people
        else []
    )
    if not must and not must_not:
        return None
    return qm.Filter(must=must or None, must_not=must_not or None)


class ServerFaceStore:
    """``FaceStore`` over a Qdrant server. ``client`` may be given (tests use qdrant-client's local mode)."""

    # Registry replicas share the server: another one may change or delete a collection at any time.
    exclusive = False

    def __init__(self, config: StoreConfig, client: QdrantClient | None = None) -> None:
        self._config = config
        self._client = client if client is not None else QdrantClient(**client_options(config))
        # Made once: by whether the query is for distinct people.
        self._search_params = {people: search_params(config, people) for people in (False, True)}
        # Galleries whose people directory this process has seen (or built: see ``_ensure_people_directory``).
        self._directories: set[str] = set()
        self.audit = ServerAuditLog(self._client, config)

    def _qdrant_name(self, name: str) -> str:
        return f"{self._config.server_collection_prefix}{name}"

    def _people_name(self, name: str) -> str:
        return f"{self._qdrant_name(name)}{PEOPLE_SUFFIX}"

    # --- collections ---------------------------------------------------------------------------------

    def create_collection(self, collection: Collection) -> Collection:
        """Creates the Qdrant collection and its payload indexes, or returns the existing collection."""
        existing = self.get_collection(collection.name)
        if existing is not None:
            return existing
        qdrant_name = self._qdrant_name(collection.name)
        with translated_errors():
            try:
                self._client.create_collection(qdrant_name, **collection_options(collection, self._config))
            except (UnexpectedResponse, grpc.RpcError) as error:
                # Another registry replica created it first (409 over REST, ALREADY_EXISTS over gRPC):
                # theirs stands.
                if not already_exists(error):
                    raise
            for field, index in payload_indexes().items():
                self._client.create_payload_index(qdrant_name, field, field_schema=index, wait=True)
            self._create_people_directory(collection.name)
        return self.get_collection(collection.name) or collection

    def _create_people_directory(self, name: str) -> None:
        people_name = self._people_name(name)
        try:
            # Payload-only points: no vector is ever searched here.
            self._client.create_collection(
                people_name,
                vectors_config={},
                shard_number=self._config.shard_number,
                replication_factor=self._config.replication_factor,
            )
        except (UnexpectedResponse, grpc.RpcError) as error:
            if not already_exists(error):
                raise
        for field, index in people_indexes().items():
            self._client.create_payload_index(people_name, field, field_schema=index, wait=True)

    def get_collection(self, name: str) -> Collection | None:
        """The collection as recorded in its Qdrant collection's metadata, or ``None``."""
        qdrant_name = self._qdrant_name(name)
        # One call, not an existence check and then a read: a missing collection is an error to translate.
        try:
            with translated_errors(name):
                info = self._client.get_collection(qdrant_name)
        except CollectionNotFound:
            return None
        with translated_errors():
            collection = _collection_from_metadata(info.config.metadata)
            if collection is not None and name not in self._directories:
                self._ensure_people_directory(name)
        return collection

    def _ensure_people_directory(self, name: str) -> None:
        """Builds the people directory of a gallery created before galleries had one (once per process).

        Every face's person id is read once (a scroll of payloads: about a minute per million faces) and each
        person marked; markers are idempotent, so replicas that do it at the same time agree. Writes made
        meanwhile mark their people themselves.
        """
        # A gallery made before the retention purge has no index on the enrollment time (idempotent).
        for field in payload.DATETIME_INDEXES:
            self._client.create_payload_index(
                self._qdrant_name(name), field, field_schema=payload_indexes()[field], wait=True
            )
        if not self._client.collection_exists(self._people_name(name)):
            log.warning("gallery %r has no people directory (made before it existed): building it", name)
            self._create_people_directory(name)
            offset: Any = None
            while True:
                faces, offset = self._client.scroll(
                    self._qdrant_name(name), limit=_SCROLL_PAGE, offset=offset, with_payload=[payload.PERSON_ID]
                )
                self._mark_people(name, sorted({str((f.payload or {})[payload.PERSON_ID]) for f in faces}))
                if offset is None:
                    break
        self._directories.add(name)

    def list_collections(self) -> list[Collection]:
        """Every registry collection on the server (Qdrant collections with our prefix and metadata)."""
        prefix = self._config.server_collection_prefix
        with translated_errors():
            # A registry name never holds a dot: names with one are companions (people, audit).
            names = [
                c.name
                for c in self._client.get_collections().collections
                if c.name.startswith(prefix) and "." not in c.name.removeprefix(prefix)
            ]
        found = (self.get_collection(name.removeprefix(prefix)) for name in names)
        return [collection for collection in found if collection is not None]

    def update_collection(self, collection: Collection) -> Collection | None:
        """Replaces the settings kept in the Qdrant collection's metadata; ``None`` when absent."""
        if self.get_collection(collection.name) is None:
            return None
        with translated_errors(collection.name):
            self._client.update_collection(
                self._qdrant_name(collection.name), metadata=_collection_metadata(collection)
            )
        return self.get_collection(collection.name)

    def delete_collection(self, name: str) -> int:
        """Drops the Qdrant collection; returns how many faces it held."""
        if self.get_collection(name) is None:
            return 0
        faces = self.count_faces(name)
        with translated_errors():
            self._client.delete_collection(self._qdrant_name(name))
            self._client.delete_collection(self._people_name(name))
        self._directories.discard(name)
        return faces

    # --- faces ---------------------------------------------------------------------------------------

    def upsert_faces(self, name: str, faces: Sequence[StoredFace]) -> None:
        """Upserts the faces as points with deterministic ids; returns once the server applied them."""
        now = datetime.now(UTC)
        points = [
            qm.PointStruct(
                id=payload.point_id(stored.face.face_id),
                vector=stored.face.embedding.tolist(),
                payload=payload.face_payload(stored, stored.face.enrolled_at or now),
            )
            for stored in faces
        ]
        qdrant_name = self._qdrant_name(name)
        people = sorted({stored.face.person_id for stored in faces})
        with translated_errors(name):
            # A face id written again may have belonged to someone else, who may then have no face left.
            found = self._client.retrieve(
                qdrant_name, ids=[point.id for point in points], with_payload=[payload.PERSON_ID], with_vectors=False
            )
            former = {str((record.payload or {})[payload.PERSON_ID]) for record in found} - set(people)
            self._mark_people(name, people)
            self._client.upsert(qdrant_name, points=points, wait=True)
            self._mark_people(name, people)
            for person_id in sorted(former):
                self._unmark_if_faceless(name, person_id)

    def set_person_attributes(self, name: str, person: PersonAttributes) -> None:
        """Rewrites the person's attributes on each of their faces."""
        with translated_errors():
            self._client.set_payload(
                self._qdrant_name(name),
                payload=payload.person_payload(person),
                points=_person_filter([person.person_id]),
                wait=True,
            )

    def search(self, name: str, queries: Sequence[VectorQuery]) -> list[list[ScoredFace]]:
        """Nearest faces for each query in one batch call. Qdrant's Euclid score is the distance."""
        requests = [
            qm.QueryRequest(
                query=query.vector.tolist(),
                limit=query.limit,
                filter=_query_filter(query),
                score_threshold=query.max_distance,
                params=self._search_params[query.distinct_people],
                with_payload=_RESULT_FIELDS,
            )
            for query in queries
        ]
        with translated_errors(name):
            responses = self._client.query_batch_points(self._qdrant_name(name), requests=requests)
        return [
            [payload.scored_face(point.payload, point.score) for point in response.points] for response in responses
        ]

    def face(self, name: str, face_id: str) -> FaceRecord | None:
        """The face of that id, with its descriptor; ``None`` when absent."""
        with translated_errors(name):
            found = self._client.retrieve(
                self._qdrant_name(name), ids=[payload.point_id(face_id)], with_payload=True, with_vectors=True
            )
        if not found:
            return None
        return payload.face_record(found[0].payload or {}, np.asarray(found[0].vector, dtype=np.float32))

    def delete_face(self, name: str, face_id: str) -> str | None:
        """Deletes one face by id; returns whose it was."""
        point = payload.point_id(face_id)
        qdrant_name = self._qdrant_name(name)
        with translated_errors():
            found = self._client.retrieve(
                qdrant_name, ids=[point], with_payload=[payload.PERSON_ID], with_vectors=False
            )
            if not found:
                return None
            owner = str((found[0].payload or {})[payload.PERSON_ID])
            self._client.delete(qdrant_name, points_selector=qm.PointIdsList(points=[point]), wait=True)
            self._unmark_if_faceless(name, owner)
        return owner

    def delete_person(self, name: str, person_id: str) -> int:
        """Deletes every face of the person; returns how many there were."""
        qdrant_name = self._qdrant_name(name)
        person = _person_filter([person_id])
        with translated_errors():
            faces = self._client.count(qdrant_name, count_filter=person, exact=True).count
            if faces:
                self._client.delete(qdrant_name, points_selector=qm.FilterSelector(filter=person), wait=True)
            self._unmark_if_faceless(name, person_id)
        return int(faces)

    def expired_people(self, name: str, cutoff: datetime, limit: int) -> list[str]:
        """People with faces enrolled before the cut-off (a facet over those faces only), less those with a newer
        face (a facet over the newer faces of the candidates only)."""
        with translated_errors(name):
            candidates = self._people_among(name, qm.Filter(must=[_enrolled(before=cutoff)]))
            kept: set[str] = set()
            ordered = sorted(candidates)
            for start in range(0, len(ordered), payload.RETENTION_CHECK_CHUNK):
                chunk = ordered[start : start + payload.RETENTION_CHECK_CHUNK]
                newer = qm.Filter(
                    must=[
                        qm.FieldCondition(key=payload.PERSON_ID, match=qm.MatchAny(any=chunk)),
                        _enrolled(since=cutoff),
                    ]
                )
                kept |= self._people_among(name, newer)
        return sorted(candidates - kept)[:limit]

    def _people_among(self, name: str, faces_filter: qm.Filter) -> set[str]:
        qdrant_name = self._qdrant_name(name)
        faces = int(self._client.count(qdrant_name, count_filter=faces_filter, exact=True).count)
        if faces == 0:
            return set()
        hits = self._client.facet(
            qdrant_name, key=payload.PERSON_ID, facet_filter=faces_filter, limit=faces, exact=True
        )
        return {str(hit.value) for hit in hits.hits if hit.count > 0}

    def purge_person(self, name: str, person_id: str, cutoff: datetime) -> int:
        """Deletes the person's faces enrolled before the cut-off if none was enrolled since.

        Only the older faces are deleted: a face another replica writes between the check and the delete stays.
        Several replicas purging the same person delete each face once: the others count 0."""
        qdrant_name = self._qdrant_name(name)
        person = qm.FieldCondition(key=payload.PERSON_ID, match=qm.MatchValue(value=person_id))
        older = qm.Filter(must=[person, _enrolled(before=cutoff)])
        with translated_errors(name):
            newer = qm.Filter(must=[person, _enrolled(since=cutoff)])
            if self._client.count(qdrant_name, count_filter=newer, exact=True).count:
                return 0
            faces = int(self._client.count(qdrant_name, count_filter=older, exact=True).count)
            if faces:
                self._client.delete(qdrant_name, points_selector=qm.FilterSelector(filter=older), wait=True)
            self._unmark_if_faceless(name, person_id)
        return faces

    def compact(self, name: str) -> bool:
        """Nothing to start: the server's vacuum optimizer drops deleted points by itself (see the module)."""
        return False

    # --- people directory --------------------------------------------------------------------------------

    def _mark_people(self, name: str, person_ids: Sequence[str]) -> None:
        markers = [
            qm.PointStruct(id=payload.person_point_id(p), vector={}, payload=payload.person_marker_payload(p))
            for p in person_ids
        ]
        if markers:
            self._client.upsert(self._people_name(name), points=markers, wait=True)

    def _faces_of_person(self, name: str, person_id: str) -> int:
        return int(
            self._client.count(self._qdrant_name(name), count_filter=_person_filter([person_id]), exact=True).count
        )

    def _unmark_if_faceless(self, name: str, person_id: str) -> None:
        """Removes the person's marker when they have no face left; restores it if a face came meanwhile."""
        if self._faces_of_person(name, person_id):
            return
        marker = qm.PointIdsList(points=[payload.person_point_id(person_id)])
        self._client.delete(self._people_name(name), points_selector=marker, wait=True)
        # Another replica may have written a face (and then its marker) between the count and the delete.
        if self._faces_of_person(name, person_id):
            self._mark_people(name, [person_id])

    def count_people(self, name: str) -> int:
        """Number of people with a face: the markers of the gallery's people directory."""
        with translated_errors():
            return int(self._client.count(self._people_name(name), exact=True).count)

    def people_after(self, name: str, after: str | None, limit: int) -> list[str]:
        """The next ``limit`` person ids after ``after``, walking the markers in order (see ``_people_in``)."""
        with translated_errors():
            return self._people_in(name, [], after, limit)

    def _people_in(self, name: str, prefix: list[int], after: str | None, limit: int) -> list[str]:
        """Up to ``limit`` ids after ``after`` among people whose order key starts with ``prefix``, ascending.

        One scroll ordered by the next key part reads ``limit + 1`` markers: the ones before the last value
        read are complete groups of that part (sorted here); where the page ends inside the last group, the
        same runs one part deeper within it. Each level reads at most ``limit + 1`` markers.
        """
        if limit <= 0:
            return []
        found: list[str] = []
        # The id whose key is the prefix itself sorts before every longer one (it has no next part).
        exact = _person_with_key(prefix) if prefix else None
        if exact is not None and (after is None or exact > after) and self._is_marked(name, exact):
            found.append(exact)
        need = limit - len(found)
        level = len(prefix)
        conditions = [*_key_starts_with(prefix), _has_key_part(level)]
        if after is not None:
            conditions.append(people_after_filter(after))
        if need <= 0:
            return found
        if level >= _INDEXED_KEY_PARTS:
            return found + sorted(self._marked_people(name, qm.Filter(must=conditions)))[:need]
        after_key = [] if after is None else payload.person_key(after)
        start = after_key[level] if after_key[:level] == prefix and len(after_key) > level else None
        markers, _ = self._client.scroll(
            self._people_name(name),
            scroll_filter=qm.Filter(must=conditions),
            order_by=qm.OrderBy(key=_key_field(level), start_from=start),
            limit=need + 1,
            with_payload=[payload.PERSON_ID, _key_field(level)],
        )
        parts = [
            (int((m.payload or {})[_key_field(level)]), str((m.payload or {})[payload.PERSON_ID])) for m in markers
        ]
        if len(parts) <= need:
            return found + sorted(person for _, person in parts)
        last = parts[-1][0]
        complete = sorted(person for part, person in parts if part < last)
        return found + complete + self._people_in(name, [*prefix, last], after, need - len(complete))

    def _is_marked(self, name: str, person_id: str) -> bool:
        marker = payload.person_point_id(person_id)
        return bool(self._client.retrieve(self._people_name(name), ids=[marker], with_payload=False))

    def _marked_people(self, name: str, marker_filter: qm.Filter) -> list[str]:
        people: list[str] = []
        offset: Any = None
        while True:
            markers, offset = self._client.scroll(
                self._people_name(name),
                scroll_filter=marker_filter,
                limit=_SCROLL_PAGE,
                offset=offset,
                with_payload=[payload.PERSON_ID],
            )
            people.extend(str((m.payload or {})[payload.PERSON_ID]) for m in markers)
            if offset is None:
                return people

    def faces_of(self, name: str, person_ids: Sequence[str]) -> list[FaceSummary]:
        """Every face of these people, scrolled page by page."""
        if not person_ids:
            return []
        summaries: list[FaceSummary] = []
        offset: Any = None
        with translated_errors():
            while True:
                records, offset = self._client.scroll(
                    self._qdrant_name(name),
                    scroll_filter=_person_filter(person_ids),
                    limit=_SCROLL_PAGE,
                    offset=offset,
                    with_payload=True,
                    with_vectors=False,
                )
                summaries.extend(payload.face_summary(record.payload or {}) for record in records)
                if offset is None:
                    return summaries

    def face_records(self, name: str, person_ids: Sequence[str], with_embeddings: bool) -> list[FaceRecord]:
        """Every face of these people as stored, with their descriptors when asked, scrolled page by page."""
        if not person_ids:
            return []
        faces: list[FaceRecord] = []
        offset: Any = None
        with translated_errors(name):
            while True:
                records, offset = self._client.scroll(
                    self._qdrant_name(name),
                    scroll_filter=_person_filter(person_ids),
                    limit=_SCROLL_PAGE,
                    offset=offset,
                    with_payload=True,
                    with_vectors=with_embeddings,
                )
                faces.extend(
                    payload.face_record(
                        record.payload or {},
                        np.asarray(record.vector, dtype=np.float32) if with_embeddings else None,
                    )
                    for record in records
                )
                if offset is None:
                    return faces

    def count_faces(self, name: str) -> int:
        """Number of faces in the collection: Qdrant's count without a filter, which adds up the segments' live
        points (not exact while an optimization moves points between segments; no scan)."""
        with translated_errors():
            return int(self._client.count(self._qdrant_name(name), exact=False).count)

    def close(self) -> None:
        """Closes the client's connections."""
        self._client.close()
