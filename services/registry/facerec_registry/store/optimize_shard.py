"""Builds the HNSW index of an Edge shard in a process of its own: ``python -m ... <shard folder>``; or rewrites
a shard without its deleted points: ``python -m ... --rewrite <source folder> <empty shard folder>``.

Qdrant Edge's ``optimize()`` holds the GIL for its whole run (tens of seconds at 100k faces), which would
freeze every thread of the registry; run here, on a copy of the shard, it freezes only this process. The
registry then swaps the indexed copy in (see ``edge_index.py``).
"""

from __future__ import annotations

import sys
import time

import qdrant_edge as edge

_PAGE = 1000


def build_index(shard_dir: str) -> bool:
    """Optimizes the shard in ``shard_dir`` and flushes it; returns whether anything changed."""
    shard = edge.EdgeShard.load(shard_dir)
    try:
        changed = bool(shard.optimize())
        shard.flush()
    finally:
        shard.close()
    return changed


def _vector(record: edge.Record) -> edge.Vector:
    if record.vector is None:
        raise RuntimeError(f"point {record.id} was read without its vector")
    return record.vector


def rewrite(source_dir: str, target_dir: str) -> int:
    """Copies the live points of the shard in ``source_dir`` into the empty shard in ``target_dir`` (made with the
    collection's settings and payload indexes), then indexes and flushes it; returns how many were copied.

    Only live points are read (a scroll never returns deleted ones), so neither the target's segments nor its
    WAL ever hold a deleted point's descriptor."""
    source = edge.EdgeShard.load(source_dir)
    target = edge.EdgeShard.load(target_dir)
    copied = 0
    try:
        offset = None
        while True:
            page, offset = source.scroll(
                edge.ScrollRequest(offset=offset, limit=_PAGE, with_payload=True, with_vector=True)
            )
            if page:
                points = [edge.Point(record.id, _vector(record), record.payload) for record in page]
                target.update(edge.UpdateOperation.upsert_points(points))
                copied += len(page)
            if offset is None:
                break
        target.optimize()
        target.flush()
    finally:
        source.close()
        target.close()
    return copied


def main() -> None:
    """Entry point: the shard folder, or ``--rewrite`` and the source and target folders."""
    started = time.perf_counter()
    if sys.argv[1] == "--rewrite":
        copied = rewrite(sys.argv[2], sys.argv[3])
        print(f"rewrote {copied} points in {time.perf_counter() - started:.1f} s", flush=True)
        return
    changed = build_index(sys.argv[1])
    print(f"optimized in {time.perf_counter() - started:.1f} s, changed: {changed}", flush=True)


if __name__ == "__main__":
    main()
