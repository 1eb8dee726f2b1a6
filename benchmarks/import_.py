"""Import benchmark: `facerec import` of a folder of large photos through the whole stack, against the embedder's
own photos/s on the same photos, measured in the same run.

    .venv/bin/python -m benchmarks.import_ [--photos 600] [--width 2000 --height 1500]

The photos are made at run time in a temporary folder from the real photos of ``$FACEREC_FACES_DIR/deepface`` (one
folder per labelled person; the sample photos where that set is absent): each source photo is scaled to fit the
size, placed at a varying offset (mirrored every other time), so that no two are the same photo, and saved as
JPEG. The stack runs every part as its own process, as `facerec up` does. The embedder alone embeds every photo (8
in flight; half of them before the import, half after, so that a change of load during the run weighs on both
sides): its photos/s, and which photos hold a face the gateway's enrollment gates accept (the faces an import
should enroll). The real CLI (`facerec import --create --largest`, a subprocess, timed from start to exit)
imports the folder, and the collection is read back through the gateway.

Prints a table, then one JSON object as the last line with ``import_vs_embedder_ratio`` (import photos/s over
the embedder's, target >= 0.8) and ``complete`` (the CLI succeeded and every person and face that should be
enrolled is, with nothing else).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import grpc
from PIL import Image, ImageOps

from benchmarks.common import machine, print_json, print_table
from facerec.cli.stack import LocalStack
from facerec.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from facerec.runtime.net import free_port
from facerec.sdk import AsyncClient
from facerec_gateway.app import quality_policy
from facerec_gateway.enrollment import FaceSelection, choose_face
from facerec_gateway.settings import GatewaySettings
from tests.paths import SAMPLES_DIR, SHARED_FACES_DIR

COLLECTION = "bench-import"
MAX_VARIANTS = 100  # distinct large photos made from one source photo


@dataclass(frozen=True)
class SourcePhoto:
    person_id: str
    path: Path


def source_photos() -> list[SourcePhoto]:
    """Labelled real photos, the people taking turns: deepface's (13 people) when $FACEREC_FACES_DIR is present,
    else the sample photos."""
    deepface = SHARED_FACES_DIR / "deepface"
    labels = deepface / "identities.csv"
    if labels.is_file():
        with labels.open() as rows:
            photos = [SourcePhoto(row["identity"], deepface / row["file"]) for row in csv.DictReader(rows)]
    else:
        samples = [p for p in sorted(SAMPLES_DIR.glob("*.jpg")) if "partial" not in p.name]
        if not samples:
            raise SystemExit(f"no photos: run scripts/setup.sh (expected {SAMPLES_DIR})")
        photos = [SourcePhoto(p.stem.rstrip("0123456789"), p) for p in samples]
    turn: Counter[str] = Counter()
    ranked = []
    for photo in photos:
        ranked.append((turn[photo.person_id], photo.person_id, photo))
        turn[photo.person_id] += 1
    return [photo for _, _, photo in sorted(ranked, key=lambda r: (r[0], r[1]))]


def large_photo(source: Path, variant: int, size: tuple[int, int]) -> bytes:
    """``source`` scaled to fit ``size`` (1 % smaller every second variant, up to 100 variants), mirrored for odd
    variants, on a grey canvas at an offset that changes with the variant: a distinct photo for every variant."""
    with Image.open(source) as opened:
        photo = ImageOps.exif_transpose(opened).convert("RGB")
    fit = min(size[0] / photo.width, size[1] / photo.height) * (1.0 - 0.01 * (variant // 2))
    photo = photo.resize((round(photo.width * fit), round(photo.height * fit)), Image.Resampling.BICUBIC)
    if variant % 2:
        photo = ImageOps.mirror(photo)
    canvas = Image.new("RGB", size, (118, 118, 118))
    spare_x, spare_y = size[0] - photo.width, size[1] - photo.height
    canvas.paste(photo, (spare_x * (variant % 5) // 4, spare_y * (variant % 3) // 2))
    out = io.BytesIO()
    canvas.save(out, format="JPEG", quality=90)
    return out.getvalue()


def make_folder(root: Path, count: int, size: tuple[int, int]) -> list[Path]:
    """``count`` large photos in ``root/<person>/``, cycling over the source photos."""
    sources = source_photos()
    if count > MAX_VARIANTS * len(sources):
        raise SystemExit(f"--photos is at most {MAX_VARIANTS * len(sources)} (distinct photos from {len(sources)})")
    written = []
    for index in range(count):
        source = sources[index % len(sources)]
        folder = root / source.person_id
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{source.path.stem}-{index // len(sources):03d}.jpg"
        path.write_bytes(large_photo(source.path, index // len(sources), size))
        written.append(path)
    return written


async def embed_alone(address: str, photos: list[Path], concurrency: int = 8) -> tuple[float, Counter[str]]:
    """Seconds the embedder alone takes on ``photos``, and the faces per person an enrollment should store (one
    per photo with a face the gateway's gates accept, the largest such face as ``--largest`` takes)."""
    policy = quality_policy(GatewaySettings())  # the gates of the gateway the stack runs (same environment)
    payloads = [p.read_bytes() for p in photos]
    slots = asyncio.Semaphore(concurrency)
    expected: Counter[str] = Counter()
    async with grpc.aio.insecure_channel(address, options=[("grpc.max_receive_message_length", 64 << 20)]) as channel:
        stub = embedder_pb2_grpc.EmbedderStub(channel)

        async def one(path: Path, payload: bytes) -> None:
            async with slots:
                response = await stub.EmbedPhoto(embedder_pb2.EmbedPhotoRequest(image=payload), timeout=300)
            if choose_face(response.faces, policy, FaceSelection.LARGEST).rejections == []:
                expected[path.parent.name] += 1

        await asyncio.gather(*(one(p, b) for p, b in zip(photos[:2], payloads[:2], strict=True)))  # warm-up
        expected.clear()
        started = time.perf_counter()
        await asyncio.gather(*(one(p, b) for p, b in zip(photos, payloads, strict=True)))
    return time.perf_counter() - started, expected


def import_with_cli(stack: LocalStack, folder: Path) -> tuple[float, int, dict[str, object]]:
    """Wall seconds, exit code and JSON summary of `facerec import` run as a user runs it."""
    command = [sys.executable, "-m", "facerec.cli.main", "--gateway", stack.gateway.address, "--json"]
    command += ["import", str(folder), "--collection", COLLECTION, "--create", "--largest"]
    started = time.perf_counter()
    done = subprocess.run(
        command,
        env={**os.environ, "FACEREC_API_KEY": stack.api_key},
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    wall = time.perf_counter() - started
    summary = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else {}
    if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr)
    return wall, done.returncode, summary


async def collection_faces(stack: LocalStack) -> dict[str, int]:
    async with AsyncClient(stack.gateway.address, stack.api_key, timeout=120) as client:
        return {p.person_id: p.face_count async for p in client.iter_people(collection=COLLECTION, page_size=1000)}


async def run(count: int, size: tuple[int, int]) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        photos = make_folder(Path(tmp) / "photos", count, size)
        made_s = time.perf_counter() - started
        stack = LocalStack(
            Path(tmp) / "stack", gateway_port=free_port(), embedder_port=free_port(), registry_port=free_port()
        )
        await asyncio.to_thread(stack.start)
        try:
            # Half the photos before the import and half after, so that a change of load on the machine during the
            # run weighs on both sides of the ratio.
            before_s, expected = await embed_alone(stack.embedder.address, photos[::2])
            wall, code, summary = await asyncio.to_thread(import_with_cli, stack, Path(tmp) / "photos")
            after_s, expected_after = await embed_alone(stack.embedder.address, photos[1::2])
            expected.update(expected_after)
            written = await collection_faces(stack)
        finally:
            await asyncio.to_thread(stack.stop)
    embed_rate = count / (before_s + after_s)
    import_rate = count / wall
    people = len({p.parent.name for p in photos})
    complete = code == 0 and written == dict(expected)
    print(f"machine: {machine()}; {count} photos of {people} people at {size[0]}x{size[1]} (made in {made_s:.0f} s)")
    print_table(
        ("path", "photos/s", "people", "faces"),
        [
            ("embedder alone (8 in flight)", f"{embed_rate:.2f}", len(expected), sum(expected.values())),
            (f"facerec import (exit {code})", f"{import_rate:.2f}", len(written), sum(written.values())),
        ],
    )
    return {
        "machine": machine(),
        "photos": count,
        "people": people,
        "size": f"{size[0]}x{size[1]}",
        "embedder_photos_per_s": round(embed_rate, 3),
        "import_photos_per_s": round(import_rate, 3),
        "import_wall_s": round(wall, 2),
        "import_stream_s": summary.get("elapsed_s"),
        "import_vs_embedder_ratio": round(import_rate / embed_rate, 3),
        "cli_exit_code": code,
        "people_expected": len(expected),
        "people_written": len(written),
        "faces_expected": sum(expected.values()),
        "faces_written": sum(written.values()),
        "photos_rejected": len(summary.get("rejected", [])),  # type: ignore[arg-type]
        "complete": complete,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=600, help="photos imported")
    parser.add_argument("--width", type=int, default=2000)
    parser.add_argument("--height", type=int, default=1500)
    args = parser.parse_args()
    print_json(asyncio.run(run(args.photos, (args.width, args.height))))


if __name__ == "__main__":
    main()
