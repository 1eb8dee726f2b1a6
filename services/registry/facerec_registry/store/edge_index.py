"""Background HNSW index builds of an embedded collection, out of process, swapped in with a short pause.

Edge builds the HNSW index only in ``optimize()``, which (measured, qdrant-edge-py 0.9.0) holds the GIL for its
whole run: ~9 s at 50k and ~20 s at 100k faces on 2 cores, during which no other thread of the process moves.
So the index is built in a child process (``optimize_shard.py``) on a copy of the shard: with writes held back
(searches go on), the shard is flushed and copied; the child optimizes the copy while the registry keeps
serving from the original, journaling every write made meanwhile. The indexed copy is loaded, then, under
the collection's write lock, the journal's last writes are replayed onto it and the catalog entry switched to
it atomically: searches pause only for that. Until then searches over unindexed points are exact.

A *rewrite* (``start_rewrite``) goes the same way, but the child copies the live points of the copy into a
fresh shard and indexes that: the result holds no trace of deleted points. Optimizing alone would not do:
Qdrant's vacuum drops deleted points from segments only past ``deleted_threshold`` (a fifth of a segment by
default), and the WAL keeps the upserts that wrote them, descriptors included (measured, qdrant-edge-py 0.9.0:
an erased face's vector was still in ``wal/open-1``, CBOR-encoded, after a vacuum). It costs what a first index
build of the collection costs, so it runs only when faces were erased since the last one (see ``edge.py``).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import qdrant_edge as edge

from facerec_registry.store.base import StoreConfig
from facerec_registry.store.edge_catalog import new_shard_dir_name
from facerec_registry.store.edge_shard import create_shard, edge_config, read_ahead

if TYPE_CHECKING:
    from facerec_registry.store.edge_collection import EdgeCollection

log = logging.getLogger(__name__)

# Journaled writes left to replay under the lock when an indexed shard is swapped in.
_SWAP_BACKLOG = 8


class IndexBuilds:
    """The background index builds of one collection: when to start one, the build itself, the swap."""

    def __init__(self, target: EdgeCollection, config: StoreConfig) -> None:
        self._target = target
        self._config = config
        # Writes made while a build runs (None when none runs); changed under the target's write lock.
        self._journal: list[edge.UpdateOperation] | None = None
        self._builder: threading.Thread | None = None
        self._starting = threading.Lock()
        self._child: subprocess.Popen[str] | None = None
        self._closing = threading.Event()
        self.builds = 0
        self.rewrites = 0
        self.last_swap_pause_s = 0.0

    def record(self, operation: edge.UpdateOperation) -> None:
        """Journals a write just applied (the caller holds the write lock) while a build runs."""
        if self._journal is not None:
            self._journal.append(operation)

    def maybe_start(self) -> None:
        """Starts a background index build when enough points wait to be indexed and none runs yet.

        Enough: ``optimize_threshold`` points, or a tenth of the collection if that is more. Each build
        copies the whole shard, so during a bulk load of n faces a fixed threshold would copy O(n^2)
        bytes; growing it with the collection keeps the number of builds logarithmic.
        """
        if self._running():
            return
        with self._target.reading() as shard:
            info = shard.info()
        unindexed = int(info.points_count) - int(info.indexed_vectors_count)
        if unindexed < max(self._config.optimize_threshold, int(info.points_count) // 10):
            return
        self._start(rewrite=False)

    def start_rewrite(self) -> bool:
        """Starts a rewrite of the shard without its deleted points, unless a build runs; returns whether."""
        return self._start(rewrite=True)

    def _running(self) -> bool:
        return self._closing.is_set() or (self._builder is not None and self._builder.is_alive())

    def _start(self, rewrite: bool) -> bool:
        """Starts a build (or a rewrite) unless one runs; returns whether it started."""
        with self._starting:  # writers' threads and the maintenance loop may ask at once
            if self._running():
                return False
            name = self._target.collection.name
            kind = "rewrite" if rewrite else "index"
            self._builder = threading.Thread(target=self._build, args=(rewrite,), name=f"{kind}-{name}", daemon=True)
            self._builder.start()
            return True

    def wait(self, timeout_s: float | None = None) -> None:
        """Blocks until a running background index build ends."""
        if self._builder is not None:
            self._builder.join(timeout_s)

    def stop(self) -> None:
        """Stops a running build rather than wait for it (it can take minutes; the next open starts over)."""
        self._closing.set()
        child = self._child
        if child is not None:
            child.kill()
        self.wait()

    def _build(self, rewrite: bool) -> None:
        target = self._target
        build_dir = target.folder / new_shard_dir_name()
        copy_dir = target.folder / new_shard_dir_name() if rewrite else build_dir
        try:
            # The copy must see no write, but searches go on meanwhile.
            with target.writers, target.reading() as shard:
                shard.flush()
                shutil.copytree(target.shard_dir, copy_dir)
                self._journal = []
                erasures_seen = target.erasures
            started = time.perf_counter()
            if rewrite:
                create_shard(build_dir, target.collection, self._config).close()
                self._run_builder_process(["--rewrite", str(copy_dir), str(build_dir)])
                shutil.rmtree(copy_dir, ignore_errors=True)
            else:
                self._run_builder_process([str(build_dir)])
            kind = "rewrite" if rewrite else "index"
            log.info("%s of %s built in %.1f s", kind, target.collection.name, time.perf_counter() - started)
            self._swap_in(build_dir, erasures_seen if rewrite else None)
            self.builds += 1
            self.rewrites += int(rewrite)
        except Exception:
            if not self._closing.is_set():
                log.exception("index build of collection %s failed; searches stay exact", target.collection.name)
            with target.writing():
                self._journal = None
            shutil.rmtree(build_dir, ignore_errors=True)
            shutil.rmtree(copy_dir, ignore_errors=True)

    def _run_builder_process(self, arguments: list[str]) -> None:
        child = subprocess.Popen(
            [sys.executable, "-m", "facerec_registry.store.optimize_shard", *arguments],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._child = child
        if self._closing.is_set():  # stop() came before the child existed
            child.kill()
        output, _ = child.communicate()
        self._child = None
        if child.returncode != 0:
            raise RuntimeError(f"index builder exited with {child.returncode}: {output[-2000:]}")

    def _swap_in(self, build_dir: Path, erasures_seen: int | None) -> None:
        # Loading (it replays the copy's WAL) and catching up with the journal happen on a shard nobody
        # else uses yet, before taking the lock; under the lock only the last few writes are replayed.
        target = self._target
        new = edge.EdgeShard.load(str(build_dir), edge_config(target.collection, self._config))
        read_ahead(build_dir)
        replayed = self._catch_up(new)
        with target.writing():
            started = time.perf_counter()
            for operation in (self._journal or [])[replayed:]:
                new.update(operation)
            old, old_dir = target.replace_shard(new, build_dir)
            if erasures_seen is not None:
                target.rewritten(erasures_seen)
            self._journal = None
            self.last_swap_pause_s = time.perf_counter() - started
        # No reader can reach the old shard any more: close it outside the lock.
        old.close()
        shutil.rmtree(old_dir, ignore_errors=True)

    def _catch_up(self, new: edge.EdgeShard) -> int:
        """Replays journaled writes onto ``new`` until few remain; returns how many were replayed."""
        replayed = 0
        while True:
            with self._target.writers:
                pending = list((self._journal or [])[replayed:])
            if len(pending) <= _SWAP_BACKLOG:
                return replayed
            for operation in pending:
                new.update(operation)
            replayed += len(pending)
