"""Identification accuracy on labelled real photos ($FACEREC_FACES_DIR/deepface): one photo per person enrolled,
every other photo identified, through the gateway and with dlib's own pipeline on the same split."""

from __future__ import annotations

import csv
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import dlib
import numpy as np
from PIL import Image, ImageOps

from facerec.sdk import AsyncClient
from facerec_embedder.detection import landmarks_model_path
from facerec_embedder.model.files import RECOGNITION_MODEL, model_file

THRESHOLD = 0.6


@dataclass(frozen=True)
class Score:
    probes: int
    correct: int
    false_matches: int

    @property
    def rank1(self) -> float:
        return self.correct / self.probes


def split(folder: Path) -> tuple[dict[str, Path], list[tuple[Path, str]]]:
    """The first photo (by name) of each identity is enrolled; the others are probes."""
    with (folder / "identities.csv").open() as table:
        rows = sorted((row["identity"], row["file"]) for row in csv.DictReader(table))
    gallery: dict[str, Path] = {}
    probes: list[tuple[Path, str]] = []
    for identity, name in rows:
        if identity not in gallery:
            gallery[identity] = folder / name
        else:
            probes.append((folder / name, identity))
    return gallery, probes


def score(decisions: Sequence[str | None], truth: Sequence[str]) -> Score:
    correct = sum(d == t for d, t in zip(decisions, truth, strict=True))
    false = sum(d is not None and d != t for d, t in zip(decisions, truth, strict=True))
    return Score(len(truth), correct, false)


class DlibPipeline:
    """dlib's own pipeline: HOG (upsample 1), 5 landmarks, 150 px chip with padding 0.25, ResNet descriptor."""

    def __init__(self) -> None:
        self.detector = dlib.get_frontal_face_detector()
        self.shapes = dlib.shape_predictor(str(landmarks_model_path()))
        self.model = dlib.face_recognition_model_v1(str(model_file(RECOGNITION_MODEL)))

    def largest_face(self, photo: Path) -> np.ndarray | None:
        with Image.open(photo) as opened:
            image = np.asarray(ImageOps.exif_transpose(opened).convert("RGB"))
        boxes = sorted(self.detector(image, 1), key=lambda b: b.area(), reverse=True)
        if not boxes:
            return None
        chip = dlib.get_face_chip(image, self.shapes(image, boxes[0]), size=150, padding=0.25)
        return np.asarray(self.model.compute_face_descriptor(chip))


def dlib_decisions(gallery: dict[str, Path], probes: list[tuple[Path, str]]) -> list[str | None]:
    pipeline = DlibPipeline()
    enrolled = {identity: pipeline.largest_face(photo) for identity, photo in gallery.items()}
    known = {identity: d for identity, d in enrolled.items() if d is not None}
    decisions: list[str | None] = []
    for photo, _ in probes:
        probe = pipeline.largest_face(photo)
        if probe is None or not known:
            decisions.append(None)
            continue
        identity, distance = min(((i, float(np.linalg.norm(probe - d))) for i, d in known.items()), key=lambda x: x[1])
        decisions.append(identity if distance <= THRESHOLD else None)
    return decisions


async def gateway_decisions(
    client: AsyncClient, gallery: dict[str, Path], probes: list[tuple[Path, str]]
) -> list[str | None]:
    collection = f"accuracy-{uuid.uuid4().hex[:8]}"
    await client.create_collection(collection, threshold=THRESHOLD)
    for identity, photo in gallery.items():
        await client.enroll(identity, photo, collection=collection, face_selection="largest")
    decisions: list[str | None] = []
    for photo, _ in probes:
        result = await client.identify(photo, collection=collection)
        faces = sorted(result.faces, key=lambda f: f.face.box.width * f.face.box.height, reverse=True)
        match = faces[0].match if faces else None
        decisions.append(match.person_id if match else None)
    return decisions


async def test_gateway_identifies_the_deepface_set_at_least_as_well_as_dlib(
    alpha: AsyncClient, shared_faces_dir
) -> None:
    gallery, probes = split(shared_faces_dir / "deepface")
    truth = [identity for _, identity in probes]
    ours = score(await gateway_decisions(alpha, gallery, probes), truth)
    theirs = score(dlib_decisions(gallery, probes), truth)
    print(
        f"\ndeepface: {len(gallery)} people enrolled, {ours.probes} probes\n"
        f"  facerec gateway: rank-1 {ours.rank1:.1%} ({ours.correct}), false matches {ours.false_matches}\n"
        f"  dlib directly:   rank-1 {theirs.rank1:.1%} ({theirs.correct}), false matches {theirs.false_matches}"
    )
    assert ours.correct >= theirs.correct
    assert ours.false_matches <= theirs.false_matches
    assert ours.rank1 >= 0.9
