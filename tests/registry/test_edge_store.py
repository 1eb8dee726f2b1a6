"""Behaviours of the embedded Qdrant Edge store beyond the shared contract: durability and indexing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from facerec_registry.domain import FaceRecord, SearchQuery
from facerec_registry.registry import Registry
from facerec_registry.store.base import StoreConfig
from facerec_registry.store.edge import EdgeFaceStore
from tests.registry.faces import DIMENSION, MODEL_ID, gallery

GALLERY = "staff"

_UPSERT_UNTIL_KILLED = textwrap.dedent(
    """
    import sys
    import numpy as np
    from facerec_registry.domain import FaceRecord
    from facerec_registry.registry import Registry
    from facerec_registry.store.base import StoreConfig
    from facerec_registry.store.edge import EdgeFaceStore

    registry = Registry(EdgeFaceStore(StoreConfig(data_dir=sys.argv[1])))
    registry.create_collection("staff", "dlib-resnet-v1", 128, 0.6)
    rng = np.random.default_rng(0)
    batch = 0
    while True:
        faces = [
            FaceRecord(f"b{batch}-f{i}", f"batch-{batch}", rng.normal(size=128).astype(np.float32), "dlib-resnet-v1")
            for i in range(50)
        ]
        registry.upsert_faces("staff", faces)
        print(f"acked {batch}", flush=True)
        batch += 1
    """
)


def _faces(count: int, seed: int, prefix: str = "face") -> list[FaceRecord]:
    vectors, owners, _ = gallery(count // 4, 4, np.random.default_rng(seed))
    return [
        FaceRecord(f"{prefix}-{i}", f"{prefix}-person-{owner}", vector, MODEL_ID)
        for i, (vector, owner) in enumerate(zip(vectors, owners, strict=True))
    ]


def test_acknowledged_upserts_survive_a_process_kill(tmp_path: Path) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", _UPSERT_UNTIL_KILLED, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None
    acked = []
    try:
        for line in writer.stdout:
            acked.append(int(line.split()[1]))
            if len(acked) == 20:
                break
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL

    store = EdgeFaceStore(StoreConfig(data_dir=tmp_path))
    registry = Registry(store)
    try:
        for batch in acked:
            assert registry.get_person(GALLERY, f"batch-{batch}").face_count == 50
    finally:
        store.close()


def test_a_second_store_cannot_open_the_same_folder(tmp_path: Path) -> None:
    first = EdgeFaceStore(StoreConfig(data_dir=tmp_path))
    Registry(first).create_collection(GALLERY, MODEL_ID, DIMENSION, 0.6)
    try:
        with pytest.raises(Exception, match="WouldBlock"):
            EdgeFaceStore(StoreConfig(data_dir=tmp_path))
    finally:
        first.close()


def test_leftovers_of_an_interrupted_index_build_are_removed_on_open(tmp_path: Path) -> None:
    store = EdgeFaceStore(StoreConfig(data_dir=tmp_path))
    Registry(store).create_collection(GALLERY, MODEL_ID, DIMENSION, 0.6)
    Registry(store).upsert_faces(GALLERY, _faces(40, seed=1))
    store.close()
    stray = tmp_path / "collections" / GALLERY / "shard-0123456789ab"
    stray.mkdir()

    reopened = EdgeFaceStore(StoreConfig(data_dir=tmp_path))
    try:
        assert not stray.exists()
        assert Registry(reopened).count(GALLERY).faces == 40
    finally:
        reopened.close()


@pytest.fixture
def indexing_store(tmp_path: Path) -> Iterator[EdgeFaceStore]:
    """A store that builds an index once 4000 points are unindexed."""
    store = EdgeFaceStore(StoreConfig(data_dir=tmp_path, optimize_threshold=4_000))
    Registry(store).create_collection(GALLERY, MODEL_ID, DIMENSION, 0.6)
    yield store
    store.close()


def test_index_is_built_in_the_background_once_enough_points_wait(indexing_store: EdgeFaceStore) -> None:
    registry = Registry(indexing_store)
    registry.upsert_faces(GALLERY, _faces(4_800, seed=2))

    indexing_store.wait_for_indexing(GALLERY, timeout_s=120)

    assert indexing_store.index_builds(GALLERY) == 1
    assert indexing_store.unindexed_points(GALLERY) == 0
    assert registry.count(GALLERY).faces == 4_800


def test_searches_are_answered_exactly_and_promptly_while_the_index_builds(
    indexing_store: EdgeFaceStore,
) -> None:
    registry = Registry(indexing_store)
    faces = _faces(8_000, seed=3)
    matrix = np.stack([np.asarray(f.embedding, dtype=np.float32) for f in faces])
    registry.upsert_faces(GALLERY, faces)
    latencies: list[float] = []
    while indexing_store.index_builds(GALLERY) == 0 and len(latencies) < 100_000:
        query = matrix[len(latencies) % len(faces)] + 0.01
        started = time.perf_counter()
        [matches] = registry.search(GALLERY, SearchQuery([query], top_k=3, all_faces=True))
        latencies.append(time.perf_counter() - started)
        expected = np.argsort(np.linalg.norm(matrix - query, axis=1))[:3]
        assert [m.face_id for m in matches] == [faces[i].face_id for i in expected]

    # The build (a child process, seconds) ran while this thread kept searching; only the copy of the shard
    # and the swap held the lock, each well under a second.
    assert len(latencies) > 50
    assert max(latencies) < 1.0
    assert indexing_store.last_swap_pause_s(GALLERY) < 0.5


def test_writes_made_while_the_index_builds_are_kept_after_the_swap(indexing_store: EdgeFaceStore) -> None:
    registry = Registry(indexing_store)
    registry.upsert_faces(GALLERY, _faces(4_400, seed=4))
    written = 0
    deleted = registry.delete_person(GALLERY, "face-person-0")
    while indexing_store.index_builds(GALLERY) == 0 and written < 2_000:
        registry.upsert_faces(GALLERY, _faces(4, seed=100 + written, prefix=f"late{written}"))
        written += 4
    indexing_store.wait_for_indexing(GALLERY, timeout_s=120)

    assert written > 0
    assert deleted == 4
    assert registry.count(GALLERY).faces == 4_400 - 4 + written
    assert registry.get_person(GALLERY, "late0-person-0").face_count == 4


def test_closing_the_store_stops_a_running_index_build(tmp_path: Path) -> None:
    store = EdgeFaceStore(StoreConfig(data_dir=tmp_path, optimize_threshold=4_000))
    registry = Registry(store)
    registry.create_collection(GALLERY, MODEL_ID, DIMENSION, 0.6)
    registry.upsert_faces(GALLERY, _faces(8_000, seed=6))
    index_builds = store._collection(GALLERY).index
    waited = time.perf_counter()
    # Close while the child process optimizes the copy (a fixed sleep raced it on a fast machine: the build
    # had ended and close rightly waited for the swap).
    while (child := index_builds._child) is None and time.perf_counter() - waited < 30:
        time.sleep(0.01)
    assert child is not None, "the index build never started"

    started = time.perf_counter()
    store.close()
    closing_s = time.perf_counter() - started

    reopened = EdgeFaceStore(StoreConfig(data_dir=tmp_path, optimize_threshold=4_000))
    try:
        assert child.returncode == -9  # killed, not waited for
        assert closing_s < 1.0
        assert Registry(reopened).count(GALLERY).faces == 8_000
        assert len([p for p in (tmp_path / "collections" / GALLERY).iterdir() if p.is_dir()]) == 1
    finally:
        reopened.close()


def test_a_collection_made_before_decision_settings_reads_as_fixed_threshold_without_margin(tmp_path: Path) -> None:
    store = EdgeFaceStore(StoreConfig(data_dir=tmp_path))
    Registry(store).create_collection(GALLERY, MODEL_ID, DIMENSION, 0.6)
    store.close()
    # As an earlier release wrote the catalog entry: no target_fpir, no min_margin.
    entry_file = tmp_path / "collections" / GALLERY / "collection.json"
    entry = json.loads(entry_file.read_text())
    del entry["collection"]["target_fpir"], entry["collection"]["min_margin"]
    entry_file.write_text(json.dumps(entry))

    reopened = EdgeFaceStore(StoreConfig(data_dir=tmp_path))
    try:
        settings = Registry(reopened).collection_settings(GALLERY)
        assert (settings.target_fpir, settings.min_margin) == (0.0, 0.0)
        assert settings.default_threshold == pytest.approx(0.6)
    finally:
        reopened.close()
