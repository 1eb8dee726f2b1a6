"""The registry's audit record, retention purge and erasure rewrite on the embedded store, at a gallery's size.

    .venv/bin/python -m benchmarks.retention                  # 100k faces (~2 min, most of it the rewrite)
    .venv/bin/python -m benchmarks.retention --faces 5000     # seconds

A fresh Qdrant Edge data folder is filled with face-like descriptors (10 faces per person) in a 30-day
collection: ``--expired`` of the people enrolled 40 days ago, ``--renewed`` of them 40 days ago and again today
(one more face: they are kept, but their old faces are candidates every round), the rest today. Measured:

- an audit append (one event, written and fsynced), and an erasure (DeletePerson) with its event;
- the retention round that purges the expired people (finding them through the enrollment-time index, deleting,
  recording), and the next round, which finds nothing to do (what every later round costs);
- the rewrite of the collection without the erased faces (the child process's copy, index build and swap).

Prints a table, then one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from benchmarks.common import machine, percentile_ms, print_json, print_table
from facerec_registry.audit import AuditAction, AuditEntry
from facerec_registry.domain import FaceRecord
from facerec_registry.registry import Registry
from facerec_registry.store.base import StoreConfig
from facerec_registry.store.edge import EdgeFaceStore
from tests.registry.faces import DIMENSION, MODEL_ID, gallery

COLLECTION = "bench__retention"
FACES_PER_PERSON = 10
DAY = 86_400


def fill(registry: Registry, faces: int, expired: float, renewed: float, seed: int = 1) -> int:
    """Enrolls ``faces`` faces (plus one for each renewed person); returns how many people have expired."""
    people = faces // FACES_PER_PERSON
    vectors, owners, _ = gallery(people, FACES_PER_PERSON, np.random.default_rng(seed), spectrum="facelike")
    old_people = int(people * expired)
    renewed_people = int(people * renewed)
    now = datetime.now(UTC)
    for offset in range(0, len(vectors), 1000):
        batch = [
            FaceRecord(
                f"face-{offset + i}",
                f"person-{owner}",
                vector,
                MODEL_ID,
                enrolled_at=now - timedelta(days=40 if owner < old_people + renewed_people else 0),
            )
            for i, (vector, owner) in enumerate(
                zip(vectors[offset : offset + 1000], owners[offset : offset + 1000], strict=True)
            )
        ]
        registry.upsert_faces(COLLECTION, batch)
    for start in range(old_people, old_people + renewed_people, 1000):
        again = [
            FaceRecord(f"again-{owner}", f"person-{owner}", vectors[owner * FACES_PER_PERSON], MODEL_ID)
            for owner in range(start, min(start + 1000, old_people + renewed_people))
        ]
        registry.upsert_faces(COLLECTION, again)
    return old_people


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--expired", type=float, default=0.01, help="share of people past the retention period")
    parser.add_argument("--renewed", type=float, default=0.3, help="share of people enrolled again since")
    parser.add_argument("--appends", type=int, default=300)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="facerec-retention-") as folder:
        # No background index build while filling (the purge needs none); reopened with the production setting,
        # so that the rewrite builds the HNSW index as it would in production.
        filling = EdgeFaceStore(StoreConfig(data_dir=Path(folder), optimize_threshold=max(20_000, 2 * args.faces)))
        registry = Registry(filling)
        registry.create_collection(COLLECTION, MODEL_ID, DIMENSION, 0.6, tenant="bench", retention_seconds=30 * DAY)
        started = time.perf_counter()
        old_people = fill(registry, args.faces, args.expired, args.renewed)
        fill_s = time.perf_counter() - started
        filling.close()
        store = EdgeFaceStore(StoreConfig(data_dir=Path(folder)))
        registry = Registry(store)

        appends = []
        for i in range(args.appends):
            started = time.perf_counter()
            store.audit.append("bench", [AuditEntry(AuditAction.PERSON_UPDATE, COLLECTION, person_id=f"p{i}")])
            appends.append(time.perf_counter() - started)
        erasures = []
        for person in range(args.faces // FACES_PER_PERSON - 20, args.faces // FACES_PER_PERSON):
            started = time.perf_counter()
            registry.delete_person(COLLECTION, f"person-{person}")
            erasures.append(time.perf_counter() - started)

        started = time.perf_counter()
        purged = registry.purge_expired()
        purge_s = time.perf_counter() - started
        started = time.perf_counter()
        assert registry.purge_expired() == 0
        idle_round_s = time.perf_counter() - started

        started = time.perf_counter()
        assert registry.compact_erased() == [COLLECTION]
        store.wait_for_indexing(COLLECTION)
        rewrite_s = time.perf_counter() - started
        faces_left = registry.count(COLLECTION).faces
        unindexed = store.unindexed_points(COLLECTION)
        store.close()

    figures = {
        "machine": machine(),
        "faces": args.faces,
        "fill_s": round(fill_s, 1),
        "audit_append_p50_ms": round(percentile_ms(appends, 50), 2),
        "audit_append_p99_ms": round(percentile_ms(appends, 99), 2),
        "delete_person_p50_ms": round(percentile_ms(erasures, 50), 2),
        "purged_people": old_people,
        "renewed_people": int(args.faces // FACES_PER_PERSON * args.renewed),
        "purged_faces": purged,
        "purge_round_s": round(purge_s, 2),
        "idle_round_s": round(idle_round_s, 3),
        "rewrite_s": round(rewrite_s, 1),
        "faces_after_rewrite": faces_left,
        "unindexed_after_rewrite": unindexed,
    }
    print_table(("figure", "value"), [(key, value) for key, value in figures.items()])
    print_json(figures)


if __name__ == "__main__":
    main()
