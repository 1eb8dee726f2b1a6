"""One open collection of the embedded store: its settings, its shard, its lock, its people and its index builds.

Concurrency: a read-write lock per collection; searches and reads share it, writes take it alone. Writers also
hold ``writers`` (taken before the write lock), which an index build holds while it copies the shard, so that
writes wait for the copy while searches go on.
Counts and person listing: each open collection keeps a ``PeopleDirectory`` (faces per person, ids in
order), built from the shard when it opens and updated by every write under the write lock; so counting
and paging people cost no scan, and after a crash the directory is rebuilt from what the WAL recovered.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import qdrant_edge as edge

from facerec_registry.domain import Collection
from facerec_registry.store.base import StoreConfig
from facerec_registry.store.edge_catalog import read_entry, write_entry
from facerec_registry.store.edge_index import IndexBuilds
from facerec_registry.store.edge_shard import edge_config, faces_per_person, read_ahead
from facerec_registry.store.people import PeopleDirectory
from facerec_registry.store.rwlock import ReadWriteLock


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
        read_ahead(self.shard_dir)
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
