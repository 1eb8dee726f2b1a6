"""Builds the HNSW index of an Edge shard in a process of its own: ``python -m ... <shard folder>``.

Qdrant Edge's ``optimize()`` holds the GIL for its whole run (tens of seconds at 100k faces), which would
freeze every thread of the registry; run here, on a copy of the shard, it freezes only this process. The
registry then swaps the indexed copy in (see ``edge.py``).
"""

from __future__ import annotations

import sys
import time

import qdrant_edge as edge


def build_index(shard_dir: str) -> bool:
    """Optimizes the shard in ``shard_dir`` and flushes it; returns whether anything changed."""
    shard = edge.EdgeShard.load(shard_dir)
    try:
        changed = bool(shard.optimize())
        shard.flush()
    finally:
        shard.close()
    return changed


def main() -> None:
    """Entry point: one argument, the shard folder."""
    started = time.perf_counter()
    changed = build_index(sys.argv[1])
    print(f"optimized in {time.perf_counter() - started:.1f} s, changed: {changed}", flush=True)


if __name__ == "__main__":
    main()
