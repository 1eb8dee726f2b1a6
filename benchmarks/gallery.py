"""Gallery benchmark: collection counts, a page of people, and identification with 1k and with 1M enrolled faces.

    .venv/bin/python -m benchmarks.gallery                       # 1k and 1M faces (1M: ~10 min, most of it the index)
    .venv/bin/python -m benchmarks.gallery --sizes 3000 --identify-s 2

For each size, a fresh registry data folder is filled in this process with face-like descriptors (the
generator and ingest of ``benchmarks/registry.py``: 10 faces per person) and its HNSW index is built; then
the whole stack is started on it as ``facerec up`` runs it (Triton, embedder, registry, gateway, each its own
process). Through the gateway's public API: a few people are enrolled from real photos; real photos are
identified one call at a time for longer than two lifetimes of the gateway's collection cache (5 s), so its
expiries fall inside the measurement; the collection is asked with its counts; and the first pages of 100
people are listed.

Prints a table, then one JSON object as the last line: the figures of each size (``runs``) and
``identify_p99_ratio``, the largest size's identify p99 over the smallest's (target <= 1.5).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from benchmarks.common import benchmark_photos, machine, percentile_ms, print_json, print_table
from benchmarks.registry import ingest
from facerec.cli.stack import LOCAL_TENANT, LocalStack
from facerec.runtime.net import free_port
from facerec.sdk import AsyncClient
from facerec.sdk.errors import FailedPrecondition
from facerec_embedder.model import MODEL_ID
from facerec_registry.registry import Registry
from facerec_registry.store.base import StoreConfig
from facerec_registry.store.edge import EdgeFaceStore
from tests.registry.faces import DIMENSION, gallery

COLLECTION = "gallery"
FACES_PER_PERSON = 10
PAGE_SIZE = 100
# Real people enrolled from photos through the gateway, on top of the synthetic gallery.
REAL_PEOPLE = 8


@dataclass
class Figures:
    """What one gallery size measured through the gateway (latencies in ms)."""

    faces: int
    people: int
    fill_faces_per_s: float
    index_build_s: float
    stack_start_s: float
    real_people_enrolled: int
    identify_calls: int
    identify_p50_ms: float
    identify_p99_ms: float
    get_collection_p50_ms: float
    get_collection_p99_ms: float
    people_page_p50_ms: float
    people_page_p99_ms: float
    counted_faces: int
    counted_people: int


def fill(data_dir: Path, faces: int) -> tuple[float, float]:
    """Fills the tenant's gallery with ``faces`` face-like descriptors and builds its index; (faces/s, build s)."""
    people = max(1, faces // FACES_PER_PERSON)
    vectors, owners, _ = gallery(people, FACES_PER_PERSON, np.random.default_rng(faces), spectrum="facelike")
    name = f"{LOCAL_TENANT}__{COLLECTION}"  # the gateway's name for the local tenant's collection
    store = EdgeFaceStore(StoreConfig(data_dir=data_dir))
    try:
        registry = Registry(store)
        registry.create_collection(name, MODEL_ID, DIMENSION, 0.6, LOCAL_TENANT)
        rate = ingest(registry, vectors, owners, collection=name, model_id=MODEL_ID)
        started = time.perf_counter()
        store.wait_for_indexing(name)
        store.optimize_in_process(name)
        return rate, time.perf_counter() - started
    finally:
        store.close()


async def enroll_real_people(client: AsyncClient, payloads: list[bytes]) -> int:
    """Enrolls one person per photo, so that identification finds someone; returns how many were enrolled.

    A photo the quality gates refuse is skipped: identification costs the same whether it matches or not.
    """
    enrolled = 0
    for i, payload in enumerate(payloads):
        try:
            await client.enroll(f"real-{i}", payload, collection=COLLECTION, face_selection="largest")
        except FailedPrecondition:
            continue
        enrolled += 1
    return enrolled


async def timed_calls(call: Callable[[], Awaitable[object]], count: int) -> list[float]:
    """Seconds taken by each of ``count`` calls, one at a time, after one warm-up call."""
    await call()
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        await call()
        latencies.append(time.perf_counter() - started)
    return latencies


async def identify_for(client: AsyncClient, payloads: list[bytes], seconds: float) -> list[float]:
    """Identifies the photos in turn, one call at a time, for at least ``seconds``; each call's seconds."""
    await client.identify(payloads[0], collection=COLLECTION)
    latencies: list[float] = []
    started = time.perf_counter()
    while time.perf_counter() - started < seconds or len(latencies) < len(payloads):
        payload = payloads[len(latencies) % len(payloads)]
        call_started = time.perf_counter()
        await client.identify(payload, collection=COLLECTION)
        latencies.append(time.perf_counter() - call_started)
    return latencies


async def people_pages(client: AsyncClient, pages: int) -> list[float]:
    """Seconds taken by each of the first ``pages`` pages of people, walked with their tokens."""
    latencies: list[float] = []
    token = ""
    for _ in range(pages):
        started = time.perf_counter()
        page = await client.list_people(collection=COLLECTION, page_size=PAGE_SIZE, page_token=token)
        latencies.append(time.perf_counter() - started)
        token = page.next_page_token
        if not token:
            break
    return latencies


async def measure(faces: int, payloads: list[bytes], identify_s: float, work_dir: Path) -> Figures:
    """Fills a gallery of ``faces``, starts the stack on it and measures through the gateway."""
    stack_dir = work_dir / f"stack-{faces}"
    fill_rate, index_build_s = await asyncio.to_thread(fill, stack_dir / "registry", faces)
    stack = LocalStack(stack_dir, gateway_port=free_port(), embedder_port=free_port(), registry_port=free_port())
    started = time.perf_counter()
    await asyncio.to_thread(stack.start)
    stack_start_s = time.perf_counter() - started
    try:
        async with AsyncClient(stack.gateway.address, stack.api_key, timeout=120) as client:
            real_people = await enroll_real_people(client, payloads[:REAL_PEOPLE])
            identify = await identify_for(client, payloads, identify_s)
            collection = await client.get_collection(COLLECTION)
            get_collection = await timed_calls(lambda: client.get_collection(COLLECTION), 20)
            pages = await people_pages(client, 10)
    finally:
        await asyncio.to_thread(stack.stop)
    return Figures(
        faces=faces,
        people=max(1, faces // FACES_PER_PERSON),
        fill_faces_per_s=round(fill_rate),
        index_build_s=round(index_build_s, 1),
        stack_start_s=round(stack_start_s, 1),
        real_people_enrolled=real_people,
        identify_calls=len(identify),
        identify_p50_ms=round(percentile_ms(identify, 50), 1),
        identify_p99_ms=round(percentile_ms(identify, 99), 1),
        get_collection_p50_ms=round(percentile_ms(get_collection, 50), 2),
        get_collection_p99_ms=round(percentile_ms(get_collection, 99), 2),
        people_page_p50_ms=round(percentile_ms(pages, 50), 2),
        people_page_p99_ms=round(percentile_ms(pages, 99), 2),
        counted_faces=collection.face_count,
        counted_people=collection.person_count,
    )


async def run(sizes: list[int], photo_count: int, identify_s: float) -> dict[str, object]:
    payloads = [p.read_bytes() for p in benchmark_photos(photo_count)]
    runs: list[Figures] = []
    with tempfile.TemporaryDirectory() as tmp:
        for faces in sizes:
            runs.append(await measure(faces, payloads, identify_s, Path(tmp)))
    print(f"machine: {machine()}")
    print_table(
        ("faces", "identify p50/p99 ms", "calls", "GetCollection p50/p99 ms", "page of 100 p50/p99 ms", "index s"),
        [
            (
                f.faces,
                f"{f.identify_p50_ms} / {f.identify_p99_ms}",
                f.identify_calls,
                f"{f.get_collection_p50_ms} / {f.get_collection_p99_ms}",
                f"{f.people_page_p50_ms} / {f.people_page_p99_ms}",
                f.index_build_s,
            )
            for f in runs
        ],
    )
    smallest, largest = min(runs, key=lambda f: f.faces), max(runs, key=lambda f: f.faces)
    return {
        "machine": machine(),
        "runs": [asdict(f) for f in runs],
        "identify_p99_ratio": round(largest.identify_p99_ms / smallest.identify_p99_ms, 3),
        "largest_faces": largest.faces,
        "largest_get_collection_p50_ms": largest.get_collection_p50_ms,
        "largest_people_page_p50_ms": largest.people_page_p50_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,1000000", help="gallery sizes (faces), comma-separated")
    parser.add_argument("--photos", type=int, default=24, help="distinct photos identified in turn")
    parser.add_argument("--identify-s", type=float, default=12.0, help="seconds of identification per size")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    print_json(asyncio.run(run(sizes, args.photos, args.identify_s)))


if __name__ == "__main__":
    main()
