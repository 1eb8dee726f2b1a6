"""End-to-end benchmark: identify through the gateway (every part its own process, as `facerec up` runs them)
against the same pipeline in one process, and bulk enrollment through the stream against the embedding
stage alone.

    .venv/bin/python -m benchmarks.e2e [--photos 24] [--phone-photos 8]

In one process: decode, detection, landmarks, alignment (the embedder's ``FacePipeline`` with the service's
default detector), onnxruntime
for the descriptors, the embedded Qdrant Edge registry for the search, the same decision logic. Through the
gateway: client -> gateway -> embedder -> Triton, gateway -> registry, over gRPC on loopback.
Prints a table, then one JSON object as the last line with ``gateway_overhead_ratio`` (gateway p50 latency
over in-process p50 at concurrency 1, target <= 1.15) and ``bulk_enroll_vs_embed_ratio`` (faces/s enrolled
through BulkEnroll over faces/s through the embedder alone, target >= 0.8). Then the same photos at two sizes,
padded to 4:3: 12 MP (4032x3024) and 1 MP (1155x866) JPEGs made at run time, identified one at a time through the
gateway, the two sizes alternating: ``identify_12mp_p50_ms``, ``identify_1mp_p50_ms`` and
``identify_12mp_vs_1mp_p50`` (target <= 1.5).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
from PIL import Image, ImageOps

from benchmarks.common import benchmark_photos, machine, percentile_ms, print_json, print_table
from facerec.cli.stack import LocalStack
from facerec.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from facerec.runtime.net import free_port
from facerec.sdk import AsyncClient
from facerec_embedder.app import face_detector
from facerec_embedder.model import MODEL_ID
from facerec_embedder.model.files import DEFAULT_ONNX_PATH
from facerec_embedder.pipeline import FacePipeline
from facerec_embedder.runtime import OnnxRuntimeEmbedder
from facerec_embedder.settings import EmbedderSettings
from facerec_gateway.decisions import Candidate, assign_identities
from facerec_registry.domain import FaceRecord, SearchQuery
from facerec_registry.registry import Registry
from facerec_registry.store.base import StoreConfig
from facerec_registry.store.edge import EdgeFaceStore

Identify = Callable[[bytes], Awaitable[int]]

PHONE_PHOTO, ONE_MEGAPIXEL = (4032, 3024), (1155, 866)


def resized_jpeg(photo: Path, size: tuple[int, int]) -> bytes:
    """``photo`` padded to the aspect ratio of ``size`` and resized to it, as a JPEG (quality 90)."""
    with Image.open(photo) as opened:
        upright = ImageOps.exif_transpose(opened).convert("RGB")
    buffer = io.BytesIO()
    ImageOps.pad(upright, size, Image.Resampling.BICUBIC, color=(128, 128, 128)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


async def measure(identify: Identify, payloads: list[bytes], concurrency: int) -> tuple[list[float], float]:
    """Latencies of every call and photos/s, ``concurrency`` calls in flight."""
    slots = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(payload: bytes) -> None:
        async with slots:
            started = time.perf_counter()
            await identify(payload)
            latencies.append(time.perf_counter() - started)

    await identify(payloads[0])
    started = time.perf_counter()
    await asyncio.gather(*(one(p) for p in payloads))
    return latencies, len(payloads) / (time.perf_counter() - started)


async def paired_latencies(identify: Identify, large: list[bytes], small: list[bytes]) -> tuple[list[float], ...]:
    """Latencies of each photo at both sizes, one call at a time, the sizes alternating so that load from other
    processes weighs on both alike."""
    await identify(large[0])
    await identify(small[0])
    timings: tuple[list[float], list[float]] = ([], [])
    for pair in zip(large, small, strict=True):
        for payload, latencies in zip(pair, timings, strict=True):
            started = time.perf_counter()
            await identify(payload)
            latencies.append(time.perf_counter() - started)
    return timings


class InProcess:
    """The whole identify pipeline in this process."""

    def __init__(self, data_dir: Path) -> None:
        self.onnx = OnnxRuntimeEmbedder(DEFAULT_ONNX_PATH)
        self.executor = ThreadPoolExecutor(2)
        self.pipeline = FacePipeline(face_detector(EmbedderSettings()), self.onnx, self.executor)
        self.registry = Registry(EdgeFaceStore(StoreConfig(data_dir=data_dir)))
        self.registry.create_collection("bench", MODEL_ID, 128, 0.6, "")

    async def enroll(self, person: str, payload: bytes) -> None:
        found = await self.pipeline.analyze(payload)
        if found.faces and found.faces[0].embedding is not None:
            face = FaceRecord(face_id=person, person_id=person, embedding=found.faces[0].embedding, model_id=MODEL_ID)
            await asyncio.to_thread(self.registry.upsert_faces, "bench", [face])

    async def identify(self, payload: bytes) -> int:
        found = await self.pipeline.analyze(payload)
        vectors = [f.embedding for f in found.faces if f.embedding is not None]
        if not vectors:
            return 0
        results = await asyncio.to_thread(self.registry.search, "bench", SearchQuery(vectors=vectors, top_k=5))
        assign_identities([[Candidate(m.person_id, m.distance) for m in r] for r in results], 0.6)
        return len(vectors)


async def embed_alone(address: str, payloads: list[bytes], concurrency: int = 8) -> float:
    """Faces/s through the embedder service alone (the embedding stage of an enrollment)."""
    slots = asyncio.Semaphore(concurrency)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = embedder_pb2_grpc.EmbedderStub(channel)

        async def one(payload: bytes) -> int:
            async with slots:
                return len((await stub.EmbedPhoto(embedder_pb2.EmbedPhotoRequest(image=payload), timeout=120)).faces)

        started = time.perf_counter()
        faces = sum(await asyncio.gather(*(one(p) for p in payloads)))
    return faces / (time.perf_counter() - started)


async def run(photo_count: int, phone_count: int) -> dict[str, object]:
    photos = benchmark_photos(photo_count)
    phone_sources = benchmark_photos(phone_count)
    phones = [resized_jpeg(p, PHONE_PHOTO) for p in phone_sources]
    small = [resized_jpeg(p, ONE_MEGAPIXEL) for p in phone_sources]
    payloads = [p.read_bytes() for p in photos]
    gallery = {f"person-{i}": payload for i, payload in enumerate(payloads[: min(8, len(payloads))])}
    rows: list[tuple[object, ...]] = []
    figures: dict[str, object] = {"machine": machine(), "photos": len(payloads)}
    with tempfile.TemporaryDirectory() as tmp:
        local = InProcess(Path(tmp) / "inproc")
        for person, payload in gallery.items():
            await local.enroll(person, payload)
        for concurrency in (1, 8):
            latencies, rate = await measure(local.identify, payloads, concurrency)
            figures[f"inprocess_c{concurrency}_p50_ms"] = round(percentile_ms(latencies, 50), 1)
            rows.append(("in one process", concurrency, *_summary(latencies, rate)))
        local.onnx.close()

        stack = LocalStack(
            Path(tmp) / "stack", gateway_port=free_port(), embedder_port=free_port(), registry_port=free_port()
        )
        await asyncio.to_thread(stack.start)
        try:
            async with AsyncClient(stack.gateway.address, stack.api_key, timeout=120) as client:
                await client.create_collection("bench")
                for person, payload in gallery.items():
                    await client.enroll(person, payload, collection="bench", face_selection="largest")

                async def identify(payload: bytes) -> int:
                    return len((await client.identify(payload, collection="bench")).faces)

                for concurrency in (1, 8):
                    latencies, rate = await measure(identify, payloads, concurrency)
                    figures[f"gateway_c{concurrency}_p50_ms"] = round(percentile_ms(latencies, 50), 1)
                    figures[f"gateway_c{concurrency}_photos_per_s"] = round(rate, 3)
                    rows.append(("through the gateway", concurrency, *_summary(latencies, rate)))

                paired = await paired_latencies(identify, phones, small)
                for label, latencies in zip(("12mp", "1mp"), paired, strict=True):
                    figures[f"identify_{label}_p50_ms"] = round(percentile_ms(latencies, 50), 1)
                    rate = len(latencies) / sum(latencies)
                    rows.append((f"gateway, {label.upper()} photos", 1, *_summary(latencies, rate)))

                embed_fps = await embed_alone(stack.embedder.address, payloads)
                await client.create_collection("bench-bulk")
                started = time.perf_counter()
                bulk = await client.bulk_enroll(
                    [(f"bulk-{i}", [payload]) for i, payload in enumerate(payloads)],
                    collection="bench-bulk",
                    face_selection="largest",
                )
                bulk_fps = bulk.faces_enrolled / (time.perf_counter() - started)
        finally:
            await asyncio.to_thread(stack.stop)
    print(f"machine: {machine()}")
    print_table(("identify", "concurrency", "p50 ms", "p99 ms", "photos/s"), rows)
    print_table(
        ("enrollment", "faces/s"),
        [("embedder alone (8 in flight)", f"{embed_fps:.2f}"), ("BulkEnroll stream", f"{bulk_fps:.2f}")],
    )
    figures.update(
        embed_faces_per_s=round(embed_fps, 3),
        bulk_enroll_faces_per_s=round(bulk_fps, 3),
        gateway_overhead_ratio=round(float(figures["gateway_c1_p50_ms"]) / float(figures["inprocess_c1_p50_ms"]), 3),  # type: ignore[arg-type]
        bulk_enroll_vs_embed_ratio=round(bulk_fps / embed_fps, 3),
        identify_12mp_vs_1mp_p50=round(
            float(figures["identify_12mp_p50_ms"]) / float(figures["identify_1mp_p50_ms"]),  # type: ignore[arg-type]
            3,
        ),
    )
    return figures


def _summary(latencies: list[float], rate: float) -> tuple[str, str, str]:
    return f"{percentile_ms(latencies, 50):.1f}", f"{percentile_ms(latencies, 99):.1f}", f"{rate:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=24, help="photos per measurement")
    parser.add_argument("--phone-photos", type=int, default=8, help="photos identified at 12 MP and at 1 MP")
    args = parser.parse_args()
    print_json(asyncio.run(run(args.photos, args.phone_photos)))


if __name__ == "__main__":
    main()
