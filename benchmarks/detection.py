"""Detection benchmark: how many labelled faces each detector finds, and what it does to recognition.

    .venv/bin/python -m benchmarks.detection [--limit 0] [--detectors yunet,hog]

Every labelled set of ``$FACEREC_FACES_DIR`` (each photo shows one labelled person) goes through the embedder's
own pipeline (decode, detection on the bounded copy with the service's defaults, landmarks, chip) once per
detector; a photo counts as found when at least one face comes back. On the deepface set (62 photos of 13
people) every photo's largest face is embedded with the real model (onnxruntime in-process) and scored as in
``$FACEREC_FACES_DIR/README.md``: EER over all same/different pairs of photos whose faces were found, and rank-1
of each photo against all the others (a photo without a face counts as a miss). Prints a table, then one JSON
object as the last line: ``found_<detector>_<set>``, ``photos_<set>``, ``deepface_eer_<detector>``,
``deepface_rank1_<detector>``, ``detect_ms_<detector>`` and the targets ``yunet_finds_at_least_hog_everywhere``
and ``yunet_deepface_no_worse``. ``--limit N`` takes N photos of each set (evenly spread; 0: all).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from benchmarks.common import machine, print_json, print_table
from facerec_embedder.app import face_detector
from facerec_embedder.detection import FaceDetector
from facerec_embedder.errors import InvalidArgument
from facerec_embedder.model.files import DEFAULT_ONNX_PATH
from facerec_embedder.pipeline import FacePipeline
from facerec_embedder.runtime import OnnxRuntimeEmbedder
from facerec_embedder.settings import EmbedderSettings
from tests.paths import SHARED_FACES_DIR

Labelled = list[tuple[Path, str]]

# Sets whose photos are grouped in one folder per person (the folder's name is the person).
FOLDER_SETS = {
    "dlib_johns": "dlib_johns",
    "face_recognition_knn": "face_recognition_knn/train",
    "lfw_a_to_j": "lfw_a_to_j",
    "essex_faces94": "essex_faces94",
    "yalefaces": "yalefaces",
}


def labelled_sets(limit: int) -> dict[str, Labelled]:
    """Every labelled set present, as (photo, person) pairs; ``limit`` photos of each, evenly spread (0: all)."""
    if not SHARED_FACES_DIR.is_dir():
        raise SystemExit(f"{SHARED_FACES_DIR} is missing: the labelled face sets are not on this machine")
    sets = {"deepface": deepface_set()}
    for name, folder in FOLDER_SETS.items():
        root = SHARED_FACES_DIR / folder
        photos = sorted(p for p in root.glob("*/*") if p.is_file() and p.suffix not in (".csv", ".md", ".txt"))
        sets[name] = [(photo, photo.parent.name) for photo in photos]
    return {name: spread(photos, limit) for name, photos in sets.items() if photos}


def deepface_set() -> Labelled:
    folder = SHARED_FACES_DIR / "deepface"
    with (folder / "identities.csv").open() as table:
        return [(folder / row["file"], row["identity"]) for row in csv.DictReader(table)]


def spread(photos: Labelled, limit: int) -> Labelled:
    if limit <= 0 or len(photos) <= limit:
        return photos
    step = len(photos) / limit
    return [photos[int(i * step)] for i in range(limit)]


def detectors(names: Iterable[str]) -> dict[str, FaceDetector]:
    """The service's detectors with its default settings (bounded copy, threshold, upsampling)."""
    return {name: face_detector(EmbedderSettings(detector=name)) for name in names}


async def found_counts(pipeline: FacePipeline, photos: Labelled) -> tuple[int, int]:
    """(photos with at least one face, photos that could not be decoded)."""
    found = undecodable = 0
    for photo, _ in photos:
        try:
            faces = (await pipeline.analyze(photo.read_bytes(), detect_only=True)).faces
        except InvalidArgument:
            undecodable += 1
            continue
        found += bool(faces)
    return found, undecodable


async def deepface_scores(pipeline: FacePipeline, photos: Labelled) -> tuple[float, float, int]:
    """(EER, rank-1, photos without a face) on the deepface set."""
    descriptors: list[np.ndarray | None] = []
    for photo, _ in photos:
        faces = (await pipeline.analyze(photo.read_bytes())).faces
        descriptors.append(faces[0].embedding if faces else None)
    people = [person for _, person in photos]
    found = [(i, d) for i, d in enumerate(descriptors) if d is not None]
    kept = [i for i, _ in found]
    vectors = np.stack([d for _, d in found]) if found else np.zeros((0, 128), np.float32)
    distances = np.linalg.norm(vectors[:, None, :] - vectors[None, :, :], axis=2)
    same = np.array([[people[i] == people[j] for j in kept] for i in kept], dtype=bool)
    upper = np.triu_indices(len(kept), k=1)
    eer = equal_error_rate(distances[upper][same[upper]], distances[upper][~same[upper]])
    np.fill_diagonal(distances, np.inf)
    hits = sum(people[kept[int(np.argmin(row))]] == people[kept[r]] for r, row in enumerate(distances))
    return eer, hits / len(photos), len(photos) - len(kept)


def equal_error_rate(genuine: np.ndarray, impostor: np.ndarray) -> float:
    """The rate where false rejections (genuine above the threshold) equal false accepts (impostor below)."""
    if len(genuine) == 0 or len(impostor) == 0:
        return float("nan")
    thresholds = np.unique(np.concatenate([genuine, impostor]))
    frr = np.array([(genuine > t).mean() for t in thresholds])
    far = np.array([(impostor <= t).mean() for t in thresholds])
    best = int(np.argmin(np.abs(frr - far)))
    return float((frr[best] + far[best]) / 2)


async def run(limit: int, names: list[str]) -> dict[str, object]:
    sets = labelled_sets(limit)
    figures: dict[str, object] = {"machine": machine(), "limit": limit}
    rows: list[tuple[object, ...]] = []
    onnx = OnnxRuntimeEmbedder(DEFAULT_ONNX_PATH)
    with ThreadPoolExecutor(1) as executor:  # one photo at a time: the per-photo time is the detector's
        for name, detector in detectors(names).items():
            pipeline = FacePipeline(detector, onnx, executor)
            started = time.perf_counter()
            for set_name, photos in sets.items():
                found, undecodable = await found_counts(pipeline, photos)
                figures[f"photos_{set_name}"] = len(photos)
                figures[f"found_{name}_{set_name}"] = found
                rows.append((name, set_name, len(photos), found, f"{found / len(photos):.3f}", undecodable))
            photo_count = sum(len(p) for p in sets.values())
            figures[f"detect_ms_{name}"] = round((time.perf_counter() - started) / photo_count * 1000, 1)
            eer, rank1, missed = await deepface_scores(pipeline, sets["deepface"])
            figures.update({f"deepface_eer_{name}": round(eer, 4), f"deepface_rank1_{name}": round(rank1, 4)})
            figures[f"deepface_missed_{name}"] = missed
    onnx.close()
    print(f"machine: {machine()}")
    print_table(("detector", "set", "photos", "found", "recall", "undecodable"), rows)
    print_table(
        ("detector", "deepface EER", "rank-1", "ms/photo (detect only)"),
        [(n, figures[f"deepface_eer_{n}"], figures[f"deepface_rank1_{n}"], figures[f"detect_ms_{n}"]) for n in names],
    )
    if {"yunet", "hog"} <= set(names):
        figures["yunet_finds_at_least_hog_everywhere"] = all(
            figures[f"found_yunet_{s}"] >= figures[f"found_hog_{s}"]  # type: ignore[operator]
            for s in sets
        )
        figures["yunet_deepface_no_worse"] = (
            figures["deepface_eer_yunet"] <= figures["deepface_eer_hog"]  # type: ignore[operator]
            and figures["deepface_rank1_yunet"] >= figures["deepface_rank1_hog"]  # type: ignore[operator]
        )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=0, help="photos per set, evenly spread (0: all)")
    parser.add_argument("--detectors", default="yunet,hog", help="comma-separated: yunet, hog")
    args = parser.parse_args()
    print_json(asyncio.run(run(args.limit, args.detectors.split(","))))


if __name__ == "__main__":
    main()
