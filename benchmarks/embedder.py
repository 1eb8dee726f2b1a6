"""Embedder benchmark: the same real faces through dlib, onnxruntime, Triton and the embedder service.

    .venv/bin/python -m benchmarks.embedder [--faces 64] [--photos 24] [--phone-photos 6]

(a) dlib in-process on aligned chips (``compute_face_descriptor``), (b) onnxruntime in-process on the same
chips (our converted model), (c) Triton over gRPC (the ``tritonserver`` of nvidia-pytriton started by our
launcher, CPU Python backend; batches of 32 chips, 2 in flight), (d) the embedder service with its default
settings on whole photos (decode, detection on a copy bounded to 640 px, landmarks and alignment at full
resolution, Triton) against dlib's whole pipeline on the same photos (HOG with one upsampling on the full photo,
shape predictor, descriptor), (e) the same for 12 MP phone photos: the benchmark photos padded to 4:3 and
upscaled to 4032x3024 JPEGs in a temporary folder (never kept). (d) and (e) alternate the service and dlib in
three rounds, so that load from other processes weighs on both alike. Prints a table, then one JSON object as the last
line with ``triton_vs_dlib_throughput`` ((c)/(a), target >= 15), ``pipeline_vs_dlib_throughput`` ((d) over
dlib's pipeline, target >= 10), ``pipeline_12mp_vs_dlib_throughput`` ((e), target >= 10) and ``max_abs_diff``
(ONNX vs dlib descriptors, target <= 1e-5).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import dlib
import grpc
import numpy as np
import tritonclient.grpc.aio as triton_aio
from PIL import Image, ImageOps

from benchmarks.common import benchmark_photos, machine, print_json, print_table, timed
from facerec.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from facerec.runtime.server import ServiceRunner
from facerec_embedder.app import EmbedderApp
from facerec_embedder.detection import landmarks_model_path
from facerec_embedder.model import INPUT_NAME, OUTPUT_NAME
from facerec_embedder.model.files import DEFAULT_ONNX_PATH, RECOGNITION_MODEL, model_file
from facerec_embedder.runtime import OnnxRuntimeEmbedder
from facerec_embedder.settings import EmbedderSettings
from facerec_embedder.triton.launcher import TritonServer

UPSAMPLE = 1  # dlib's own pipeline, as face_recognition and dlib's examples run it
PHONE_PHOTO = (4032, 3024)


def load(photo: Path) -> np.ndarray:
    with Image.open(photo) as opened:
        return np.asarray(ImageOps.exif_transpose(opened).convert("RGB"))


class Dlib:
    def __init__(self) -> None:
        self.detector = dlib.get_frontal_face_detector()
        self.shapes = dlib.shape_predictor(str(landmarks_model_path()))
        self.model = dlib.face_recognition_model_v1(str(model_file(RECOGNITION_MODEL)))

    def chips(self, photo: Path) -> list[np.ndarray]:
        image = load(photo)
        return [
            dlib.get_face_chip(image, self.shapes(image, box), size=150, padding=0.25)
            for box in self.detector(image, UPSAMPLE)
        ]

    def descriptors(self, chips: list[np.ndarray]) -> np.ndarray:
        return np.asarray([self.model.compute_face_descriptor(chip) for chip in chips], dtype=np.float32)

    def pipeline(self, photo: Path) -> int:
        """dlib's whole pipeline on one photo; returns the number of faces."""
        chips = self.chips(photo)
        if chips:
            self.descriptors(chips)
        return len(chips)


async def triton_throughput(
    server: TritonServer, chips: np.ndarray, batch: int = 32, in_flight: int = 2
) -> tuple[float, np.ndarray]:
    client = triton_aio.InferenceServerClient(server.grpc_url)
    slots = asyncio.Semaphore(in_flight)

    async def infer(part: np.ndarray) -> np.ndarray:
        async with slots:
            tensor = triton_aio.InferInput(INPUT_NAME, list(part.shape), "UINT8")
            tensor.set_data_from_numpy(part)
            result = await client.infer(
                server.model_name, [tensor], outputs=[triton_aio.InferRequestedOutput(OUTPUT_NAME)]
            )
            return np.asarray(result.as_numpy(OUTPUT_NAME))

    parts = [chips[i : i + batch] for i in range(0, len(chips), batch)]
    await infer(parts[0])  # warm-up
    started = asyncio.get_running_loop().time()
    outputs = await asyncio.gather(*(infer(p) for p in parts))
    elapsed = asyncio.get_running_loop().time() - started
    await client.close()
    return len(chips) / elapsed, np.concatenate(outputs)


async def service_throughput(address: str, photos: list[Path], concurrency: int = 4) -> tuple[float, int]:
    payloads = [p.read_bytes() for p in photos]
    slots = asyncio.Semaphore(concurrency)
    async with grpc.aio.insecure_channel(address, options=[("grpc.max_receive_message_length", 64 << 20)]) as channel:
        stub = embedder_pb2_grpc.EmbedderStub(channel)

        async def embed(payload: bytes) -> int:
            async with slots:
                response = await stub.EmbedPhoto(embedder_pb2.EmbedPhotoRequest(image=payload), timeout=120)
                return len(response.faces)

        await embed(payloads[0])
        started = asyncio.get_running_loop().time()
        faces = await asyncio.gather(*(embed(p) for p in payloads))
        elapsed = asyncio.get_running_loop().time() - started
    return len(payloads) / elapsed, sum(faces)


async def side_by_side(
    address: str, reference: Dlib, photos: list[Path], rounds: int = 3
) -> tuple[float, int, float, int]:
    """(service photos/s, its faces, dlib's photos/s, its faces) on ``photos``, in alternating rounds, so that
    load from other processes on the machine weighs on both alike."""
    service_s = dlib_s = 0.0
    service_faces = dlib_faces = 0
    for part in (photos[i::rounds] for i in range(min(rounds, len(photos)))):
        rate, faces = await service_throughput(address, part)
        service_s, service_faces = service_s + len(part) / rate, service_faces + faces
        started = time.perf_counter()
        dlib_faces += sum(reference.pipeline(photo) for photo in part)
        dlib_s += time.perf_counter() - started
    return len(photos) / service_s, service_faces, len(photos) / dlib_s, dlib_faces


def phone_photos(photos: list[Path], folder: Path) -> list[Path]:
    """``photos`` padded to 4:3 and upscaled to 12 MP JPEGs (quality 90) in ``folder``."""
    made = []
    for index, photo in enumerate(photos):
        with Image.open(photo) as opened:
            upright = ImageOps.exif_transpose(opened).convert("RGB")
        large = ImageOps.pad(upright, PHONE_PHOTO, Image.Resampling.BICUBIC, color=(128, 128, 128))
        made.append(folder / f"phone-{index}.jpg")
        large.save(made[-1], "JPEG", quality=90)
    return made


async def run(face_count: int, photo_count: int, phone_count: int) -> dict[str, object]:
    reference = Dlib()
    chips: list[np.ndarray] = []
    for photo in benchmark_photos(200):
        chips.extend(reference.chips(photo))
        if len(chips) >= face_count:
            break
    batch = np.stack(chips[:face_count])
    n = len(batch)

    dlib_s = timed(lambda: reference.descriptors(list(batch)))
    expected = reference.descriptors(list(batch[:8]))
    onnx = OnnxRuntimeEmbedder(DEFAULT_ONNX_PATH)
    await onnx.embed(batch[:4])
    started = asyncio.get_running_loop().time()
    onnx_out = await onnx.embed(batch)
    onnx_s = asyncio.get_running_loop().time() - started
    onnx.close()

    photos = benchmark_photos(photo_count)
    with tempfile.TemporaryDirectory() as tmp, TritonServer() as server:
        phones = phone_photos(benchmark_photos(phone_count), Path(tmp))
        triton_fps, triton_out = await triton_throughput(server, batch)
        settings = EmbedderSettings(port=0, metrics_port=0, triton_url=server.grpc_url, log_level="WARNING")
        runner = ServiceRunner(EmbedderApp(settings), settings)
        await runner.start()
        try:
            service_pps, service_faces, dlib_pps, dlib_face_count = await side_by_side(
                runner.address, reference, photos
            )
            phone_pps, phone_faces, dlib_phone_pps, dlib_phone_count = await side_by_side(
                runner.address, reference, phones
            )
        finally:
            await runner.stop(0)

    max_abs_diff = float(max(np.abs(onnx_out[:8] - expected).max(), np.abs(triton_out[:8] - expected).max()))
    rows = [
        ("(a) dlib on chips", n, f"{n / dlib_s:.1f} faces/s", f"{dlib_s / n * 1000:.1f} ms/face"),
        ("(b) onnxruntime in-process", n, f"{n / onnx_s:.1f} faces/s", f"{onnx_s / n * 1000:.2f} ms/face"),
        ("(c) Triton over gRPC", n, f"{triton_fps:.1f} faces/s", f"{1000 / triton_fps:.2f} ms/face"),
        ("(d) embedder service, photos", len(photos), f"{service_pps:.2f} photos/s", f"{service_faces} faces"),
        ("    dlib whole pipeline, photos", len(photos), f"{dlib_pps:.2f} photos/s", f"{dlib_face_count} faces"),
        ("(e) embedder service, 12 MP photos", len(phones), f"{phone_pps:.2f} photos/s", f"{phone_faces} faces"),
        ("    dlib whole pipeline, 12 MP", len(phones), f"{dlib_phone_pps:.3f} photos/s", f"{dlib_phone_count} faces"),
    ]
    print(f"machine: {machine()}")
    print_table(("path", "items", "throughput", "per item"), rows)
    return {
        "machine": machine(),
        "faces": n,
        "photos": len(photos),
        "dlib_faces_per_s": round(n / dlib_s, 2),
        "onnxruntime_faces_per_s": round(n / onnx_s, 2),
        "triton_faces_per_s": round(triton_fps, 2),
        "service_photos_per_s": round(service_pps, 3),
        "dlib_pipeline_photos_per_s": round(dlib_pps, 3),
        "triton_vs_dlib_throughput": round(triton_fps / (n / dlib_s), 2),
        "pipeline_vs_dlib_throughput": round(service_pps / dlib_pps, 2),
        "phone_photos": len(phones),
        "service_12mp_photos_per_s": round(phone_pps, 3),
        "dlib_pipeline_12mp_photos_per_s": round(dlib_phone_pps, 4),
        "pipeline_12mp_vs_dlib_throughput": round(phone_pps / dlib_phone_pps, 2),
        "service_faces": service_faces,
        "dlib_faces": dlib_face_count,
        "max_abs_diff": max_abs_diff,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=64, help="aligned faces for (a)-(c)")
    parser.add_argument("--photos", type=int, default=24, help="whole photos for (d)")
    parser.add_argument("--phone-photos", type=int, default=6, help="12 MP photos for (e)")
    args = parser.parse_args()
    print_json(asyncio.run(run(args.faces, args.photos, args.phone_photos)))


if __name__ == "__main__":
    main()
