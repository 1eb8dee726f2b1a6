"""Clustering benchmark: pairwise precision and recall, and how long clustering takes.

    .venv/bin/python -m benchmarks.cluster                                   # 10k synthetic faces, then real photos
    .venv/bin/python -m benchmarks.cluster --faces 2000 --real-sets deepface

Two parts, each printing a table:

- **synthetic** (what the 2-minute target covers): ``--faces`` face-like descriptors with identity structure,
  clustered by the gateway's own code (``facerec_gateway.clustering``) against the real registry service, a
  ``facerec-registry`` process over gRPC: stored in its working collection, linked by its searches, grouped,
  timed per stage. Only the embedder is stood in for (each "photo" is one synthetic face, answered at once):
  embedding 10k real faces on this machine's CPU alone takes longer than 2 minutes (part two measures it). People
  are drawn from the Gaussian of real descriptors (their mean and the covariance *between* people, as
  ``benchmarks/open_set.py`` draws its distractors), each with a geometric number of faces (``--faces-per-person``
  on average; some people have one face, who should end up as noise) spread by the covariance *within* people
  measured on the same real set (pooled over its people with 2+ photos, shrunk towards its isotropic part when
  they are few); ``--duplicates`` of the faces (10 %) are near-copies of another face of theirs (burst shots, a
  photo saved twice). The table compares the genuine and impostor distances of both, and the cuts on the same
  exact graph (the gateway's weighted Chinese whispers, dlib's unweighted one, connected components).
- **real** (``--real-sets``): the labelled photo sets of ``$FACEREC_FACES_DIR``, as they are on disk, clustered
  end to end through the public API (``AsyncClient.cluster``) of the whole stack, every part its own process as
  ``facerec up`` runs them: precision, recall and photos per second (embedding dominates).

Scoring (``pairwise_scores``): of the pairs of faces put in one group, the share of the same identity
(precision); of the pairs of the same identity, the share put in one group (recall); faces in no group count as
groups of one. Labels are per photo (``<set>/<person>/<photo>``, deepface's ``identities.csv``): the labelled face
of a photo is its largest (the embedder's face 0); the other faces of a photo, and photos without a label
(deepface's ``couple.jpg`` and ``selfie-many-people.jpg``), are clustered but not scored; a labelled photo whose
face was not found counts as a group of one.

Prints the tables, then one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from benchmarks.common import machine, print_json, print_table
from benchmarks.open_set import Described, describe_all
from benchmarks.quality_gates import Photo as LabelledPhoto
from benchmarks.registry import RegistryProcess
from facerec.runtime.deadlines import Deadline
from facerec.runtime.net import free_port
from facerec_gateway.auth import ANY_COLLECTION, Tenant
from facerec_gateway.clients import RegistryClient
from facerec_gateway.cluster_graph import Edges, chinese_whispers, connected_groups, groups
from facerec_gateway.clustering import DEFAULT_MIN_FACES, NEIGHBOURS, ClusterProgress, ClusterResult, ClusterStage
from facerec_gateway.domain import Box, EmbeddedPhoto, Embedding, Face, FaceQuality, ImageSize, Model
from facerec_gateway.enrollment import Photo, QualityPolicy
from facerec_gateway.policy import RecognitionPolicy
from facerec_gateway.recognition import FaceRecognition
from facerec_gateway.settings import GatewaySettings
from facerec_registry.store.base import StoreConfig
from tests.paths import SHARED_FACES_DIR

DIMENSION = 128
MODEL_ID = "dlib_resnet_v1"
TARGET_S = 120.0
TARGET_PRECISION, TARGET_RECALL = 0.95, 0.9
THRESHOLD = 0.5  # the service's default
DUPLICATE_NOISE = 0.004  # per component: a near-copy is ~0.06 from its original

# ------------------------------------------------------------------------------------------------ scoring


def _pairs(counts: Sequence[int]) -> int:
    return sum(c * (c - 1) // 2 for c in counts)


def pairwise_scores(truth: Sequence[Hashable], groups: Sequence[Hashable]) -> tuple[float, float]:
    """(precision, recall) of the pairs of items: ``groups[i]`` is item i's group (distinct values for items in
    no group), ``truth[i]`` its identity. A clustering that pairs nothing has precision 1."""
    together = _pairs(list(Counter(zip(truth, groups, strict=True)).values()))
    grouped = _pairs(list(Counter(groups).values()))
    same = _pairs(list(Counter(truth).values()))
    return (together / grouped if grouped else 1.0), (together / same if same else 1.0)


class _Face(Protocol):
    @property
    def photo_index(self) -> int: ...
    @property
    def face_index(self) -> int: ...


class _Cluster(Protocol):
    @property
    def faces(self) -> Sequence[_Face]: ...


class Clustering(Protocol):
    """A clustering result: the gateway's or the SDK's."""

    @property
    def clusters(self) -> Sequence[_Cluster]: ...


def result_groups(result: Clustering, photos: int) -> list[Hashable]:
    """The group of each photo's largest face (face 0) in a clustering result, or a group of its own when that
    face is in no group or was not found."""
    groups: list[Hashable] = [("alone", i) for i in range(photos)]
    for number, cluster in enumerate(result.clusters):
        for face in cluster.faces:
            if face.face_index == 0:
                groups[face.photo_index] = number
    return groups


def labelled(set_name: str) -> tuple[list[Path], list[str | None]]:
    """A labelled set's photos (sorted by path) and each one's identity (None: not labelled)."""
    root = SHARED_FACES_DIR / set_name
    identities = root / "identities.csv"
    if identities.is_file():
        labels = dict(line.split(",") for line in identities.read_text().splitlines()[1:])
        paths = sorted(p for p in root.iterdir() if p.suffix.lower() == ".jpg")
        return paths, [labels.get(p.name) for p in paths]
    paths = sorted(p for p in root.glob("*/*") if p.is_file() and not p.name.startswith("."))
    return paths, [p.parent.name for p in paths]


def labelled_scores(result: Clustering, labels: Sequence[str | None]) -> tuple[float, float, int]:
    """(precision, recall, faces scored) over the labelled photos of a clustering of a whole set."""
    groups = result_groups(result, len(labels))
    scored = [i for i, label in enumerate(labels) if label is not None]
    precision, recall = pairwise_scores([labels[i] for i in scored], [groups[i] for i in scored])
    return precision, recall, len(scored)


# ------------------------------------------------------------------------------------------------ synthetic


@dataclass(frozen=True, eq=False)
class FaceModel:
    """People as the Gaussian of real identity centres, faces as their centre plus within-person spread."""

    mean: npt.NDArray[np.float64]
    between: npt.NDArray[np.float64]  # Cholesky factor of the covariance between people
    within: npt.NDArray[np.float64]  # Cholesky factor of the covariance within a person

    @classmethod
    def fitted(cls, real: Described) -> FaceModel:
        values = real.descriptors.astype(np.float64)
        owners = np.asarray(real.people)
        residuals, people = [], 0
        for person in np.unique(owners):
            faces = values[owners == person]
            if len(faces) >= 2:
                residuals.append(faces - faces.mean(axis=0))
                people += 1
        stacked = np.concatenate(residuals)
        freedom = len(stacked) - people
        within = stacked.T @ stacked / freedom
        # Few people (deepface: 49 degrees of freedom for 128 dimensions): shrink towards the isotropic part.
        shrink = DIMENSION / (DIMENSION + freedom)
        within = (1 - shrink) * within + shrink * np.trace(within) / DIMENSION * np.eye(DIMENSION)
        eigenvalues, vectors = np.linalg.eigh(np.cov(values.T) - within)
        between = (vectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ vectors.T
        return cls(values.mean(axis=0), between, np.linalg.cholesky(within + 1e-12 * np.eye(DIMENSION)))

    def sample(
        self, faces: int, per_person: float, rng: np.random.Generator, duplicates: float = 0.0
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """``faces`` descriptors of people with a geometric number of faces each (mean ``per_person``), shuffled,
        and each face's person; a share ``duplicates`` of them are near-copies of another face of theirs (burst
        shots, a photo saved twice: ~0.06 apart)."""
        originals = faces - round(duplicates * faces)
        sizes: list[int] = []
        while sum(sizes) < originals:
            sizes.append(int(rng.geometric(1 / per_person)))
        sizes[-1] -= sum(sizes) - originals
        owners = np.repeat(np.arange(len(sizes)), sizes)
        centres = rng.normal(size=(len(sizes), DIMENSION)) @ self.between.T + self.mean
        vectors = centres[owners] + rng.normal(size=(originals, DIMENSION)) @ self.within.T
        copied = rng.integers(0, originals, size=faces - originals)
        vectors = np.concatenate(
            [vectors, vectors[copied] + rng.normal(scale=DUPLICATE_NOISE, size=(len(copied), DIMENSION))]
        )
        owners = np.concatenate([owners, owners[copied]])
        order = rng.permutation(faces)
        return vectors[order].astype(np.float32), owners[order]


def distance_summary(
    vectors: npt.NDArray[np.float32], owners: Sequence[Hashable], limit: int = 3000
) -> dict[str, float]:
    """Mean genuine and impostor distances, and the share of each on the wrong side of the threshold."""
    vectors, labels = vectors[:limit].astype(np.float64), np.asarray(owners[:limit])
    squared = (vectors**2).sum(axis=1)
    distances = np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2 * vectors @ vectors.T, 0))
    upper = np.triu(np.ones_like(distances, dtype=bool), 1)
    same = (labels[:, None] == labels[None, :]) & upper
    different = ~(labels[:, None] == labels[None, :]) & upper
    return {
        "genuine_mean": float(distances[same].mean()),
        "impostor_mean": float(distances[different].mean()),
        "genuine_over_threshold": float((distances[same] > THRESHOLD).mean()),
        "impostor_under_threshold": float((distances[different] <= THRESHOLD).mean()),
    }


def nearest_links(vectors: npt.NDArray[np.float32], k: int = NEIGHBOURS, chunk: int = 2000) -> Edges:
    """Each face's ``k`` nearest faces within the threshold, found exactly (the graph the registry's searches give
    below its index threshold)."""
    values = vectors.astype(np.float64)
    squared = (values**2).sum(axis=1)
    parts = []
    for start in range(0, len(values), chunk):
        rows_of = values[start : start + chunk]
        block = np.sqrt(np.maximum(squared[start : start + chunk, None] + squared[None, :] - 2 * rows_of @ values.T, 0))
        nearest = np.argpartition(block, min(k, len(values) - 1), axis=1)[:, : k + 1]
        rows = np.repeat(np.arange(start, start + len(block)), nearest.shape[1])
        distances = block[rows - start, nearest.ravel()]
        keep = (distances <= THRESHOLD) & (rows != nearest.ravel())
        parts.append(Edges(rows[keep], nearest.ravel()[keep].astype(np.int64), distances[keep].astype(np.float32)))
    return Edges.concatenated(parts)


def cut_comparison(vectors: npt.NDArray[np.float32], owners: Sequence[Hashable]) -> dict[str, tuple[float, float]]:
    """Precision and recall of each cut on the same exact 32-nearest graph: the gateway's weighted Chinese
    whispers, dlib's (every link 1), and connected components of the mutual links."""
    links, faces = nearest_links(vectors), len(vectors)
    cuts = {
        "weighted chinese whispers (the gateway's)": chinese_whispers(faces, links, THRESHOLD),
        "dlib's chinese whispers (links 1)": chinese_whispers(faces, links, THRESHOLD, weighted=False),
        "connected components of mutual links": connected_groups(faces, links),
    }
    found = {}
    for name, labels in cuts.items():
        kept, _ = groups(labels, DEFAULT_MIN_FACES)
        grouped: list[Hashable] = [("alone", i) for i in range(faces)]
        for number, members in enumerate(kept):
            for member in members:
                grouped[int(member)] = number
        found[name] = pairwise_scores(list(owners), grouped)
    return found


class SyntheticEmbedder:
    """The embedder stood in for: photo ``b"<i>"`` shows one face, synthetic descriptor ``i``, answered at once."""

    def __init__(self, vectors: npt.NDArray[np.float32]) -> None:
        self.vectors = vectors
        self.quality = FaceQuality(face_size_px=100.0, interocular_px=50.0, sharpness=2.5, frontality=0.9)

    async def embed_photo(self, image: bytes, deadline: Deadline, *, detect_only: bool = False) -> EmbeddedPhoto:
        values = self.vectors[int(image)]
        face = Face(Box(10, 10, 120, 120), None, 0.99, self.quality, Embedding(values, MODEL_ID), 0)
        return EmbeddedPhoto(ImageSize(640, 480), (face,), MODEL_ID)

    async def model(self, deadline: Deadline) -> Model:
        return Model(MODEL_ID, DIMENSION)

    async def serving(self) -> bool:
        return True


@dataclass
class StageClock:
    """When each stage was first reported, to time the stages of one call."""

    started: float = field(default_factory=time.perf_counter)
    first: dict[ClusterStage, float] = field(default_factory=dict)

    def saw(self, progress: ClusterProgress) -> None:
        self.first.setdefault(progress.stage, time.perf_counter())

    def durations(self, ended: float) -> dict[str, float]:
        marks = sorted(self.first.items(), key=lambda item: item[1])
        ends = [at for _, at in marks[1:]] + [ended]
        return {stage.name.lower(): round(end - at, 2) for (stage, at), end in zip(marks, ends, strict=True)}


def _policy() -> RecognitionPolicy:
    settings = GatewaySettings()
    quality = QualityPolicy(settings.min_face_size_px, settings.min_sharpness, settings.min_frontality)
    return RecognitionPolicy(settings.default_threshold, settings.default_collection, quality, 600.0)


async def _stream(count: int) -> AsyncIterator[Photo]:
    for index in range(count):
        yield Photo(str(index).encode(), f"synthetic/{index}.jpg")


async def cluster_synthetic(address: str, vectors: npt.NDArray[np.float32]) -> tuple[ClusterResult, dict[str, float]]:
    """The gateway's clustering of the synthetic faces against the registry at ``address``; stage durations."""
    registry = RegistryClient(address, max_message_bytes=64 * 1024 * 1024)
    service = FaceRecognition(SyntheticEmbedder(vectors), registry, _policy())
    clock = StageClock()
    result: ClusterResult | None = None
    try:
        tenant = Tenant("bench", frozenset({ANY_COLLECTION}))
        async for event in service.clusterer.cluster(tenant, _stream(len(vectors)), Deadline(math.inf)):
            if isinstance(event, ClusterProgress):
                clock.saw(event)
            else:
                result = event
    finally:
        await registry.close()
    assert result is not None
    ended = time.perf_counter()
    return result, {"total": round(ended - clock.started, 2), **clock.durations(ended)}


def synthetic_part(real: Described, faces: int, per_person: float, duplicates: float, seed: int) -> dict[str, object]:
    model = FaceModel.fitted(real)
    vectors, owners = model.sample(faces, per_person, np.random.default_rng(seed), duplicates)
    with tempfile.TemporaryDirectory() as tmp, RegistryProcess(Path(tmp) / "registry", StoreConfig()) as process:
        result, seconds = asyncio.run(cluster_synthetic(process.address, vectors))
    precision, recall = pairwise_scores(list(owners), result_groups(result, faces))
    cuts = cut_comparison(vectors, list(owners))
    real_distances = distance_summary(real.descriptors, real.people)
    synthetic_distances = distance_summary(vectors, list(owners))
    print(
        f"synthetic: {faces} faces of {len(set(owners.tolist()))} people ({duplicates:.0%} near-duplicates; model "
        f"fitted on {real.set_name})"
    )
    print_table(
        ("descriptors", "genuine mean", "impostor mean", "genuine > 0.5", "impostor <= 0.5"),
        [
            (
                name,
                f"{d['genuine_mean']:.3f}",
                f"{d['impostor_mean']:.3f}",
                f"{d['genuine_over_threshold']:.4f}",
                f"{d['impostor_under_threshold']:.2e}",
            )
            for name, d in (("real " + real.set_name, real_distances), ("synthetic", synthetic_distances))
        ],
    )
    print_table(
        ("faces", "groups", "noise", "precision", "recall", *(f"{k} s" for k in seconds)),
        [(faces, len(result.clusters), len(result.noise), f"{precision:.4f}", f"{recall:.4f}", *seconds.values())],
    )
    print_table(
        ("cut, on the same exact graph", "precision", "recall"),
        [(name, f"{p:.4f}", f"{r:.4f}") for name, (p, r) in cuts.items()],
    )
    return {
        "cuts": {name: {"precision": round(p, 4), "recall": round(r, 4)} for name, (p, r) in cuts.items()},
        "faces": faces,
        "duplicates": duplicates,
        "people": len(set(owners.tolist())),
        "groups": len(result.clusters),
        "noise": len(result.noise),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "seconds": seconds,
        "real_distances": real_distances,
        "synthetic_distances": synthetic_distances,
        "fitted_on": real.set_name,
    }


# ------------------------------------------------------------------------------------------------ real photos


async def cluster_real_sets(set_names: Sequence[str]) -> list[dict[str, object]]:
    """Each labelled set clustered through the whole stack's public API."""
    from facerec.cli.stack import LocalStack
    from facerec.sdk import AsyncClient

    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        stack = LocalStack(
            Path(tmp) / "stack", gateway_port=free_port(), embedder_port=free_port(), registry_port=free_port()
        )
        await asyncio.to_thread(stack.start)
        try:
            async with AsyncClient(stack.gateway.address, stack.api_key, timeout=120) as client:
                for set_name in set_names:
                    paths, labels = labelled(set_name)
                    photos = [(str(p.relative_to(SHARED_FACES_DIR)), p) for p in paths]
                    started = time.perf_counter()
                    result = await client.cluster(photos)
                    elapsed = time.perf_counter() - started
                    precision, recall, scored = labelled_scores(result, labels)
                    rows.append(
                        {
                            "set": set_name,
                            "photos": len(paths),
                            "faces": result.faces,
                            "scored": scored,
                            "groups": len(result.clusters),
                            "noise": len(result.noise),
                            "skipped": len(result.skipped),
                            "precision": round(precision, 4),
                            "recall": round(recall, 4),
                            "seconds": round(elapsed, 2),
                            "photos_per_s": round(len(paths) / elapsed, 2),
                            "targets_met": precision >= TARGET_PRECISION and recall >= TARGET_RECALL,
                        }
                    )
        finally:
            await asyncio.to_thread(stack.stop)
    print("real photos, end to end through the public API (every part its own process):")
    print_table(
        ("set", "photos", "faces", "scored", "groups", "noise", "precision", "recall", "s", "photos/s"),
        [
            (
                r["set"],
                r["photos"],
                r["faces"],
                r["scored"],
                r["groups"],
                r["noise"],
                r["precision"],
                r["recall"],
                r["seconds"],
                r["photos_per_s"],
            )
            for r in rows
        ],
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=10_000, help="synthetic faces (0: skip that part)")
    parser.add_argument("--faces-per-person", type=float, default=8.0, help="mean faces of a synthetic person")
    parser.add_argument("--duplicates", type=float, default=0.1, help="share of synthetic faces that are near-copies")
    parser.add_argument(
        "--fit-on", default="lfw_a_to_j", help="the labelled set the synthetic people are drawn like (its descriptors)"
    )
    parser.add_argument("--real-sets", nargs="*", default=["dlib_johns", "deepface"], help="labelled sets, end to end")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    figures: dict[str, object] = {"machine": machine(), "threshold": THRESHOLD, "target_s": TARGET_S}
    print(f"machine: {machine()}")
    if args.faces:
        from benchmarks.open_set import all_photos

        photos: list[LabelledPhoto] = [p for p in all_photos() if p.set_name == args.fit_on]
        real = asyncio.run(describe_all(photos, threads=2))[args.fit_on]
        synthetic = synthetic_part(real, args.faces, args.faces_per_person, args.duplicates, args.seed)
        seconds = synthetic["seconds"]
        assert isinstance(seconds, dict)
        figures["synthetic"] = synthetic
        figures["synthetic_within_target_s"] = bool(seconds["total"] <= TARGET_S)
        figures["synthetic_targets_met"] = bool(
            float(synthetic["precision"]) >= TARGET_PRECISION and float(synthetic["recall"]) >= TARGET_RECALL  # type: ignore[arg-type]
        )
    if args.real_sets:
        rows = asyncio.run(cluster_real_sets(args.real_sets))
        figures["real"] = rows
        figures["real_targets_met"] = all(bool(r["targets_met"]) for r in rows)
    print_json(figures)


if __name__ == "__main__":
    main()
