"""One open collection of the embedded store: its settings, its shard, its lock, its people and its index builds.

Concurrency: a read-write lock per collection; searches and reads share it, writes take it alone. Writers also
hold ``writers`` (taken before the write lock), which an index build holds while it copies the shard, so that
writes wait for the copy while searches go on.
Counts and person listing: each open collection keeps a ``PeopleDirectory`` (faces per person, ids in
order), built from the shard when it opens and updated by every write under the write lock; so counting
and paging people cost no scan, and after a crash the directory is rebuilt from what the WAL recovered.
Erasures: a deleted face leaves search at once, but its descriptor stays in the shard's files (segments mark
points deleted; the WAL keeps the upsert that wrote it) until the shard is rewritten (``edge_index.py``). The
first erasure after a rewrite leaves a marker file, ``erasures-pending``, in the collection's folder, so that a
rewrite is due even after a restart; a rewrite that saw every erasure removes it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import qdrant_edge as edge

from facerec_registry.domain import Collection
from facerec_registry.store.base import StoreConfig
from facerec_registry.store.edge_catalog import read_entry, write_entry
from facerec_registry.store.edge_index import IndexBuilds
from facerec_registry.store.edge_shard import edge_config, ensure_payload_indexes, faces_per_person, read_ahead
from facerec_registry.store.people import PeopleDirectory
from facerec_registry.store.rwlock import ReadWriteLock

ERASURES_MARKER = "erasures-pending"


class EdgeCollection:
    """An open collection: reads under the read lock, writes under the write lock, index builds in the background."""

    def __init__(self, folder: Path, config: StoreConfig) -> None:
        self.folder = folder
        collection, shard_dir_name = read_entry(folder)
        # Replaced whole (never mutated) when the settings change, so readers see the old or the new ones.
        self.collection = collection
        self._lock = ReadWriteLock()
        # Held by every writer (before the write lock) and while the shard is copied for an index build.
        self.writers = threading.Lock()
        self.shard_dir = folder / shard_dir_name
        self.shard = edge.EdgeShard.load(str(self.shard_dir), edge_config(collection, config))
        ensure_payload_indexes(self.shard)
        read_ahead(self.shard_dir)
        self._erasures_marker = folder / ERASURES_MARKER
        # Erasures since the last rewrite (changed under the write lock); 1 when a marker says some are pending.
        self.erasures = 1 if self._erasures_marker.exists() else 0
        # Read under the read lock; changed only under the write lock, by the write that changes the faces.
        self.people = PeopleDirectory(faces_per_person(self.shard))
        self.index = IndexBuilds(self, config)

    @contextmanager
    def reading(self) -> Iterator[edge.EdgeShard]:
        """The current shard, held as a reader."""
        with self._lock.reading():
            yield self.shard

    @contextmanager
    def writing(self) -> Iterator[edge.EdgeShard]:
        """The current shard, held alone."""
        with self.writers, self._lock.writing():
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
        self.index.record(operation)

    def note_erasure(self) -> None:
        """Records that faces were erased (caller holds the write lock): a rewrite is due, across restarts."""
        self.erasures += 1
        if not self._erasures_marker.exists():
            with self._erasures_marker.open("w") as marker:
                os.fsync(marker.fileno())
            descriptor = os.open(self.folder, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)

    def rewritten(self, erasures_seen: int) -> None:
        """Records a rewrite that began after ``erasures_seen`` erasures (caller holds the write lock): when
        none came since, no erasure is pending any more."""
        if self.erasures == erasures_seen:
            self.erasures = 0
            self._erasures_marker.unlink(missing_ok=True)

    def update_settings(self, collection: Collection) -> None:
        """Records new settings of the collection in its catalog entry, then serves them.

        Taken with ``writers`` only: serialised with writes and with the swap of an indexed shard (which
        rewrites the entry), while searches go on.
        """
        with self.writers:
            write_entry(self.folder, collection, self.shard_dir.name)
            self.collection = collection

    def replace_shard(self, new: edge.EdgeShard, new_dir: Path) -> tuple[edge.EdgeShard, Path]:
        """Makes ``new`` the collection's shard in the catalog and in memory (caller holds the write lock);
        returns the old shard and its folder, for the caller to close and remove."""
        write_entry(self.folder, self.collection, new_dir.name)
        old, old_dir = self.shard, self.shard_dir
        self.shard, self.shard_dir = new, new_dir
        return old, old_dir

    def unindexed_points(self) -> int:
        """Points not covered by an HNSW index yet (searched exactly)."""
        with self.reading() as shard:
            info = shard.info()
        return max(0, int(info.points_count) - int(info.indexed_vectors_count))

    def close(self) -> None:
        """Stops a running index build, flushes and closes the shard."""
        self.index.stop()
        with self.writing() as shard:
            shard.flush()
            shard.close()
