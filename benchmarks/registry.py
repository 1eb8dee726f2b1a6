"""Registry benchmark: the embedded Qdrant Edge store against an exact numpy scan, on face-like vectors.

    .venv/bin/python -m benchmarks.registry                      # 10k and 100k faces
    .venv/bin/python -m benchmarks.registry --sizes 10000,1000000

Data: people as identity centres with several faces each (same person ~0.38 apart, different people
~0.87 apart, as dlib descriptors of real photos), not uniform random vectors (the worst case for any graph
index). Queries are new faces of enrolled people. Measured in-process: ingest rate through the
``Registry``, time until the index is built, search latency (one query per call, top 10 people),
recall@10 of the people found and top-1 accuracy (the nearest person is the exact scan's), against an exact
scan (nearest face per person) in the same run. The centres are isotropic in 128-d, so strangers are all
about equally far from a query: recall@10 of the strangers is a hard case for the graph index, while the
nearest person (what identification needs) is what top-1 measures.

Through-gRPC figures: pass a search callable to :func:`measure_search` (see ``grpc_search`` in
:func:`run`); until that is wired, ``grpc_search_p50_ms`` is null. Prints a table, then one JSON object as
the last line.
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
from facerec_registry.store.base import StoreConfig
from facerec_registry.store.edge import EdgeFaceStore
from tests.registry.faces import DIMENSION, MODEL_ID, faces_around, gallery

Vectors = npt.NDArray[np.float32]
# A search: one query descriptor in, the person ids found out (nearest first).
PeopleSearch = Callable[[Vectors], Sequence[str]]
COLLECTION = "bench"
TOP_K = 10


@dataclass
class Figures:
    """What one size measured."""

    n: int
    people: int
    ingest_faces_per_s: float
    index_build_s: float
    indexed_fraction: float
    edge_search_p50_ms: float
    edge_search_p99_ms: float
    exact_search_p50_ms: float
    exact_search_p99_ms: float
    speedup_vs_exact_p50: float
    recall_at_10: float
    top1_accuracy: float
    grpc_search_p50_ms: float | None = None
    data: str = "facelike"
    hnsw_m: int = StoreConfig.hnsw_m
    hnsw_ef_construct: int = StoreConfig.hnsw_ef_construct
    hnsw_ef: int = StoreConfig.hnsw_ef


class ExactScan:
    """The nearest faces by brute force, done well: one matrix product, then the nearest face per person."""

    def __init__(self, vectors: Vectors, owners: npt.NDArray[np.int64]) -> None:
        self._vectors = vectors
        self._squared_norms = np.einsum("ij,ij->i", vectors, vectors)
        # Faces are stored grouped by person: each person's faces start at these offsets.
        self._starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
        self._people = owners[self._starts]

    def search(self, query: Vectors) -> list[str]:
        """Ids of the TOP_K people whose nearest face is nearest to ``query``."""
        squared = self._squared_norms - 2.0 * (self._vectors @ query) + float(query @ query)
        per_person = np.minimum.reduceat(squared, self._starts)
        nearest = np.argpartition(per_person, TOP_K)[:TOP_K]
        nearest = nearest[np.argsort(per_person[nearest])]
        return [f"person-{self._people[i]}" for i in nearest]


def measure_search(search: PeopleSearch, queries: Vectors) -> tuple[npt.NDArray[np.float64], list[Sequence[str]]]:
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
    """Mean share of the exact top-10 people that a search found."""
    return float(np.mean([len(set(f[:TOP_K]) & set(e[:TOP_K])) / TOP_K for f, e in zip(found, exact, strict=True)]))


def _registry_search(registry: Registry) -> PeopleSearch:
    def search(query: Vectors) -> list[str]:
        [matches] = registry.search(COLLECTION, SearchQuery([query], top_k=TOP_K))
        return [m.person_id for m in matches]

    return search


def _ingest(registry: Registry, vectors: Vectors, owners: npt.NDArray[np.int64], batch: int = 1000) -> float:
    started = time.perf_counter()
    for offset in range(0, len(vectors), batch):
        faces = [
            FaceRecord(f"face-{offset + i}", f"person-{owner}", vector, MODEL_ID)
            for i, (vector, owner) in enumerate(
                zip(vectors[offset : offset + batch], owners[offset : offset + batch], strict=True)
            )
        ]
        registry.upsert_faces(COLLECTION, faces)
    return len(vectors) / (time.perf_counter() - started)


def run_size(
    n: int,
    faces_per_person: int,
    queries: int,
    data_dir: Path,
    optimize_threshold: int = StoreConfig.optimize_threshold,
    grpc_search: PeopleSearch | None = None,
    through_grpc: bool = True,
    data: str = "facelike",
    index: StoreConfig | None = None,
) -> Figures:
    """Builds a gallery of ``n`` faces in a fresh store and measures it.

    ``index``: the HNSW settings (m, ef_construct, search ef) to use; its other fields are ignored.
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
    )
    store = EdgeFaceStore(config)
    registry = Registry(store)
    try:
        registry.create_collection(COLLECTION, MODEL_ID, DIMENSION, 0.6)
        ingest_rate = _ingest(registry, vectors, owners)
        started = time.perf_counter()
        # Background builds started during ingest run on; then index what is left, in this process.
        store.wait_for_indexing(COLLECTION)
        store.optimize_in_process(COLLECTION)
        index_build_s = time.perf_counter() - started
        indexed = 1.0 - store.unindexed_points(COLLECTION) / n

        edge_latencies, edge_answers = measure_search(_registry_search(registry), query_vectors)
        exact = ExactScan(vectors, owners)
        exact_latencies, exact_answers = measure_search(exact.search, query_vectors)
    finally:
        store.close()
    grpc_p50 = None
    if grpc_search is not None:
        grpc_latencies, _ = measure_search(grpc_search, query_vectors)
        grpc_p50 = float(np.percentile(grpc_latencies, 50) * 1e3)
    elif through_grpc:
        # The same store, served by the registry's own process (the embedded store allows one process).
        with RegistryProcess(data_dir, config) as served:
            grpc_latencies, _ = measure_search(served.search, query_vectors)
        grpc_p50 = float(np.percentile(grpc_latencies, 50) * 1e3)

    edge_p50 = float(np.percentile(edge_latencies, 50))
    exact_p50 = float(np.percentile(exact_latencies, 50))
    return Figures(
        n=n,
        people=people,
        ingest_faces_per_s=round(ingest_rate),
        index_build_s=round(index_build_s, 2),
        indexed_fraction=round(indexed, 3),
        edge_search_p50_ms=round(edge_p50 * 1e3, 3),
        edge_search_p99_ms=round(float(np.percentile(edge_latencies, 99)) * 1e3, 3),
        exact_search_p50_ms=round(exact_p50 * 1e3, 3),
        exact_search_p99_ms=round(float(np.percentile(exact_latencies, 99)) * 1e3, 3),
        speedup_vs_exact_p50=round(exact_p50 / edge_p50, 1),
        recall_at_10=round(recall_at_10(edge_answers, exact_answers), 4),
        top1_accuracy=round(
            float(np.mean([f[0] == e[0] for f, e in zip(edge_answers, exact_answers, strict=True)])), 4
        ),
        grpc_search_p50_ms=None if grpc_p50 is None else round(grpc_p50, 3),
        data=data,
        hnsw_m=config.hnsw_m,
        hnsw_ef_construct=config.hnsw_ef_construct,
        hnsw_ef=config.hnsw_ef,
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

    def search(self, query: Vectors) -> list[str]:
        request = registry_pb2.SearchRequest(
            collection=COLLECTION, queries=[registry_pb2.QueryVector(values=query.tolist())], top_k=TOP_K
        )
        response = self.stub.Search(request, timeout=30)
        return [m.person_id for m in response.results[0].matches]


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
    parser.add_argument("--hnsw-ef", type=int, default=StoreConfig.hnsw_ef, help="search-time beam width")
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
                        hnsw_m=args.hnsw_m, hnsw_ef_construct=args.hnsw_ef_construct, hnsw_ef=args.hnsw_ef
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
