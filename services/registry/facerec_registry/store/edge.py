"""The embedded store: Qdrant Edge (``qdrant-edge-py``), Qdrant's engine inside the registry process.

Only one process may open the data folder (Edge refuses a second open of a shard; the registry also locks the
folder), so this store sees every change of its collections and keeps what it needs in memory. Its parts,
each in a module of its own:

- ``edge_catalog.py``: the collections on disk (settings and current shard of each; atomic creation and
  deletion through staging and trash folders; recovery after a crash);
- ``edge_collection.py``: one open collection: its shard, its read-write lock (``rwlock.py``), its people
  directory (``people.py``);
- ``edge_index.py``: background HNSW index builds in a child process, swapped in with a short pause;
- ``edge_shard.py``: Edge settings, search parameters, filters and reads of a shard;
- ``audit_file.py``: the audit record, a file per tenant in ``<data_dir>/audit/``;
- this module: the ``FaceStore`` over them.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as edge

from facerec_registry.domain import Collection, FaceRecord, PersonAttributes, Vector
from facerec_registry.errors import CollectionNotFound
from facerec_registry.store import payload
from facerec_registry.store.audit_file import FileAuditLog
from facerec_registry.store.base import FaceSummary, ScoredFace, StoreConfig, StoredFace, VectorQuery
from facerec_registry.store.edge_catalog import EdgeCatalog, new_shard_dir_name, write_entry
from facerec_registry.store.edge_collection import EdgeCollection
from facerec_registry.store.edge_shard import (
    create_shard,
    edge_config,
    enrolled,
    owners,
    people_among,
    person_filter,
    query_filter,
    scroll_all,
    search_params,
)

__all__ = ["EdgeFaceStore", "edge_config", "search_params"]

_RESULT_FIELDS = [payload.FACE_ID, payload.PERSON_ID, payload.DISPLAY_NAME]


def _vector(stored: Any) -> Vector:
    """The descriptor of a record read with its vector (Edge gives the unnamed vector alone or by name "")."""
    values = stored[""] if isinstance(stored, dict) else stored
    return np.asarray(values, dtype=np.float32)


class EdgeFaceStore:
    """``FaceStore`` over Qdrant Edge shards in a local folder; only one process may open the folder."""

    # Every change of the catalog goes through this object: the registry may keep collection settings.
    exclusive = True

    def __init__(self, config: StoreConfig) -> None:
        self._config = config
        # Made once: by whether the query is for distinct people.
        self._search_params = {people: search_params(config, people) for people in (False, True)}
        self._catalog = EdgeCatalog(Path(config.data_dir))
        self.audit = FileAuditLog(Path(config.data_dir) / "audit")
        self._catalog_lock = threading.Lock()
        self._open: dict[str, EdgeCollection] = {}
        for folder, collection in self._catalog.entries():
            self._open[collection.name] = EdgeCollection(folder, config)

    # --- collections ---------------------------------------------------------------------------------

    def create_collection(self, collection: Collection) -> Collection:
        """Creates the collection (shard + catalog entry), or returns the existing one of that name."""
        with self._catalog_lock:
            existing = self._open.get(collection.name)
            if existing is not None:
                return existing.collection
            staging = self._catalog.staging_folder(collection.name)
            shard_dir_name = new_shard_dir_name()
            shard = create_shard(staging / shard_dir_name, collection, self._config)
            shard.flush()
            shard.close()
            write_entry(staging, collection, shard_dir_name)
            final = self._catalog.publish(staging, collection.name)
            self._open[collection.name] = EdgeCollection(final, self._config)
            return collection

    def get_collection(self, name: str) -> Collection | None:
        """The collection, or ``None``."""
        opened = self._open.get(name)
        return None if opened is None else opened.collection

    def list_collections(self) -> list[Collection]:
        """Every collection."""
        return [opened.collection for opened in list(self._open.values())]

    def update_collection(self, collection: Collection) -> Collection | None:
        """Replaces the settings of the collection of that name (its catalog entry); ``None`` when absent."""
        with self._catalog_lock:
            opened = self._open.get(collection.name)
            if opened is None:
                return None
            opened.update_settings(collection)
            return collection

    def delete_collection(self, name: str) -> int:
        """Deletes the collection's shard and catalog entry; returns how many faces it held."""
        with self._catalog_lock:
            opened = self._open.pop(name, None)
            if opened is None:
                return 0
            with opened.reading() as shard:
                faces = int(shard.count(edge.CountRequest(exact=True)))
            opened.close()
            self._catalog.discard(opened.folder, name)
            return faces

    def _collection(self, name: str) -> EdgeCollection:
        opened = self._open.get(name)
        if opened is None:
            raise CollectionNotFound(f"collection {name!r} does not exist")
        return opened

    # --- faces ---------------------------------------------------------------------------------------

    def upsert_faces(self, name: str, faces: Sequence[StoredFace]) -> None:
        """Inserts or replaces the faces in one Edge update (in the WAL when it returns)."""
        opened = self._collection(name)
        now = datetime.now(UTC)
        points = [
            edge.Point(
                payload.point_id(stored.face.face_id),
                stored.face.embedding.tolist(),
                payload.face_payload(stored, stored.face.enrolled_at or now),
            )
            for stored in faces
        ]
        with opened.writing() as shard:
            # A face id written again may have belonged to someone else: its former owner loses it.
            replaced = owners(shard, [payload.point_id(stored.face.face_id) for stored in faces])
            opened.apply(shard, edge.UpdateOperation.upsert_points(points))
            opened.people.record(added=[stored.face.person_id for stored in faces], removed=replaced)
        opened.index.maybe_start()

    def set_person_attributes(self, name: str, person: PersonAttributes) -> None:
        """Rewrites the person's attributes on each of their faces."""
        opened = self._collection(name)
        operation = edge.UpdateOperation.set_payload_by_filter(
            person_filter([person.person_id]), payload.person_payload(person)
        )
        with opened.writing() as shard:
            opened.apply(shard, operation)

    def search(self, name: str, queries: Sequence[VectorQuery]) -> list[list[ScoredFace]]:
        """Nearest faces for each query, planned as one Edge batch. Edge's Euclid score is the distance."""
        opened = self._collection(name)
        requests = [
            edge.QueryRequest(
                limit=query.limit,
                query=edge.Query.Nearest(query.vector.tolist()),
                filter=query_filter(query),
                score_threshold=query.max_distance,
                with_payload=_RESULT_FIELDS,
                params=self._search_params[query.distinct_people],
            )
            for query in queries
        ]
        results = opened.query_batch(requests)
        scored = payload.scored_face
        return [[scored(point.payload, point.score) for point in result] for result in results]

    def face(self, name: str, face_id: str) -> FaceRecord | None:
        """The face of that id, with its descriptor; ``None`` when absent."""
        opened = self._collection(name)
        with opened.reading() as shard:
            records = shard.retrieve([payload.point_id(face_id)], with_payload=True, with_vector=True)
        if not records:
            return None
        return payload.face_record(records[0].payload or {}, _vector(records[0].vector))

    def delete_face(self, name: str, face_id: str) -> str | None:
        """Deletes one face by id; returns whose it was."""
        opened = self._collection(name)
        point = payload.point_id(face_id)
        with opened.writing() as shard:
            owner = owners(shard, [point])
            if not owner:
                return None
            opened.apply(shard, edge.UpdateOperation.delete_points([point]))
            opened.people.record(removed=owner)
            opened.note_erasure()
            return owner[0]

    def delete_person(self, name: str, person_id: str) -> int:
        """Deletes every face of the person (counted and deleted under one write lock)."""
        opened = self._collection(name)
        person = person_filter([person_id])
        with opened.writing() as shard:
            faces = int(shard.count(edge.CountRequest(exact=True, filter=person)))
            if faces:
                opened.apply(shard, edge.UpdateOperation.delete_points_by_filter(person))
                opened.note_erasure()
            opened.people.remove_person(person_id)
            return faces

    def expired_people(self, name: str, cutoff: datetime, limit: int) -> list[str]:
        """People with faces enrolled before the cut-off (a facet over those faces only), less those with a newer
        face (a facet over the newer faces of the candidates only)."""
        opened = self._collection(name)
        with opened.reading() as shard:
            candidates = people_among(shard, edge.Filter(must=[enrolled(before=cutoff)]))
            kept: set[str] = set()
            ordered = sorted(candidates)
            for start in range(0, len(ordered), payload.RETENTION_CHECK_CHUNK):
                chunk = ordered[start : start + payload.RETENTION_CHECK_CHUNK]
                newer = edge.Filter(
                    must=[
                        edge.FieldCondition(payload.PERSON_ID, match=edge.MatchAny(chunk)),
                        enrolled(since=cutoff),
                    ]
                )
                kept |= people_among(shard, newer)
        return sorted(candidates - kept)[:limit]

    def purge_person(self, name: str, person_id: str, cutoff: datetime) -> int:
        """Deletes the person's faces if none was enrolled since the cut-off (checked under the write lock)."""
        opened = self._collection(name)
        person = edge.FieldCondition(payload.PERSON_ID, match=edge.MatchValue(person_id))
        with opened.writing() as shard:
            newer = edge.Filter(must=[person, enrolled(since=cutoff)])
            if int(shard.count(edge.CountRequest(exact=True, filter=newer))):
                return 0
            faces = int(shard.count(edge.CountRequest(exact=True, filter=edge.Filter(must=[person]))))
            if faces:
                opened.apply(shard, edge.UpdateOperation.delete_points_by_filter(edge.Filter(must=[person])))
                opened.note_erasure()
            opened.people.remove_person(person_id)
            return faces

    def compact(self, name: str) -> bool:
        """Starts a rewrite of the collection's shard without its erased faces, when faces were erased since the
        last one and no index build runs (see ``edge_index.py``); returns whether it started."""
        opened = self._collection(name)
        return opened.erasures > 0 and opened.index.start_rewrite()

    def count_people(self, name: str) -> int:
        """Number of people with a face, from the collection's directory."""
        opened = self._collection(name)
        with opened.reading():
            return opened.people.people()

    def people_after(self, name: str, after: str | None, limit: int) -> list[str]:
        """The next ``limit`` person ids after ``after``, from the collection's directory."""
        opened = self._collection(name)
        with opened.reading():
            return opened.people.after(after, limit)

    def faces_of(self, name: str, person_ids: Sequence[str]) -> list[FaceSummary]:
        """Every face of these people, scrolled page by page."""
        if not person_ids:
            return []
        opened = self._collection(name)
        with opened.reading() as shard:
            records = scroll_all(shard, person_filter(person_ids), with_vector=False)
        return [payload.face_summary(record.payload or {}) for record in records]

    def face_records(self, name: str, person_ids: Sequence[str], with_embeddings: bool) -> list[FaceRecord]:
        """Every face of these people as stored, with their descriptors when asked (any order)."""
        if not person_ids:
            return []
        opened = self._collection(name)
        with opened.reading() as shard:
            records = scroll_all(shard, person_filter(person_ids), with_vector=with_embeddings)
        return [
            payload.face_record(record.payload or {}, _vector(record.vector) if with_embeddings else None)
            for record in records
        ]

    def count_faces(self, name: str) -> int:
        """Number of faces in the collection, from its directory (an exact count takes 0.2 s at 1M)."""
        opened = self._collection(name)
        with opened.reading():
            return opened.people.faces()

    # --- indexing and lifecycle ------------------------------------------------------------------------

    def unindexed_points(self, name: str) -> int:
        """Points of the collection not covered by an HNSW index yet (searched exactly)."""
        return self._collection(name).unindexed_points()

    def rewrites(self, name: str) -> int:
        """How many rewrites without erased faces were swapped in since the store opened."""
        return self._collection(name).index.rewrites

    def erasures_pending(self, name: str) -> bool:
        """Whether faces were erased since the collection's last rewrite (their descriptors are still in files)."""
        return self._collection(name).erasures > 0

    def index_builds(self, name: str) -> int:
        """How many background index builds were swapped in since the store opened."""
        return self._collection(name).index.builds

    def last_swap_pause_s(self, name: str) -> float:
        """How long the last swap of an indexed shard held the collection's lock."""
        return self._collection(name).index.last_swap_pause_s

    def wait_for_indexing(self, name: str, timeout_s: float | None = None) -> None:
        """Blocks until the collection's background index build (if any) ends."""
        self._collection(name).index.wait(timeout_s)

    def optimize_in_process(self, name: str) -> None:
        """Builds the collection's index in this process, holding the GIL throughout (bulk loads only)."""
        opened = self._collection(name)
        opened.index.wait()
        with opened.writing() as shard:
            shard.optimize()

    def close(self) -> None:
        """Waits for background index builds, flushes and closes every shard."""
        with self._catalog_lock:
            for opened in self._open.values():
                opened.close()
            self._open.clear()
        self.audit.close()
