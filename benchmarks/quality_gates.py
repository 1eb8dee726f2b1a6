"""Quality gates benchmark: the share of photos each enrollment gate rejects against the recognition it buys.

    .venv/bin/python -m benchmarks.quality_gates [--people 863] [--per-set 400] [--degraded 863]
                                                 [--detector yunet|hog]

Runs the embedder's real pipeline in-process (``FacePipeline``: decoding, the detector the settings choose,
landmarks, the aligned chip, ``measure_quality``, the ONNX model under onnxruntime) over the labelled sets of
``$FACEREC_FACES_DIR``: the LFW people with two or more photos (``lfw_a_to_j``) and, where present, deepface,
dlib_johns (crops, padded for the detector), essex_faces94 and yalefaces. In each photo the face nearest its
centre is the labelled one. The person's first photo is the one *enrolled*; the person's other photos are the
probes. LFW is clean, so the gates have little to reject there: to see what they buy, the first photos of the
first ``--degraded`` people are also enrolled from degraded copies (Gaussian blur of sigma 1, 2 and 3 photo
pixels; area-averaged downscales to 1/2 and 1/3), each through the whole pipeline again.

For each gate and candidate minimum (the other gates off) it prints: the share of LFW first photos rejected and
the share of every set's photos; the mean genuine distance (enrolled face to the same person's probes) of the
rejected and of the accepted enrolled faces; and at the decision threshold 0.6 the genuine-pair accuracy (share
of genuine pairs under 0.6) and the verification accuracy (the mean of genuine and impostor accuracy; impostor
pairs: accepted enrolled faces of two different people) on the accepted faces; then the same over the
degraded enrolled faces; then today's gates and the defaults (the gateway's settings). A last table bins the
enrolled faces (as taken and degraded) by each measure, among those the other two default gates accept, with
the genuine-pair accuracy of each bin: where recognition starts failing is where a minimum belongs. The last line
is one JSON object with the defaults, the share of LFW first photos each policy rejects (target <= 5 % for the
defaults) and the genuine-pair accuracy each keeps (target: the defaults' no worse than today's).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from benchmarks.common import machine, print_json, print_table
from facerec_embedder.app import face_detector
from facerec_embedder.model.files import DEFAULT_ONNX_PATH
from facerec_embedder.pipeline import DetectedFace, FacePipeline
from facerec_embedder.quality import FaceQuality
from facerec_embedder.runtime import OnnxRuntimeEmbedder
from facerec_embedder.settings import EmbedderSettings
from facerec_gateway.settings import GatewaySettings
from tests.paths import SHARED_FACES_DIR

THRESHOLD = 0.6
# Enrollment gates of facerec before this benchmark: box side 40 px, variance of the chip's Laplacian 40
# (measured on the whole 150x150 chip, so a small sharp face scored as blurred), frontality 0.5.
TODAY = (40.0, 40.0, 0.5)
# The gateway's default minimums (face_size_px, sharpness, frontality), chosen from this benchmark's curve.
_GATE_SETTINGS = ("min_face_size_px", "min_sharpness", "min_frontality")
DEFAULTS = tuple(float(GatewaySettings.model_fields[name].default) for name in _GATE_SETTINGS)
CANDIDATES: dict[str, tuple[float, ...]] = {
    "face_size_px": (15, 20, 24, 28, 32, 36, 40),
    "sharpness": (0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5),
    "frontality": (0.2, 0.3, 0.4, 0.5, 0.6, 0.7),
}
AS_TAKEN = "as photographed"
DEGRADATIONS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "blur 1 px": lambda image: image.filter(ImageFilter.GaussianBlur(1)),
    "blur 2 px": lambda image: image.filter(ImageFilter.GaussianBlur(2)),
    "blur 3 px": lambda image: image.filter(ImageFilter.GaussianBlur(3)),
    "1/2 size": lambda image: image.reduce(2),
    "1/3 size": lambda image: image.reduce(3),
}
# dlib_johns photos are tight 150x150 crops: a detector needs some margin around the face.
CROP_MARGIN_PX = 40


@dataclass(frozen=True)
class Photo:
    """A labelled photo of one set."""

    set_name: str
    person: str
    path: Path


@dataclass(frozen=True, eq=False)
class Measured:
    """The labelled face of a photo (``variant`` says how it was degraded): its quality and its descriptor."""

    photo: Photo
    variant: str
    quality: FaceQuality
    today: tuple[float, float, float]  # box side, variance of the whole chip's Laplacian, frontality
    embedding: np.ndarray


Gate = Callable[[Measured], bool]


def labelled_photos(people: int, per_set: int) -> list[Photo]:
    """LFW photos of the first ``people`` people with 2+ photos, then up to ``per_set`` photos of each other set."""
    lfw = SHARED_FACES_DIR / "lfw_a_to_j"
    if not lfw.is_dir():
        raise SystemExit(f"{lfw} is missing: this benchmark needs the shared face photos")
    folders = [folder for folder in sorted(lfw.iterdir()) if len(list(folder.glob("*.jpg"))) >= 2][:people]
    photos = [Photo("lfw", folder.name, path) for folder in folders for path in sorted(folder.glob("*.jpg"))]
    for _, found in _other_sets():
        photos += found[:per_set]
    return photos


def _other_sets() -> Iterator[tuple[str, list[Photo]]]:
    deepface = SHARED_FACES_DIR / "deepface"
    if (deepface / "identities.csv").is_file():
        rows = [line.split(",") for line in (deepface / "identities.csv").read_text().splitlines()[1:]]
        yield "deepface", [Photo("deepface", person, deepface / name) for name, person in rows]
    for set_name, pattern in (("dlib_johns", "*.jpg"), ("essex_faces94", "*.jpg"), ("yalefaces", "subject*")):
        root = SHARED_FACES_DIR / set_name
        if root.is_dir():
            folders = sorted(folder for folder in root.iterdir() if folder.is_dir())
            # Round-robin over people, so that a small --per-set still holds several photos of several people.
            per_person = [sorted(folder.glob(pattern)) for folder in folders]
            order = [
                Photo(set_name, folder.name, paths[i])
                for i in range(max(map(len, per_person), default=0))
                for folder, paths in zip(folders, per_person, strict=True)
                if i < len(paths)
            ]
            yield set_name, order


def photo_bytes(photo: Photo, degrade: Callable[[Image.Image], Image.Image] | None = None) -> bytes:
    """The photo as the pipeline gets it: the file itself, or a PNG when it must be padded or degraded."""
    if photo.set_name not in ("dlib_johns", "yalefaces") and degrade is None:
        return photo.path.read_bytes()
    with Image.open(photo.path) as opened:
        image = ImageOps.exif_transpose(opened).convert("RGB")
    if photo.set_name == "dlib_johns":
        image = ImageOps.expand(
            image, CROP_MARGIN_PX, fill=tuple(int(v) for v in np.median(np.asarray(image), axis=(0, 1)))
        )
    if degrade is not None:
        image = degrade(image)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def central_face(faces: list[DetectedFace], width: int, height: int) -> DetectedFace | None:
    """The face whose box centre is nearest the photo's centre: the labelled one in these sets."""
    if not faces:
        return None

    def offset(face: DetectedFace) -> float:
        box = face.box
        return float(np.hypot(box.x + box.width / 2 - width / 2, box.y + box.height / 2 - height / 2))

    return min(faces, key=offset)


def today_measures(face: DetectedFace) -> tuple[float, float, float]:
    """Today's gate measures: box side, variance of the 4-neighbour Laplacian of the whole chip, frontality."""
    grey = face.chip.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    laplacian = grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4.0 * grey[1:-1, 1:-1]
    return float(min(face.box.width, face.box.height)), float(laplacian.var()), face.quality.frontality


async def measure(pipeline: FacePipeline, photo: Photo, variant: str = AS_TAKEN) -> Measured | None:
    """The labelled face of ``photo`` (degraded as ``variant`` says) through the whole pipeline, or None."""
    found = await pipeline.analyze(photo_bytes(photo, DEGRADATIONS.get(variant)))
    face = central_face(found.faces, found.image_size.width, found.image_size.height)
    if face is None or face.embedding is None:
        return None
    return Measured(photo, variant, face.quality, today_measures(face), face.embedding)


def gate(face_size_px: float = 0.0, sharpness: float = 0.0, frontality: float = 0.0) -> Gate:
    """A policy on our measures: accept a face meeting every minimum."""
    return lambda m: (
        m.quality.face_size_px >= face_size_px
        and m.quality.sharpness >= sharpness
        and m.quality.frontality >= frontality
    )


def default_gate(m: Measured) -> bool:
    """The gateway's default policy."""
    return gate(*DEFAULTS)(m)


def today_gate(m: Measured) -> bool:
    """The policy of facerec before this benchmark, on its own measures."""
    return all(value >= minimum for value, minimum in zip(m.today, TODAY, strict=True))


@dataclass(frozen=True)
class Outcome:
    """What one policy does to a set of enrolled faces."""

    rejected_pct: float
    genuine_rejected: float  # mean genuine distance of the rejected enrolled faces
    genuine_accepted: float  # ... and of the accepted ones
    genuine_accuracy_pct: float  # genuine pairs of accepted faces under the threshold
    verification_pct: float  # mean of genuine and impostor accuracy on accepted faces


class Evaluation:
    """Enrolled faces against the probes: genuine distances per enrolled face, impostor distances between them."""

    def __init__(self, enrolled: list[Measured], probes: list[Measured]) -> None:
        self.enrolled = enrolled
        by_person: dict[tuple[str, str], list[np.ndarray]] = {}
        for probe in probes:
            by_person.setdefault(_person(probe), []).append(probe.embedding)
        self.genuine = [
            np.linalg.norm(np.asarray(by_person[_person(e)]) - e.embedding, axis=1)
            if _person(e) in by_person
            else np.zeros(0)
            for e in enrolled
        ]
        vectors = np.asarray([e.embedding for e in enrolled], dtype=np.float64).reshape(len(enrolled), -1)
        squares = (vectors**2).sum(axis=1)
        # |a - b|^2 = |a|^2 + |b|^2 - 2 a.b: all pairs without an (n, n, 128) array.
        self.impostor = np.sqrt(np.maximum(squares[:, None] + squares[None] - 2 * vectors @ vectors.T, 0.0))
        people = [_person(e) for e in enrolled]
        self.different = np.array([[a != b for b in people] for a in people]).reshape(len(people), len(people))

    def outcome(self, accept: Gate) -> Outcome:
        """What ``accept`` rejects and what recognition is left with, at the threshold 0.6."""
        accepted = np.array([accept(e) for e in self.enrolled], dtype=bool)
        kept = _joined(d for d, ok in zip(self.genuine, accepted, strict=True) if ok)
        dropped = _joined(d for d, ok in zip(self.genuine, accepted, strict=True) if not ok)
        impostor = self.impostor[np.triu(np.outer(accepted, accepted) & self.different, 1)]
        genuine_accuracy = _share(kept < THRESHOLD)
        return Outcome(
            rejected_pct=100 * (1 - _share(accepted)),
            genuine_rejected=_mean(dropped),
            genuine_accepted=_mean(kept),
            genuine_accuracy_pct=100 * genuine_accuracy,
            verification_pct=50 * (genuine_accuracy + _share(impostor >= THRESHOLD)),
        )


def _person(m: Measured) -> tuple[str, str]:
    return m.photo.set_name, m.photo.person


def _joined(parts: Iterable[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.zeros(0), *parts])


def _share(flags: np.ndarray) -> float:
    return float(flags.mean()) if flags.size else float("nan")


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else float("nan")


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else float("nan")


async def measure_all(pipeline: FacePipeline, photos: list[Photo], degraded: int) -> tuple[list[Measured], ...]:
    """(first photos, other photos, degraded copies of LFW first photos) with a face found, and a count."""
    first: dict[tuple[str, str], Measured] = {}
    probes: list[Measured] = []
    missed = 0
    for photo in photos:
        measured = await measure(pipeline, photo)
        if measured is None:
            missed += 1
        elif _person(measured) in first:
            probes.append(measured)
        else:
            first[_person(measured)] = measured
    print(f"{len(photos)} photos, no face found in {missed}")
    copies = [
        copy
        for m in [m for m in first.values() if m.photo.set_name == "lfw"][:degraded]
        for variant in DEGRADATIONS
        if (copy := await measure(pipeline, m.photo, variant)) is not None
    ]
    return list(first.values()), probes, copies


def policies() -> list[tuple[str, str, Gate]]:
    """Every gate at every candidate minimum (the other gates off), no gate, today's gates and the defaults."""
    found: list[tuple[str, str, Gate]] = [("none", "-", gate())]
    for measure_name, minimums in CANDIDATES.items():
        found += [(measure_name, f"{minimum:g}", gate(**{measure_name: minimum})) for minimum in minimums]
    found.append(("today", "40 px box, 40 variance, 0.5", today_gate))
    found.append(("defaults", f"{DEFAULTS[0]:g} px, {DEFAULTS[1]:g}, {DEFAULTS[2]:g}", default_gate))
    return found


def curve_table(lfw: Evaluation, degraded: Evaluation, everything: list[Measured]) -> None:
    """The curve: per policy, rejections on LFW first photos and on every set, and the recognition kept."""
    sets = sorted({m.photo.set_name for m in everything})
    rows = []
    for name, minimum, accept in policies():
        on_lfw, on_degraded = lfw.outcome(accept), degraded.outcome(accept)
        per_set = [100 * (1 - _share(np.array([accept(m) for m in everything if m.photo.set_name == s]))) for s in sets]
        rows.append(
            (
                name,
                minimum,
                f"{on_lfw.rejected_pct:.1f}",
                *(f"{share:.1f}" for share in per_set),
                f"{on_lfw.genuine_rejected:.3f}",
                f"{on_lfw.genuine_accepted:.3f}",
                f"{on_lfw.genuine_accuracy_pct:.2f}",
                f"{on_lfw.verification_pct:.2f}",
                f"{on_degraded.rejected_pct:.1f}",
                f"{on_degraded.genuine_rejected:.3f}",
                f"{on_degraded.genuine_accepted:.3f}",
                f"{on_degraded.genuine_accuracy_pct:.2f}",
            )
        )
    header = (
        "gate", "minimum", "lfw 1st rej %", *(f"{s} rej %" for s in sets), "gen d rej", "gen d acc", "gen acc %",
        "verif %", "degr rej %", "degr gen d rej", "degr gen d acc", "degr gen acc %",
    )  # fmt: skip
    print_table(header, rows)


def degradation_table(first: list[Measured], degraded: list[Measured], probes: list[Measured]) -> None:
    """Median measures and genuine accuracy of LFW first photos as taken and after each degradation."""
    rows = []
    for variant in [AS_TAKEN, *DEGRADATIONS]:
        faces = [m for m in (first if variant == AS_TAKEN else degraded) if m.variant == variant]
        genuine = _joined(Evaluation(faces, probes).genuine)
        rows.append(
            (
                variant,
                len(faces),
                *(
                    f"{np.median([value(m) for m in faces]) if faces else float('nan'):.2f}"
                    for value in MEDIANS.values()
                ),
                f"{_mean(genuine):.3f}",
                f"{100 * _share(genuine < THRESHOLD):.2f}",
            )
        )
    print_table(("lfw first photos", "faces", *MEDIANS, "genuine d", "genuine acc %"), rows)


def bins_table(evaluation: Evaluation) -> None:
    """Recognition as a function of each measure: genuine distances of the enrolled faces binned by the measure,
    among the faces the other two gates accept at their defaults (so that blur does not show up as size)."""
    rows = []
    for index, (name, edges) in enumerate(BINS.items()):
        others = [minimum if i != index else 0.0 for i, minimum in enumerate(DEFAULTS)]
        passing = np.array([gate(*others)(m) for m in evaluation.enrolled], dtype=bool)
        values = np.array([MEDIANS[name](m) for m in evaluation.enrolled])
        for low, high in itertools.pairwise(edges):
            inside = (values >= low) & (values < high) & passing
            genuine = _joined(d for d, ok in zip(evaluation.genuine, inside, strict=True) if ok)
            rows.append(
                (
                    name,
                    f"[{low:g}, {high:g})",
                    int(inside.sum()),
                    f"{_mean(genuine):.3f}",
                    f"{100 * _share(genuine < THRESHOLD):.2f}",
                )
            )
    print_table(("measure", "bin (others at defaults)", "enrolled faces", "genuine d", "genuine acc %"), rows)


BINS: dict[str, tuple[float, ...]] = {
    "face_size_px": (0, 12, 16, 20, 24, 28, 32, 40, 60, float("inf")),
    "sharpness": (0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5, float("inf")),
    "frontality": (0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.01),
}
MEDIANS: dict[str, Callable[[Measured], float]] = {
    "face_size_px": lambda m: m.quality.face_size_px,
    "sharpness": lambda m: m.quality.sharpness,
    "frontality": lambda m: m.quality.frontality,
    "box side": lambda m: m.today[0],
    "today's sharpness": lambda m: m.today[1],
}


async def run(args: argparse.Namespace) -> dict[str, object]:
    """Measure every labelled photo, print the tables, return the figures of the JSON line."""
    settings = EmbedderSettings(detector=args.detector)
    runtime = OnnxRuntimeEmbedder(DEFAULT_ONNX_PATH, threads=args.threads)
    try:
        with ThreadPoolExecutor(1) as executor:
            pipeline = FacePipeline(face_detector(settings), runtime, executor)
            first, probes, degraded = await measure_all(
                pipeline, labelled_photos(args.people, args.per_set), args.degraded
            )
    finally:
        runtime.close()
    lfw_first = [m for m in first if m.photo.set_name == "lfw"]
    lfw_probes = [m for m in probes if m.photo.set_name == "lfw"]
    lfw, worse = Evaluation(lfw_first, lfw_probes), Evaluation(degraded, lfw_probes)
    print(f"machine: {machine()}; detector: {args.detector}; {len(lfw_first)} LFW people enrolled")
    degradation_table(lfw_first, degraded, lfw_probes)
    print()
    curve_table(lfw, worse, first + probes)
    print()
    bins_table(Evaluation(lfw_first + degraded, lfw_probes))
    today, defaults = lfw.outcome(today_gate), lfw.outcome(default_gate)
    return {
        "detector": args.detector,
        "lfw_people": len(lfw_first),
        "defaults": dict(zip(_GATE_SETTINGS, DEFAULTS, strict=True)),
        "defaults_rejected_first_pct": round(defaults.rejected_pct, 2),
        "today_rejected_first_pct": round(today.rejected_pct, 2),
        "defaults_genuine_accuracy_pct": round(defaults.genuine_accuracy_pct, 3),
        "today_genuine_accuracy_pct": round(today.genuine_accuracy_pct, 3),
        "degraded_rejected_pct": round(worse.outcome(default_gate).rejected_pct, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--people", type=int, default=863, help="LFW people with 2+ photos (863 in lfw_a_to_j)")
    parser.add_argument("--per-set", type=int, default=400, help="photos of each other labelled set (0: none)")
    parser.add_argument("--degraded", type=int, default=863, help="LFW first photos also enrolled degraded")
    parser.add_argument("--detector", choices=["yunet", "hog"], default=EmbedderSettings().detector)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads")
    print_json(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
