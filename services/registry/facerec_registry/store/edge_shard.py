"""An Edge shard as the embedded store uses it: its settings, its search parameters, its filters and reads.

Functions only: whoever calls them holds the collection's lock (see ``edge_collection.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import qdrant_edge as edge

from facerec_registry.domain import Collection
from facerec_registry.store import payload
from facerec_registry.store.base import StoreConfig, VectorQuery

SCROLL_PAGE = 1000
_READ_AHEAD_CHUNK = 1 << 20


def edge_config(collection: Collection, config: StoreConfig) -> edge.EdgeConfig:
    """The Edge shard settings of a collection: euclidean distance, HNSW, optional int8 quantization."""
    quantization = (
        edge.ScalarQuantizationConfig(edge.ScalarType.Int8, quantile=0.99, always_ram=True)
        if config.int8_quantization
        else None
    )
    # Segments of at least optimize_threshold points get an HNSW index when optimized; smaller ones are
    # scanned exactly.
    indexing_threshold_kb = max(1, config.optimize_threshold * 4 * collection.dimension // 1024)
    return edge.EdgeConfig(
        vectors=edge.EdgeVectorParams(size=collection.dimension, distance=edge.Distance.Euclid),
        hnsw_config=edge.HnswIndexConfig(
            m=config.hnsw_m, ef_construct=config.hnsw_ef_construct, full_scan_threshold=indexing_threshold_kb
        ),
        quantization_config=quantization,
        optimizers=edge.EdgeOptimizersConfig(indexing_threshold=indexing_threshold_kb),
    )


def create_shard(path: Path, collection: Collection, config: StoreConfig) -> edge.EdgeShard:
    """A new, empty shard of the collection in ``path``, with its payload indexes."""
    shard = edge.EdgeShard.create(str(path), edge_config(collection, config))
    ensure_payload_indexes(shard)
    return shard


def ensure_payload_indexes(shard: edge.EdgeShard) -> None:
    """Creates the payload indexes the shard lacks (a collection made by an earlier release has no index on the
    enrollment time: it is built when the collection opens, once)."""
    present = shard.info().payload_schema
    wanted = [(name, edge.PayloadSchemaType.Keyword) for name in payload.KEYWORD_INDEXES]
    wanted += [(name, edge.PayloadSchemaType.Datetime) for name in payload.DATETIME_INDEXES]
    for field_name, schema in wanted:
        if field_name not in present:
            shard.update(edge.UpdateOperation.create_field_index(field_name, schema))


def search_params(config: StoreConfig, distinct_people: bool = False) -> edge.SearchParams:
    """Search-time HNSW and quantization settings (two sets, made once): the beam is wider when the registry
    looks for distinct people."""
    return edge.SearchParams(
        hnsw_ef=config.search_ef(distinct_people),
        quantization=edge.QuantizationSearchParams(rescore=True, oversampling=config.quantization_oversampling)
        if config.int8_quantization
        else None,
    )


def read_ahead(shard_dir: Path) -> None:
    """Reads the shard's segment files once, so that the page cache holds them (in a background thread).

    Edge reads payloads and original vectors through mmap, at random: a page of 100 people reads ~1000 faces'
    payloads, which took 60-120 ms from a cold page cache at 200k faces (240 ms at 1M) and 11 ms warm
    (measured, qdrant-edge-py 0.9.0). Its ``payload_memory=Cached`` did not change a loaded shard, nor did
    ``posix_fadvise(WILLNEED)``; one sequential read of the files (0.5 s at 200k faces) does.
    """

    def read_files() -> None:
        try:
            paths = sorted((shard_dir / "segments").rglob("*"))
        except OSError:  # the shard was deleted meanwhile (a clustering call's working collection, quickly gone)
            return
        for path in paths:
            try:
                with path.open("rb", buffering=0) as file:
                    while file.read(_READ_AHEAD_CHUNK):
                        pass
            except OSError:  # a folder, or a segment replaced meanwhile: only a hint, nothing to do
                continue

    threading.Thread(target=read_files, name=f"read-ahead-{shard_dir.name}", daemon=True).start()


def faces_per_person(shard: edge.EdgeShard) -> dict[str, int]:
    """Faces per person in the shard, from an exact facet over the person id index (a scan of every
    person: seconds at 1M faces; done once, when a collection opens)."""
    faces = int(shard.count(edge.CountRequest(exact=True)))
    if faces == 0:
        return {}
    # There are at most as many people as faces, so this limit returns them all.
    hits = shard.facet(edge.FacetRequest(payload.PERSON_ID, limit=faces, exact=True)).hits
    # An exact facet still lists people whose faces were all deleted, with a count of 0.
    return {str(hit.value): int(hit.count) for hit in hits if hit.count > 0}


def owners(shard: edge.EdgeShard, point_ids: list[edge.PointId]) -> list[str]:
    """The person of each of these points that exists (one entry per point found)."""
    records = shard.retrieve(point_ids, with_payload=[payload.PERSON_ID], with_vector=False)
    return [str((record.payload or {})[payload.PERSON_ID]) for record in records]


def person_filter(person_ids: Sequence[str]) -> edge.Filter:
    """Faces of any of these people."""
    return edge.Filter(must=[edge.FieldCondition(payload.PERSON_ID, match=edge.MatchAny(list(person_ids)))])


def enrolled(before: datetime | None = None, since: datetime | None = None) -> edge.FieldCondition:
    """Faces enrolled before ``before`` and/or at or after ``since`` (a range on the indexed enrollment time)."""
    return edge.FieldCondition(
        payload.ENROLLED_AT,
        range=edge.RangeDateTime(
            lt=None if before is None else payload.datetime_bound(before),
            gte=None if since is None else payload.datetime_bound(since),
        ),
    )


def people_among(shard: edge.EdgeShard, request_filter: edge.Filter) -> set[str]:
    """The people with a face matching the filter: an exact facet over the matching faces only."""
    faces = int(shard.count(edge.CountRequest(exact=True, filter=request_filter)))
    if faces == 0:
        return set()
    hits = shard.facet(edge.FacetRequest(payload.PERSON_ID, limit=faces, exact=True, filter=request_filter)).hits
    return {str(hit.value) for hit in hits if hit.count > 0}


def query_filter(query: VectorQuery) -> edge.Filter | None:
    """The filter of a search: metadata pairs, one person, people excluded (``None`` when there is none)."""
    if not (query.metadata_filter or query.person_id or query.exclude_people):
        return None
    must: list[edge.ConditionType] = [
        edge.FieldCondition(payload.METADATA_PAIRS, match=edge.MatchValue(payload.metadata_pair(k, v)))
        for k, v in sorted(query.metadata_filter.items())
    ]
    if query.person_id:
        must.append(edge.FieldCondition(payload.PERSON_ID, match=edge.MatchValue(query.person_id)))
    must_not: list[edge.ConditionType] = (
        [edge.FieldCondition(payload.PERSON_ID, match=edge.MatchAny(sorted(query.exclude_people)))]
        if query.exclude_people
        else []
    )
    return edge.Filter(must=must or None, must_not=must_not or None)


def scroll_all(shard: edge.EdgeShard, request_filter: edge.Filter, with_vector: bool) -> list[Any]:
    """Every record matching the filter, with its whole payload (and its vector when asked), page by page."""
    records: list[Any] = []
    offset: Any = None
    while True:
        page, offset = shard.scroll(
            edge.ScrollRequest(
                offset=offset, limit=SCROLL_PAGE, filter=request_filter, with_payload=True, with_vector=with_vector
            )
        )
        records.extend(page)
        if offset is None:
            return records
