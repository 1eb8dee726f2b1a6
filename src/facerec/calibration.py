"""Calibrating a decision threshold on labelled descriptors: every genuine and every impostor pair.

A *genuine* pair is two faces of one person, an *impostor* pair two faces of different people. At a threshold
``t`` the false match rate (FMR) is the share of impostor pairs at or under ``t`` and the false non-match rate
(FNMR) the share of genuine pairs over it. :func:`calibrate` reports the largest threshold whose FMR is at most
the target, the FNMR there, and the equal error rate (EER, where FMR and FNMR cross) with its threshold.

Numpy only, so that the client (``facerec calibrate``) and the gateway (CalibrateCollection) share it. Memory
stays bounded whatever the number of faces: distances are computed a block of rows at a time and only counted,
on a grid of ``GRID_STEP`` (a distance counts as "at or under" every grid threshold from its own value rounded
up), so the thresholds reported are exact to 1e-5, far below anything a decision can tell apart. 20,000 faces
(200 M pairs) take a few seconds and a few tens of MB.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from facerec import limits

GRID_STEP = 1e-5
# Descriptors of dlib's ResNet have unit length, so no distance exceeds 2; the last bin holds anything beyond.
_GRID_BINS = round(limits.MAX_THRESHOLD / GRID_STEP) + 1
# Distances computed per block: bounds the memory at a few tens of MB.
_BLOCK_PAIRS = 2_000_000


@dataclass(frozen=True)
class CalibrationResult:
    """The threshold for a target false match rate, the error rates there, the EER and the pairs counted."""

    threshold: float
    target_fmr: float
    fmr: float
    fnmr: float
    eer: float
    eer_threshold: float
    genuine_pairs: int
    impostor_pairs: int
    people: int  # people with two or more faces (those who gave genuine pairs)
    faces: int


def calibrate(descriptors: np.ndarray, labels: Sequence[str], target_fmr: float) -> CalibrationResult:
    """Calibrates on every pair of ``descriptors`` (one row per face, labelled by person in ``labels``).

    Raises ``ValueError`` when the shapes disagree, when ``target_fmr`` is outside (0, 0.5], when no person has
    two faces (no genuine pair) or when every face belongs to one person (no impostor pair).
    """
    if not 0 < target_fmr <= limits.MAX_TARGET_FMR:
        raise ValueError(f"target_fmr {target_fmr} is out of range: it must be in (0, {limits.MAX_TARGET_FMR:g}]")
    vectors = np.asarray(descriptors, dtype=np.float64)
    if vectors.ndim != 2 or len(vectors) != len(labels):
        raise ValueError(f"{len(labels)} labels for descriptors of shape {vectors.shape}")
    _, codes, sizes = np.unique(np.asarray(labels, dtype=object), return_inverse=True, return_counts=True)
    people = int(np.count_nonzero(sizes >= 2))
    if people == 0:
        raise ValueError("no person has two faces: calibration needs genuine pairs")
    if len(sizes) < 2:
        raise ValueError("every face belongs to one person: calibration needs impostor pairs")
    genuine, impostor = _pair_counts(vectors, codes)
    return _result(genuine, impostor, target_fmr, people, len(vectors))


def _pair_counts(vectors: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Histograms on the grid of the genuine and of the impostor distances, every unordered pair once."""
    genuine = np.zeros(_GRID_BINS, dtype=np.int64)
    impostor = np.zeros(_GRID_BINS, dtype=np.int64)
    squares = np.einsum("ij,ij->i", vectors, vectors)
    rows = max(1, _BLOCK_PAIRS // max(1, len(vectors)))
    for start in range(0, len(vectors) - 1, rows):
        stop = min(len(vectors) - 1, start + rows)
        block = slice(start, stop)
        # Only the columns after each row's own index: each pair once, no face paired with itself.
        others = slice(start + 1, len(vectors))
        squared = squares[block, None] + squares[None, others] - 2.0 * vectors[block] @ vectors[others].T
        distances = np.sqrt(np.maximum(squared, 0.0))
        upper = np.arange(start, stop)[:, None] < np.arange(start + 1, len(vectors))[None, :]
        same = codes[block, None] == codes[None, others]
        bins = np.minimum(np.ceil(distances / GRID_STEP - 1e-9).astype(np.int64), _GRID_BINS - 1)
        genuine += np.bincount(bins[upper & same], minlength=_GRID_BINS)
        impostor += np.bincount(bins[upper & ~same], minlength=_GRID_BINS)
    return genuine, impostor


def _result(genuine: np.ndarray, impostor: np.ndarray, target_fmr: float, people: int, faces: int) -> CalibrationResult:
    genuine_pairs, impostor_pairs = int(genuine.sum()), int(impostor.sum())
    fmr = np.cumsum(impostor) / impostor_pairs  # fmr[i]: share of impostor distances <= i * GRID_STEP
    fnmr = 1.0 - np.cumsum(genuine) / genuine_pairs
    # FMR only grows with the threshold: the last grid point still within the target.
    at = max(0, int(np.searchsorted(fmr, target_fmr, side="right")) - 1)
    # Where the curves cross over a range (e.g. both 0 on well-separated faces), its middle.
    gap = np.abs(fmr - fnmr)
    closest = np.flatnonzero(gap == gap.min())
    crossing = int(closest[len(closest) // 2])
    return CalibrationResult(
        threshold=round(at * GRID_STEP, 5),
        target_fmr=target_fmr,
        fmr=float(fmr[at]),
        fnmr=float(fnmr[at]),
        eer=float((fmr[crossing] + fnmr[crossing]) / 2.0),
        eer_threshold=round(crossing * GRID_STEP, 5),
        genuine_pairs=genuine_pairs,
        impostor_pairs=impostor_pairs,
        people=people,
        faces=faces,
    )
