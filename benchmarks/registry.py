"""Registry benchmark: the embedded Qdrant Edge store against an exact numpy scan, on face-like vectors.

    .venv/bin/python -m benchmarks.registry                      # 10k and 100k faces
    .venv/bin/python -m benchmarks.registry --sizes 10000,1000000

Data: people as identity centres with several faces each (same person ~0.38 apart, different people
~0.87 apart, identities spread over the dimensions as dlib descriptors of real photos are:
``tests/registry/test_facelike_calibration.py`` checks both against $FACEREC_FACES_DIR), not uniform random
vectors (the worst case for any graph index). Queries are new faces of enrolled people, one per call, after a
warm-up, each measured in the same run against an exact scan (one matrix product) of the same vectors.

Two searches are measured, in-process and through the gRPC registry process:

- nearest faces: the 10 nearest faces, each counted separately: the vector index itself, as an ANN
  benchmark measures it. Measured on the store's own search (``EdgeFaceStore.search``: the engine, with
  each hit's face and person ids, as the exact scan gives face ids) for ``speedup_vs_exact_p50`` and
  ``recall_at_10`` (of the faces found); ``registry_search_p50_ms`` adds the ``Registry`` above it (the
  request's checks and result objects), and gRPC asks it with ``all_faces``.
- nearest people (the default, what identification asks): the 10 nearest people, one face each. The
  search has to get past the query's own person's faces to the nearest strangers, so it asks for more faces
  with a wider beam (``people_hnsw_ef``): ``people_speedup_vs_exact_p50``, ``people_recall_at_10`` (of the
  people found) and ``top1_accuracy`` (the nearest person is the exact scan's).

Also: ingest rate through the ``Registry`` and the time until the index is built. Prints a table, then one
JSON object as the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import grpc
import numpy as np
import numpy.typing as npt

from facerec.cli.health import is_serving
from facerec.registry.v1 import registry_pb2, registry_pb2_grpc
from facerec.runtime.net import free_port
from facerec_registry.domain import FaceRecord, SearchQuery
from facerec_registry.registry import Registry
from facerec_registry.store.base import StoreConfig, VectorQuery
from facerec_registry.store.edge import EdgeFaceStore
from tests.registry.faces import DIMENSION, MODEL_ID, faces_around, gallery

Vectors = npt.NDArray[np.float32]
# A search: one query descriptor in, the ids found out (face ids or person ids, nearest first).
Search = Callable[[Vectors], Sequence[str]]
COLLECTION = "bench"
TOP_K = 10


@dataclass
class Figures:
    """What one size measured (latencies in ms)."""

    n: int
    people: int
    ingest_faces_per_s: float
    index_build_s: float
    indexed_fraction: float
    # The 10 nearest faces: the store's search, the same through the Registry, the exact scan.
    search_p50_ms: float
    search_p99_ms: float
    registry_search_p50_ms: float
    exact_p50_ms: float
    speedup_vs_exact_p50: float
    recall_at_10: float
    # The 10 nearest people, one face each.
    people_search_p50_ms: float
    people_search_p99_ms: float
    people_exact_p50_ms: float
    people_speedup_vs_exact_p50: float
    people_recall_at_10: float
    top1_accuracy: float
    grpc_search_p50_ms: float | None = None
    grpc_people_search_p50_ms: float | None = None
    data: str = "facelike"
    hnsw_m: int = StoreConfig.hnsw_m
    hnsw_ef_construct: int = StoreConfig.hnsw_ef_construct
    hnsw_ef: int = StoreConfig.hnsw_ef
    people_hnsw_ef: int = StoreConfig.people_hnsw_ef


class ExactScan:
    """The nearest faces by brute force, done well: one matrix product, then a partial sort."""

    def __init__(self, vectors: Vectors, owners: npt.NDArray[np.int64]) -> None:
        self._vectors = vectors
        self._squared_norms = np.einsum("ij,ij->i", vectors, vectors)
        # Faces are stored grouped by person: each person's faces start at these offsets.
        self._starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
        self._people = owners[self._starts]

    def _squared_distances(self, query: Vectors) -> npt.NDArray[np.float32]:
        return self._squared_norms - 2.0 * (self._vectors @ query) + float(query @ query)

    @staticmethod
    def _nearest(values: npt.NDArray[np.float32]) -> npt.NDArray[np.intp]:
        nearest = np.argpartition(values, TOP_K)[:TOP_K]
        return nearest[np.argsort(values[nearest])]

    def nearest_faces(self, query: Vectors) -> list[str]:
        """Ids of the TOP_K faces nearest to ``query``."""
        return [f"face-{i}" for i in self._nearest(self._squared_distances(query))]

    def nearest_people(self, query: Vectors) -> list[str]:
        """Ids of the TOP_K people whose nearest face is nearest to ``query``."""
        per_person = np.minimum.reduceat(self._squared_distances(query), self._starts)
        return [f"person-{self._people[i]}" for i in self._nearest(per_person)]


def measure_search(search: Search, queries: Vectors) -> tuple[npt.NDArray[np.float64], list[Sequence[str]]]:
    """Latency (seconds) and answer of ``search`` for each query, one query per call, after a warm-up.

    The warm-up runs every query once: right after an index build the first pass is about twice slower
    (pages of the new segments are still being loaded).
    """
    for query in queries:
        search(query)
    latencies = np.empty(len(queries))
    answers: list[Sequence[str]] = []
    for i, query in enumerate(queries):
        started = time.perf_counter()
        answers.append(search(query))
        latencies[i] = time.perf_counter() - started
    return latencies, answers


def recall_at_10(found: Sequence[Sequence[str]], exact: Sequence[Sequence[str]]) -> float:
    """Mean share of the exact top 10 that a search found."""
    return float(np.mean([len(set(f[:TOP_K]) & set(e[:TOP_K])) / TOP_K for f, e in zip(found, exact, strict=True)]))


def _ms(latencies: npt.NDArray[np.float64], percentile: float) -> float:
    return round(float(np.percentile(latencies, percentile)) * 1e3, 3)


def _store_search(store: EdgeFaceStore) -> Search:
    def search(query: Vectors) -> list[str]:
        [faces] = store.search(COLLECTION, [VectorQuery(query, limit=TOP_K)])
        return [face.face_id for face in faces]

    return search


def _registry_search(registry: Registry, all_faces: bool) -> Search:
    def search(query: Vectors) -> list[str]:
        [matches] = registry.search(COLLECTION, SearchQuery([query], top_k=TOP_K, all_faces=all_faces))
        return [m.face_id if all_faces else m.person_id for m in matches]

    return search


def ingest(
    registry: Registry,
    vectors: Vectors,
    owners: npt.NDArray[np.int64],
    batch: int = 1000,
    collection: str = COLLECTION,
    model_id: str = MODEL_ID,
) -> float:
    """Upserts face ``face-<i>`` of person ``person-<owner>`` for each vector, in batches; returns faces/s."""
    started = time.perf_counter()
    for offset in range(0, len(vectors), batch):
        faces = [
            FaceRecord(f"face-{offset + i}", f"person-{owner}", vector, model_id)
            for i, (vector, owner) in enumerate(
                zip(vectors[offset : offset + batch], owners[offset : offset + batch], strict=True)
            )
        ]
        registry.upsert_faces(collection, faces)
    return len(vectors) / (time.perf_counter() - started)


def run_size(
    n: int,
    faces_per_person: int,
    queries: int,
    data_dir: Path,
    optimize_threshold: int = StoreConfig.optimize_threshold,
    through_grpc: bool = True,
    data: str = "facelike",
    index: StoreConfig | None = None,
) -> Figures:
    """Builds a gallery of ``n`` faces in a fresh store and measures it.

    ``index``: the HNSW settings (m, ef_construct, the two search beams) to use; its other fields are ignored.
    """
    index = index or StoreConfig()
    rng = np.random.default_rng(n)
    people = n // faces_per_person
    vectors, owners, centres = gallery(people, faces_per_person, rng, spectrum=data)
    asked = rng.integers(0, people, size=queries)
    query_vectors = np.stack([faces_around(centres[p], 1, rng)[0] for p in asked])

    config = StoreConfig(
        data_dir=data_dir,
        optimize_threshold=optimize_threshold,
        hnsw_m=index.hnsw_m,
        hnsw_ef_construct=index.hnsw_ef_construct,
        hnsw_ef=index.hnsw_ef,
        people_hnsw_ef=index.people_hnsw_ef,
    )
    store = EdgeFaceStore(config)
    registry = Registry(store)
    try:
        registry.create_collection(COLLECTION, MODEL_ID, DIMENSION, 0.6)
        ingest_rate = ingest(registry, vectors, owners)
        started = time.perf_counter()
        # Background builds started during ingest run on; then index what is left, in this process.
        store.wait_for_indexing(COLLECTION)
        store.optimize_in_process(COLLECTION)
        index_build_s = time.perf_counter() - started
        indexed = 1.0 - store.unindexed_points(COLLECTION) / n

        face_latencies, face_answers = measure_search(_store_search(store), query_vectors)
        registry_face_latencies, _ = measure_search(_registry_search(registry, all_faces=True), query_vectors)
        people_latencies, people_answers = measure_search(_registry_search(registry, all_faces=False), query_vectors)
        exact = ExactScan(vectors, owners)
        exact_face_latencies, exact_faces = measure_search(exact.nearest_faces, query_vectors)
        exact_people_latencies, exact_people = measure_search(exact.nearest_people, query_vectors)
    finally:
        store.close()
    grpc_p50 = grpc_people_p50 = None
    if through_grpc:
        # The same store, served by the registry's own process (the embedded store allows one process).
        with RegistryProcess(data_dir, config) as served:
            grpc_p50 = _ms(measure_search(served.search_faces, query_vectors)[0], 50)
            grpc_people_p50 = _ms(measure_search(served.search_people, query_vectors)[0], 50)

    return Figures(
        n=n,
        people=people,
        ingest_faces_per_s=round(ingest_rate),
        index_build_s=round(index_build_s, 2),
        indexed_fraction=round(indexed, 3),
        search_p50_ms=_ms(face_latencies, 50),
        search_p99_ms=_ms(face_latencies, 99),
        registry_search_p50_ms=_ms(registry_face_latencies, 50),
        exact_p50_ms=_ms(exact_face_latencies, 50),
        speedup_vs_exact_p50=round(float(np.median(exact_face_latencies) / np.median(face_latencies)), 1),
        recall_at_10=round(recall_at_10(face_answers, exact_faces), 4),
        people_search_p50_ms=_ms(people_latencies, 50),
        people_search_p99_ms=_ms(people_latencies, 99),
        people_exact_p50_ms=_ms(exact_people_latencies, 50),
        people_speedup_vs_exact_p50=round(float(np.median(exact_people_latencies) / np.median(people_latencies)), 1),
        people_recall_at_10=round(recall_at_10(people_answers, exact_people), 4),
        top1_accuracy=round(
            float(np.mean([f[0] == e[0] for f, e in zip(people_answers, exact_people, strict=True)])), 4
        ),
        grpc_search_p50_ms=grpc_p50,
        grpc_people_search_p50_ms=grpc_people_p50,
        data=data,
        hnsw_m=config.hnsw_m,
        hnsw_ef_construct=config.hnsw_ef_construct,
        hnsw_ef=config.hnsw_ef,
        people_hnsw_ef=config.people_hnsw_ef,
    )


class RegistryProcess:
    """``facerec-registry`` on a data folder, searched over gRPC (one query per call, like the gateway)."""

    def __init__(self, data_dir: Path, config: StoreConfig) -> None:
        port = free_port()
        self.address = f"127.0.0.1:{port}"
        env = {
            **os.environ,
            "FACEREC_REGISTRY_PORT": str(port),
            "FACEREC_REGISTRY_METRICS_PORT": "0",
            "FACEREC_REGISTRY_DATA_DIR": str(data_dir),
            "FACEREC_REGISTRY_LOG_LEVEL": "WARNING",
            # The same index and search settings as measured in-process.
            "FACEREC_REGISTRY_HNSW_M": str(config.hnsw_m),
            "FACEREC_REGISTRY_HNSW_EF_CONSTRUCT": str(config.hnsw_ef_construct),
            "FACEREC_REGISTRY_SEARCH_EF": str(config.hnsw_ef),
            "FACEREC_REGISTRY_PEOPLE_SEARCH_EF": str(config.people_hnsw_ef),
        }
        script = Path(sys.executable).parent / "facerec-registry"
        self.process = subprocess.Popen([str(script)], env=env)
        self.channel = grpc.insecure_channel(self.address)
        self.stub = registry_pb2_grpc.RegistryStub(self.channel)

    def __enter__(self) -> RegistryProcess:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if is_serving(self.address):
                return self
            time.sleep(0.2)
        raise RuntimeError("the registry process did not become SERVING")

    def __exit__(self, *exc: object) -> None:
        self.channel.close()
        self.process.terminate()
        self.process.wait(timeout=60)

    def _search(self, query: Vectors, all_faces: bool) -> list[str]:
        request = registry_pb2.SearchRequest(
            collection=COLLECTION,
            queries=[registry_pb2.QueryVector(values=query.tolist())],
            top_k=TOP_K,
            all_faces=all_faces,
        )
        response = self.stub.Search(request, timeout=30)
        return [m.face_id if all_faces else m.person_id for m in response.results[0].matches]

    def search_faces(self, query: Vectors) -> list[str]:
        """The nearest faces, each counted separately."""
        return self._search(query, all_faces=True)

    def search_people(self, query: Vectors) -> list[str]:
        """The nearest people, one face each."""
        return self._search(query, all_faces=False)


def _print_table(rows: list[Figures]) -> None:
    columns = list(asdict(rows[0]))
    print(" | ".join(columns))
    for row in rows:
        print(" | ".join(str(value) for value in asdict(row).values()))


def main() -> None:
    """Runs the benchmark for each size and prints the table and the JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated numbers of faces")
    parser.add_argument("--faces-per-person", type=int, default=10)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument(
        "--optimize-threshold",
        type=int,
        default=StoreConfig.optimize_threshold,
        help="unindexed points that trigger an index build (smaller collections are searched exactly)",
    )
    parser.add_argument(
        "--data",
        choices=["facelike", "isotropic"],
        default="facelike",
        help="facelike: identity centres with a decaying spectrum like real descriptors; isotropic: the hard case",
    )
    parser.add_argument("--hnsw-m", type=int, default=StoreConfig.hnsw_m, help="HNSW graph degree")
    parser.add_argument("--hnsw-ef-construct", type=int, default=StoreConfig.hnsw_ef_construct)
    parser.add_argument(
        "--hnsw-ef", type=int, default=StoreConfig.hnsw_ef, help="search-time beam width for nearest faces"
    )
    parser.add_argument(
        "--people-hnsw-ef",
        type=int,
        default=StoreConfig.people_hnsw_ef,
        help="search-time beam width for nearest people (one face each)",
    )
    parser.add_argument("--no-grpc", action="store_true", help="skip the through-gRPC measurement")
    args = parser.parse_args()

    rows = []
    for n in (int(size) for size in args.sizes.split(",")):
        data_dir = Path(tempfile.mkdtemp(prefix="facerec-bench-"))
        try:
            rows.append(
                run_size(
                    n,
                    args.faces_per_person,
                    args.queries,
                    data_dir,
                    args.optimize_threshold,
                    through_grpc=not args.no_grpc,
                    data=args.data,
                    index=StoreConfig(
                        hnsw_m=args.hnsw_m,
                        hnsw_ef_construct=args.hnsw_ef_construct,
                        hnsw_ef=args.hnsw_ef,
                        people_hnsw_ef=args.people_hnsw_ef,
                    ),
                )
            )
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
    _print_table(rows)
    summary = asdict(rows[-1])
    summary["runs"] = [asdict(row) for row in rows]
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
