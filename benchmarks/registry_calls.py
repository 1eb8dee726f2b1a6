"""Registry calls the gateway makes often: GetCollection with its counts, and Search, on the embedded store.

    .venv/bin/python -m benchmarks.registry_calls                 # 1M faces (~5 min, most of it the fill)
    .venv/bin/python -m benchmarks.registry_calls --faces 3000    # seconds

A fresh Qdrant Edge data folder is filled in this process with face-like descriptors (the generator and
ingest of ``benchmarks/registry.py``: 10 faces per person; no HNSW index is built: counts do not need one,
and searches are then exact). The store is reopened (its people directory rebuilt from the shard, as at a
registry's start), then the registry's gRPC servicer is served in-process and asked, one call at a time:
``GetCollection`` with counts (what the gateway may ask every few seconds), the same in the domain without
gRPC, and ``Search`` of one descriptor (top 5 people). It also counts the store calls a search makes.

Prints a table, then one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from benchmarks.common import machine, percentile_ms, print_json, print_table
from benchmarks.registry import ingest
from facerec.registry.v1 import registry_pb2 as pb
from facerec.registry.v1 import registry_pb2_grpc as pb_grpc
from facerec_registry.domain import SearchQuery
from facerec_registry.registry import Registry
from facerec_registry.servicer import RegistryServicer
from facerec_registry.store.base import StoreConfig
from facerec_registry.store.edge import EdgeFaceStore
from tests.registry.faces import DIMENSION, MODEL_ID, gallery

COLLECTION = "local__gallery"
FACES_PER_PERSON = 10


class CountingStore:
    """The real store, counting the calls made to it."""

    def __init__(self, store: EdgeFaceStore) -> None:
        self.store = store
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.store, name)
        if not callable(attribute):
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            return attribute(*args, **kwargs)

        return counted


def fill(config: StoreConfig, faces: int) -> tuple[float, np.ndarray]:
    """Fills the collection; returns faces/s and some descriptors to search with."""
    vectors, owners, _ = gallery(
        max(1, faces // FACES_PER_PERSON), FACES_PER_PERSON, np.random.default_rng(faces), spectrum="facelike"
    )
    store = EdgeFaceStore(config)
    try:
        registry = Registry(store)
        registry.create_collection(COLLECTION, MODEL_ID, DIMENSION, 0.6, "local")
        rate = ingest(registry, vectors, owners, collection=COLLECTION, model_id=MODEL_ID, batch=2000)
    finally:
        store.close()
    return rate, vectors[:: max(1, len(vectors) // 200)][:200]


def timed(call: Any, count: int) -> list[float]:
    """Seconds of each of ``count`` calls after one warm-up."""
    call()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


async def through_grpc(registry: Registry, queries: np.ndarray, calls: int) -> tuple[list[float], list[float], int]:
    """GetCollection-with-counts and Search latencies through the servicer; the face count it answered."""
    server = grpc.aio.server()
    pb_grpc.add_RegistryServicer_to_server(RegistryServicer(registry), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.RegistryStub(channel)
            counted = (await stub.GetCollection(pb.GetCollectionRequest(name=COLLECTION))).face_count
            get_collection = []
            for _ in range(calls):
                started = time.perf_counter()
                await stub.GetCollection(pb.GetCollectionRequest(name=COLLECTION))
                get_collection.append(time.perf_counter() - started)
            search = []
            for query in queries:
                request = pb.SearchRequest(
                    collection=COLLECTION, queries=[pb.QueryVector(values=query.tolist())], top_k=5
                )
                started = time.perf_counter()
                await stub.Search(request)
                search.append(time.perf_counter() - started)
    finally:
        await server.stop(None)
    return get_collection, search, counted


def run(faces: int, calls: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        config = StoreConfig(data_dir=Path(tmp), optimize_threshold=10**9)  # no index build: counts need none
        fill_rate, queries = fill(config, faces)
        started = time.perf_counter()
        store = CountingStore(EdgeFaceStore(config))
        reopen_s = time.perf_counter() - started
        try:
            registry = Registry(store)
            domain = timed(lambda: registry.get_collection(COLLECTION), calls)
            registry.search(COLLECTION, SearchQuery([queries[0]], top_k=5))
            store.calls.clear()
            for query in queries[:20]:
                registry.search(COLLECTION, SearchQuery([query], top_k=5))
            store_calls = {name: count / 20 for name, count in sorted(store.calls.items())}
            get_collection, search, counted = asyncio.run(through_grpc(registry, queries, calls))
        finally:
            store.store.close()
    print(f"machine: {machine()}")
    print_table(
        ("faces", "GetCollection+counts gRPC p50/p99 ms", "in the domain p50 ms", "Search gRPC p50/p99 ms", "reopen s"),
        [
            (
                counted,
                f"{percentile_ms(get_collection, 50):.3f} / {percentile_ms(get_collection, 99):.3f}",
                f"{percentile_ms(domain, 50):.4f}",
                f"{percentile_ms(search, 50):.2f} / {percentile_ms(search, 99):.2f}",
                f"{reopen_s:.1f}",
            )
        ],
    )
    print(f"store calls per search: {store_calls}")
    return {
        "machine": machine(),
        "faces": counted,
        "fill_faces_per_s": round(fill_rate),
        "reopen_s": round(reopen_s, 2),
        "get_collection_counts_p50_ms": round(percentile_ms(get_collection, 50), 3),
        "get_collection_counts_p99_ms": round(percentile_ms(get_collection, 99), 3),
        "get_collection_counts_domain_p50_ms": round(percentile_ms(domain, 50), 4),
        "search_exact_p50_ms": round(percentile_ms(search, 50), 2),
        "search_exact_p99_ms": round(percentile_ms(search, 99), 2),
        "store_calls_per_search": store_calls,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=1_000_000, help="faces in the collection")
    parser.add_argument("--calls", type=int, default=500, help="GetCollection calls timed")
    args = parser.parse_args()
    print_json(run(args.faces, args.calls))


if __name__ == "__main__":
    main()
