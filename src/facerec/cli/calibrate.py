"""``facerec calibrate DIR``: a threshold calibrated on labelled photos, their descriptors from the gateway.

``DIR/<person>/<photos>`` is read as ``facerec import`` reads it (photos recognised by their content). Each
photo's largest face is described by the gateway (Detect with descriptors); photos without a face, or that the
gateway refuses, are named in the report and left out. :func:`facerec.calibration.calibrate` then counts every
genuine and impostor pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facerec.calibration import CalibrationResult
from facerec.cli.importer import FolderScan, SkippedFile
from facerec.sdk import Client, InvalidArgument, ResourceExhausted

# Detect calls in flight: the gateway answers several at once, the client only waits.
DETECT_WORKERS = 4


@dataclass
class LabelledDescriptors:
    """The descriptors of a folder's photos, each labelled by its person's folder, and the photos left out."""

    descriptors: np.ndarray
    labels: list[str]
    photos: int
    no_face: list[str] = field(default_factory=list)
    refused: list[SkippedFile] = field(default_factory=list)


def describe(client: Client, folder: FolderScan, root: Path, workers: int = DETECT_WORKERS) -> LabelledDescriptors:
    """The largest face's descriptor of every photo of ``folder`` (photos in the folder's order)."""
    photos = [(person.person_id, photo) for person in folder.people for photo in person.photos]
    with ThreadPoolExecutor(workers) as pool:
        outcomes = list(pool.map(lambda item: _largest_descriptor(client, item[1]), photos))
    described = LabelledDescriptors(np.zeros((0, 0), dtype=np.float32), [], len(photos))
    vectors: list[np.ndarray] = []
    for (person, photo), outcome in zip(photos, outcomes, strict=True):
        name = str(photo.relative_to(root))
        if isinstance(outcome, str):
            described.refused.append(SkippedFile(name, outcome))
        elif outcome is None:
            described.no_face.append(name)
        else:
            vectors.append(outcome)
            described.labels.append(person)
    if vectors:
        described.descriptors = np.stack(vectors)
    return described


def _largest_descriptor(client: Client, photo: Path) -> np.ndarray | str | None:
    """The descriptor of the photo's largest face, None without a face, or why the gateway refused the photo."""
    try:
        found = client.detect(photo, include_embeddings=True)
    except (InvalidArgument, ResourceExhausted) as error:
        return error.message
    if not found.faces or found.faces[0].embedding is None:
        return None
    return found.faces[0].embedding.as_array()


def calibration_json(
    result: CalibrationResult, described: LabelledDescriptors, skipped: Sequence[SkippedFile], applied_to: str | None
) -> dict[str, Any]:
    """The JSON document of ``facerec calibrate``."""
    return {
        "threshold": result.threshold,
        "target_fmr": result.target_fmr,
        "fmr": result.fmr,
        "fnmr": result.fnmr,
        "eer": result.eer,
        "eer_threshold": result.eer_threshold,
        "genuine_pairs": result.genuine_pairs,
        "impostor_pairs": result.impostor_pairs,
        "people": result.people,
        "faces": result.faces,
        "photos": described.photos,
        "no_face": described.no_face,
        "refused": [{"path": s.path, "reason": s.reason} for s in described.refused],
        "skipped_files": [{"path": s.path, "reason": s.reason} for s in skipped],
        "applied_to": applied_to,
    }


def render_calibration(result: CalibrationResult, described: LabelledDescriptors, applied_to: str | None = None) -> str:
    """The calibration in a few lines."""
    lines = [
        f"threshold {result.threshold:.4f} for FMR {result.target_fmr:g}: "
        f"FMR {result.fmr * 100:.3f} %, FNMR {result.fnmr * 100:.2f} %",
        f"EER {result.eer * 100:.2f} % at {result.eer_threshold:.4f}",
        f"{result.genuine_pairs} genuine pairs ({result.people} people with 2+ faces), "
        f"{result.impostor_pairs} impostor pairs, {result.faces} faces of {described.photos} photos",
    ]
    if described.no_face:
        lines.append(f"{len(described.no_face)} photo(s) without a face: {', '.join(described.no_face)}")
    if described.refused:
        lines.append(f"{len(described.refused)} photo(s) refused by the gateway")
    if applied_to is not None:
        lines.append(f"set as the fixed threshold of collection {applied_to}")
    return "\n".join(lines)
