"""The embedded store: Qdrant Edge (``qdrant-edge-py``), Qdrant's engine inside the registry process.

Layout under ``data_dir``::

    collections/<name>/collection.json   catalog entry: the collection's settings and its current shard
    collections/<name>/shard-<id>/       one Edge shard: WAL + segments of that collection's faces
    staging/, trash/                     collections being created or deleted

Edge has no collections, only shards, so each collection is one shard in its own folder. A collection is
created in ``staging/`` and renamed into ``collections/`` once complete, and deleted by renaming it into
``trash/`` first; the catalog entry is rewritten atomically (fsync, rename). A crash therefore never leaves
a half-made collection or shard in the catalog; leftovers are removed when the store opens.

Concurrency: a read-write lock per collection; searches and reads share it, writes take it alone.
Counts and person listing: each open collection keeps a ``PeopleDirectory`` (faces per person, ids in
order), built from the shard when it opens and updated by every write under the write lock; so counting
and paging people cost no scan, and after a crash the directory is rebuilt from what the WAL recovered.
Indexing: Edge builds the HNSW index only in ``optimize()``, which (measured, qdrant-edge-py 0.9.0) holds
the GIL for its whole run: ~9 s at 50k and ~20 s at 100k faces on 2 cores, during which no other thread of
the process moves. So the index is built in a child process on a copy of the shard and swapped in (see
``_EdgeCollection``); until then searches over unindexed points are exact.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import qdrant_edge as edge

from facerec_registry.domain import Collection, PersonAttributes
from facerec_registry.errors import CollectionNotFound
from facerec_registry.store import payload
from facerec_registry.store.base import FaceSummary, ScoredFace, StoreConfig, StoredFace, VectorQuery
from facerec_registry.store.people import PeopleDirectory

log = logging.getLogger(__name__)

_CATALOG_FILE = "collection.json"
_SHARD_DIR = "shard"
_SCROLL_PAGE = 1000
_RESULT_FIELDS = [payload.FACE_ID, payload.PERSON_ID, payload.DISPLAY_NAME]
# Journaled writes left to replay under the lock when an indexed shard is swapped in.
_SWAP_BACKLOG = 8
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


def search_params(config: StoreConfig, distinct_people: bool = False) -> edge.SearchParams:
    """Search-time HNSW and quantization settings (two sets, made once): the beam is wider when the registry
    looks for distinct people."""
    return edge.SearchParams(
        hnsw_ef=config.search_ef(distinct_people),
        quantization=edge.QuantizationSearchParams(rescore=True, oversampling=config.quantization_oversampling)
        if config.int8_quantization
        else None,
    )


def _write_atomically(path: Path, content: str) -> None:
    """Writes a file so that readers see the old or the new content, never a mix (fsync then rename)."""
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as file:
        file.write(content)
        file.flush()
        os.fsync(file.fileno())
    tmp.replace(path)


def _write_catalog(folder: Path, collection: Collection, shard_dir_name: str) -> None:
    fields = asdict(collection)
    fields["created_at"] = collection.created_at.isoformat()
    _write_atomically(folder / _CATALOG_FILE, json.dumps({"collection": fields, "shard": shard_dir_name}, indent=2))


def _read_catalog(folder: Path) -> tuple[Collection, str]:
    entry = json.loads((folder / _CATALOG_FILE).read_text(encoding="utf-8"))
    fields = dict(entry["collection"])
    fields["created_at"] = datetime.fromisoformat(fields["created_at"])
    return Collection(**fields), str(entry["shard"])


def read_ahead(shard_dir: Path) -> None:
    """Reads the shard's segment files once, so that the page cache holds them (in a background thread).

    Edge reads payloads and original vectors through mmap, at random: a page of 100 people reads ~1000 faces'
    payloads, which took 60-120 ms from a cold page cache at 200k faces (240 ms at 1M) and 11 ms warm
    (measured, qdrant-edge-py 0.9.0). Its ``payload_memory=Cached`` did not change a loaded shard, nor did
    ``posix_fadvise(WILLNEED)``; one sequential read of the files (0.5 s at 200k faces) does.
    """

    def read_files() -> None:
        for path in sorted((shard_dir / "segments").rglob("*")):
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


def _owners(shard: edge.EdgeShard, point_ids: list[edge.PointId]) -> list[str]:
    """The person of each of these points that exists (one entry per point found)."""
    records = shard.retrieve(point_ids, with_payload=[payload.PERSON_ID], with_vector=False)
    return [str((record.payload or {})[payload.PERSON_ID]) for record in records]


def _person_filter(person_ids: Sequence[str]) -> edge.Filter:
    return edge.Filter(must=[edge.FieldCondition(payload.PERSON_ID, match=edge.MatchAny(list(person_ids)))])


def _query_filter(query: VectorQuery) -> edge.Filter | None:
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


class _ReadWriteLock:
    """Many readers or one writer. Searches run together; a write, a copy or a shard swap runs alone.

    A search takes it as a reader; ``acquire_read`` / ``release_read`` spare it a generator-based context
    manager (a few microseconds of a ~0.2 ms search).
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._readers = 0
        self._writing = False

    def acquire_read(self) -> None:
        with self._condition:
            while self._writing:
                self._condition.wait()
            self._readers += 1

    def release_read(self) -> None:
        with self._condition:
            self._readers -= 1
            if self._readers == 0:  # only a writer waits for the readers to leave
                self._condition.notify_all()

    @contextmanager
    def reading(self) -> Iterator[None]:
        self.acquire_read()
        try:
            yield
        finally:
            self.release_read()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._condition:
            self._condition.wait_for(lambda: not self._writing)
            self._writing = True
            self._condition.wait_for(lambda: self._readers == 0)
        try:
            yield
        finally:
            with self._condition:
                self._writing = False
                self._condition.notify_all()


class _EdgeCollection:
    """One collection: its settings, its open shard, its lock, and its background index builds.

    Index builds run out of process: with writes held back (searches go on), the shard is flushed and
    copied; a child process optimizes the copy while this one keeps serving from the original, journaling
    every write made meanwhile. The indexed copy is loaded, then, under the write lock, the journal is
    replayed onto it and the catalog entry switched to it atomically: searches pause only for that.
    """

    def __init__(self, folder: Path, collection: Collection, config: StoreConfig) -> None:
        self.folder = folder
        self.collection = collection
        self._config = config
        self._lock = _ReadWriteLock()
        # Held by every writer (before the write lock) and while the shard is copied.
        self._writers = threading.Lock()
        entry = json.loads((folder / _CATALOG_FILE).read_text(encoding="utf-8"))
        self._shard_dir = folder / str(entry["shard"])
        self.shard = edge.EdgeShard.load(str(self._shard_dir), edge_config(collection, config))
        read_ahead(self._shard_dir)
        # Read under the read lock; changed only under the write lock, by the write that changes the faces.
        self.people = PeopleDirectory(faces_per_person(self.shard))
        self._journal: list[edge.UpdateOperation] | None = None
        self._builder: threading.Thread | None = None
        self._child: subprocess.Popen[str] | None = None
        self._closing = threading.Event()
        self.index_builds = 0
        self.last_swap_pause_s = 0.0

    @contextmanager
    def reading(self) -> Iterator[edge.EdgeShard]:
        with self._lock.reading():
            yield self.shard

    @contextmanager
    def writing(self) -> Iterator[edge.EdgeShard]:
        with self._writers, self._lock.writing():
            yield self.shard

    def query_batch(self, requests: list[edge.QueryRequest]) -> list[list[edge.ScoredPoint]]:
        """Runs the queries on the current shard, as a reader."""
        self._lock.acquire_read()
        try:
            return self.shard.query_batch(edge.QueryBatchRequest(requests))
        finally:
            self._lock.release_read()

    def apply(self, shard: edge.EdgeShard, operation: edge.UpdateOperation) -> None:
        """Applies a write (caller holds the write lock) and journals it while an index build runs."""
        shard.update(operation)
        if self._journal is not None:
            self._journal.append(operation)

    def unindexed_points(self) -> int:
        with self.reading() as shard:
            info = shard.info()
        return max(0, int(info.points_count) - int(info.indexed_vectors_count))

    def maybe_build_index(self) -> None:
        """Starts a background index build when enough points wait to be indexed and none runs yet.

        Enough: ``optimize_threshold`` points, or a tenth of the collection if that is more. Each build
        copies the whole shard, so during a bulk load of n faces a fixed threshold would copy O(n^2)
        bytes; growing it with the collection keeps the number of builds logarithmic.
        """
        if self._closing.is_set() or (self._builder is not None and self._builder.is_alive()):
            return
        with self.reading() as shard:
            info = shard.info()
        unindexed = int(info.points_count) - int(info.indexed_vectors_count)
        if unindexed < max(self._config.optimize_threshold, int(info.points_count) // 10):
            return
        self._builder = threading.Thread(target=self._build_index, name=f"index-{self.collection.name}", daemon=True)
        self._builder.start()

    def _build_index(self) -> None:
        build_dir = self.folder / f"{_SHARD_DIR}-{uuid.uuid4().hex[:12]}"
        try:
            # The copy must see no write, but searches go on meanwhile.
            with self._writers, self.reading() as shard:
                shard.flush()
                shutil.copytree(self._shard_dir, build_dir)
                self._journal = []
            started = time.perf_counter()
            self._run_builder_process(build_dir)
            log.info("index of %s built in %.1f s", self.collection.name, time.perf_counter() - started)
            self._swap_in(build_dir)
            self.index_builds += 1
        except Exception:
            if not self._closing.is_set():
                log.exception("index build of collection %s failed; searches stay exact", self.collection.name)
            with self.writing():
                self._journal = None
            shutil.rmtree(build_dir, ignore_errors=True)

    def _run_builder_process(self, build_dir: Path) -> None:
        child = subprocess.Popen(
            [sys.executable, "-m", "facerec_registry.store.optimize_shard", str(build_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._child = child
        if self._closing.is_set():  # close() came before the child existed
            child.kill()
        output, _ = child.communicate()
        self._child = None
        if child.returncode != 0:
            raise RuntimeError(f"index builder exited with {child.returncode}: {output[-2000:]}")

    def _swap_in(self, build_dir: Path) -> None:
        # Loading (it replays the copy's WAL) and catching up with the journal happen on a shard nobody
        # else uses yet, before taking the lock; under the lock only the last few writes are replayed.
        new = edge.EdgeShard.load(str(build_dir), edge_config(self.collection, self._config))
        read_ahead(build_dir)
        replayed = self._catch_up(new)
        with self.writing() as old:
            started = time.perf_counter()
            for operation in (self._journal or [])[replayed:]:
                new.update(operation)
            _write_catalog(self.folder, self.collection, build_dir.name)
            old_dir, self._shard_dir, self.shard, self._journal = self._shard_dir, build_dir, new, None
            self.last_swap_pause_s = time.perf_counter() - started
        # No reader can reach the old shard any more: close it outside the lock.
        old.close()
        shutil.rmtree(old_dir, ignore_errors=True)

    def _catch_up(self, new: edge.EdgeShard) -> int:
        """Replays journaled writes onto ``new`` until few remain; returns how many were replayed."""
        replayed = 0
        while True:
            with self._writers:
                pending = list((self._journal or [])[replayed:])
            if len(pending) <= _SWAP_BACKLOG:
                return replayed
            for operation in pending:
                new.update(operation)
            replayed += len(pending)

    def wait_for_index_build(self, timeout_s: float | None = None) -> None:
        """Blocks until a running background index build ends."""
        if self._builder is not None:
            self._builder.join(timeout_s)

    def close(self) -> None:
        # A build can take minutes: stop it rather than wait (the next open starts over, exact meanwhile).
        self._closing.set()
        child = self._child
        if child is not None:
            child.kill()
        self.wait_for_index_build()
        with self.writing() as shard:
            shard.flush()
            shard.close()


class EdgeFaceStore:
    """``FaceStore`` over Qdrant Edge shards in a local folder; only one process may open the folder."""

    def __init__(self, config: StoreConfig) -> None:
        self._config = config
        # Made once: by whether the query is for distinct people.
        self._search_params = {people: search_params(config, people) for people in (False, True)}
        root = Path(config.data_dir)
        self._collections_dir = root / "collections"
        self._staging_dir = root / "staging"
        self._trash_dir = root / "trash"
        for folder in (self._collections_dir, self._staging_dir, self._trash_dir):
            folder.mkdir(parents=True, exist_ok=True)
        # Leftovers of a create or delete interrupted by a crash: never part of the catalog.
        for leftover in [*self._staging_dir.iterdir(), *self._trash_dir.iterdir()]:
            shutil.rmtree(leftover, ignore_errors=True)
        self._catalog_lock = threading.Lock()
        self._open: dict[str, _EdgeCollection] = {}
        for folder in sorted(self._collections_dir.iterdir()):
            if not (folder / _CATALOG_FILE).is_file():
                shutil.rmtree(folder, ignore_errors=True)
                continue
            collection, shard_dir_name = _read_catalog(folder)
            # Shards other than the current one are index builds or replaced shards a crash left behind.
            for other in folder.iterdir():
                if other.is_dir() and other.name != shard_dir_name:
                    shutil.rmtree(other, ignore_errors=True)
            self._open[collection.name] = _EdgeCollection(folder, collection, config)

    # --- collections ---------------------------------------------------------------------------------

    def create_collection(self, collection: Collection) -> Collection:
        """Creates the collection (shard + catalog entry), or returns the existing one of that name."""
        with self._catalog_lock:
            existing = self._open.get(collection.name)
            if existing is not None:
                return existing.collection
            staging = self._staging_dir / f"{collection.name}-{uuid.uuid4().hex}"
            shard_dir_name = f"{_SHARD_DIR}-{uuid.uuid4().hex[:12]}"
            shard = edge.EdgeShard.create(str(staging / shard_dir_name), edge_config(collection, self._config))
            for field_name in payload.KEYWORD_INDEXES:
                shard.update(edge.UpdateOperation.create_field_index(field_name, edge.PayloadSchemaType.Keyword))
            shard.flush()
            shard.close()
            _write_catalog(staging, collection, shard_dir_name)
            final = self._collections_dir / collection.name
            staging.replace(final)
            self._open[collection.name] = _EdgeCollection(final, collection, self._config)
            return collection

    def get_collection(self, name: str) -> Collection | None:
        """The collection, or ``None``."""
        opened = self._open.get(name)
        return None if opened is None else opened.collection

    def list_collections(self) -> list[Collection]:
        """Every collection."""
        return [opened.collection for opened in list(self._open.values())]

    def delete_collection(self, name: str) -> int:
        """Deletes the collection's shard and catalog entry; returns how many faces it held."""
        with self._catalog_lock:
            opened = self._open.pop(name, None)
            if opened is None:
                return 0
            with opened.reading() as shard:
                faces = int(shard.count(edge.CountRequest(exact=True)))
            opened.close()
            trash = self._trash_dir / f"{name}-{uuid.uuid4().hex}"
            opened.folder.replace(trash)
            shutil.rmtree(trash, ignore_errors=True)
            return faces

    def _collection(self, name: str) -> _EdgeCollection:
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
            replaced = _owners(shard, [payload.point_id(stored.face.face_id) for stored in faces])
            opened.apply(shard, edge.UpdateOperation.upsert_points(points))
            opened.people.record(added=[stored.face.person_id for stored in faces], removed=replaced)
        opened.maybe_build_index()

    def set_person_attributes(self, name: str, person: PersonAttributes) -> None:
        """Rewrites the person's attributes on each of their faces."""
        opened = self._collection(name)
        operation = edge.UpdateOperation.set_payload_by_filter(
            _person_filter([person.person_id]), payload.person_payload(person)
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
                filter=_query_filter(query),
                score_threshold=query.max_distance,
                with_payload=_RESULT_FIELDS,
                params=self._search_params[query.distinct_people],
            )
            for query in queries
        ]
        results = opened.query_batch(requests)
        scored = payload.scored_face
        return [[scored(point.payload, point.score) for point in result] for result in results]

    def delete_face(self, name: str, face_id: str) -> bool:
        """Deletes one face by id."""
        opened = self._collection(name)
        point = payload.point_id(face_id)
        with opened.writing() as shard:
            owner = _owners(shard, [point])
            if not owner:
                return False
            opened.apply(shard, edge.UpdateOperation.delete_points([point]))
            opened.people.record(removed=owner)
            return True

    def delete_person(self, name: str, person_id: str) -> int:
        """Deletes every face of the person (counted and deleted under one write lock)."""
        opened = self._collection(name)
        person = _person_filter([person_id])
        with opened.writing() as shard:
            faces = int(shard.count(edge.CountRequest(exact=True, filter=person)))
            if faces:
                opened.apply(shard, edge.UpdateOperation.delete_points_by_filter(person))
            opened.people.remove_person(person_id)
            return faces

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
        summaries: list[FaceSummary] = []
        offset: Any = None
        with opened.reading() as shard:
            while True:
                records, offset = shard.scroll(
                    edge.ScrollRequest(
                        offset=offset,
                        limit=_SCROLL_PAGE,
                        filter=_person_filter(person_ids),
                        with_payload=True,
                        with_vector=False,
                    )
                )
                summaries.extend(payload.face_summary(record.payload or {}) for record in records)
                if offset is None:
                    return summaries

    def count_faces(self, name: str) -> int:
        """Number of faces in the collection, from its directory (an exact count takes 0.2 s at 1M)."""
        opened = self._collection(name)
        with opened.reading():
            return opened.people.faces()

    # --- indexing and lifecycle ------------------------------------------------------------------------

    def unindexed_points(self, name: str) -> int:
        """Points of the collection not covered by an HNSW index yet (searched exactly)."""
        return self._collection(name).unindexed_points()

    def index_builds(self, name: str) -> int:
        """How many background index builds were swapped in since the store opened."""
        return self._collection(name).index_builds

    def last_swap_pause_s(self, name: str) -> float:
        """How long the last swap of an indexed shard held the collection's lock."""
        return self._collection(name).last_swap_pause_s

    def wait_for_indexing(self, name: str, timeout_s: float | None = None) -> None:
        """Blocks until the collection's background index build (if any) ends."""
        self._collection(name).wait_for_index_build(timeout_s)

    def optimize_in_process(self, name: str) -> None:
        """Builds the collection's index in this process, holding the GIL throughout (bulk loads only)."""
        opened = self._collection(name)
        opened.wait_for_index_build()
        with opened.writing() as shard:
            shard.optimize()

    def close(self) -> None:
        """Waits for background index builds, flushes and closes every shard."""
        with self._catalog_lock:
            for opened in self._open.values():
                opened.close()
            self._open.clear()
