"""The production store: a Qdrant server or cluster through ``qdrant-client`` (gRPC, API key, TLS).

Each registry collection is one Qdrant collection named ``<prefix><name>``; the registry's settings for it
(model id, dimension, threshold, tenant, creation time) live in that Qdrant collection's ``metadata``, so
the server holds the whole catalog and registry replicas stay stateless. One Qdrant collection per gallery
keeps erasure and deletion of a gallery simple and lets each have its own shards; a payload index on the
person id serves listing, erasure and grouping.

Every write passes ``wait=True``: the call returns once the server has applied it. Connection failures are
translated into ``StoreUnavailable`` at this boundary.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import grpc
from qdrant_client import QdrantClient
from qdrant_client import models as qm
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from facerec_registry.domain import Collection, PersonAttributes
from facerec_registry.errors import StoreUnavailable
from facerec_registry.store import payload
from facerec_registry.store.base import FaceSummary, ScoredFace, StoreConfig, StoredFace, VectorQuery

_SCROLL_PAGE = 1000
_RESULT_FIELDS = [payload.FACE_ID, payload.PERSON_ID, payload.DISPLAY_NAME]
_UNAVAILABLE_CODES = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


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


def payload_indexes() -> dict[str, qm.KeywordIndexParams]:
    """Payload indexes every gallery gets: keyword indexes on the person id and the metadata pairs."""
    return {field: qm.KeywordIndexParams(type=qm.KeywordIndexType.KEYWORD) for field in payload.KEYWORD_INDEXES}


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
    )


def _person_filter(person_ids: Sequence[str]) -> qm.Filter:
    return qm.Filter(must=[qm.FieldCondition(key=payload.PERSON_ID, match=qm.MatchAny(any=list(person_ids)))])


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


def _already_exists(error: Exception) -> bool:
    if isinstance(error, UnexpectedResponse):
        return error.status_code == 409
    if isinstance(error, grpc.Call):
        return error.code() == grpc.StatusCode.ALREADY_EXISTS or "already exists" in (error.details() or "")
    return False


@contextmanager
def _translated_errors() -> Iterator[None]:
    """Connection failures become ``StoreUnavailable``; anything else propagates as it is."""
    try:
        yield
    except ResponseHandlingException as error:
        raise StoreUnavailable(f"Qdrant server unreachable: {error}") from error
    except grpc.RpcError as error:
        code = error.code() if isinstance(error, grpc.Call) else None
        if code in _UNAVAILABLE_CODES:
            raise StoreUnavailable(f"Qdrant server unavailable: {code}") from error
        raise


class ServerFaceStore:
    """``FaceStore`` over a Qdrant server. ``client`` may be given (tests use qdrant-client's local mode)."""

    def __init__(self, config: StoreConfig, client: QdrantClient | None = None) -> None:
        self._config = config
        self._client = client if client is not None else QdrantClient(**client_options(config))
        # Made once: by whether the query is for distinct people.
        self._search_params = {people: search_params(config, people) for people in (False, True)}

    def _qdrant_name(self, name: str) -> str:
        return f"{self._config.server_collection_prefix}{name}"

    # --- collections ---------------------------------------------------------------------------------

    def create_collection(self, collection: Collection) -> Collection:
        """Creates the Qdrant collection and its payload indexes, or returns the existing collection."""
        existing = self.get_collection(collection.name)
        if existing is not None:
            return existing
        qdrant_name = self._qdrant_name(collection.name)
        with _translated_errors():
            try:
                self._client.create_collection(qdrant_name, **collection_options(collection, self._config))
            except (UnexpectedResponse, grpc.RpcError) as error:
                # Another registry replica created it first (409 over REST, ALREADY_EXISTS over gRPC):
                # theirs stands.
                if not _already_exists(error):
                    raise
            for field, index in payload_indexes().items():
                self._client.create_payload_index(qdrant_name, field, field_schema=index, wait=True)
        return self.get_collection(collection.name) or collection

    def get_collection(self, name: str) -> Collection | None:
        """The collection as recorded in its Qdrant collection's metadata, or ``None``."""
        qdrant_name = self._qdrant_name(name)
        with _translated_errors():
            if not self._client.collection_exists(qdrant_name):
                return None
            info = self._client.get_collection(qdrant_name)
        return _collection_from_metadata(info.config.metadata)

    def list_collections(self) -> list[Collection]:
        """Every registry collection on the server (Qdrant collections with our prefix and metadata)."""
        prefix = self._config.server_collection_prefix
        with _translated_errors():
            names = [c.name for c in self._client.get_collections().collections if c.name.startswith(prefix)]
        found = (self.get_collection(name.removeprefix(prefix)) for name in names)
        return [collection for collection in found if collection is not None]

    def delete_collection(self, name: str) -> int:
        """Drops the Qdrant collection; returns how many faces it held."""
        if self.get_collection(name) is None:
            return 0
        faces = self.count_faces(name)
        with _translated_errors():
            self._client.delete_collection(self._qdrant_name(name))
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
        with _translated_errors():
            self._client.upsert(self._qdrant_name(name), points=points, wait=True)

    def set_person_attributes(self, name: str, person: PersonAttributes) -> None:
        """Rewrites the person's attributes on each of their faces."""
        with _translated_errors():
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
        with _translated_errors():
            responses = self._client.query_batch_points(self._qdrant_name(name), requests=requests)
        return [
            [payload.scored_face(point.payload, point.score) for point in response.points] for response in responses
        ]

    def delete_face(self, name: str, face_id: str) -> bool:
        """Deletes one face by id."""
        point = payload.point_id(face_id)
        qdrant_name = self._qdrant_name(name)
        with _translated_errors():
            if not self._client.retrieve(qdrant_name, ids=[point], with_payload=False, with_vectors=False):
                return False
            self._client.delete(qdrant_name, points_selector=qm.PointIdsList(points=[point]), wait=True)
        return True

    def delete_person(self, name: str, person_id: str) -> int:
        """Deletes every face of the person; returns how many there were."""
        qdrant_name = self._qdrant_name(name)
        person = _person_filter([person_id])
        with _translated_errors():
            faces = self._client.count(qdrant_name, count_filter=person, exact=True).count
            if faces:
                self._client.delete(qdrant_name, points_selector=qm.FilterSelector(filter=person), wait=True)
        return int(faces)

    def faces_per_person(self, name: str) -> dict[str, int]:
        """Faces per person, from an exact facet over the person id index."""
        faces = self.count_faces(name)
        if faces == 0:
            return {}
        with _translated_errors():
            hits = self._client.facet(self._qdrant_name(name), key=payload.PERSON_ID, limit=faces, exact=True).hits
        return {str(hit.value): int(hit.count) for hit in hits if hit.count > 0}

    def faces_of(self, name: str, person_ids: Sequence[str]) -> list[FaceSummary]:
        """Every face of these people, scrolled page by page."""
        if not person_ids:
            return []
        summaries: list[FaceSummary] = []
        offset: Any = None
        with _translated_errors():
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

    def count_faces(self, name: str) -> int:
        """Number of faces in the collection."""
        with _translated_errors():
            return int(self._client.count(self._qdrant_name(name), exact=True).count)

    def close(self) -> None:
        """Closes the client's connections."""
        self._client.close()
