"""The benchmark's face-like vectors against real dlib descriptors of labelled photos (``$FACEREC_FACES_DIR``).

``benchmarks/registry.py`` measures the index on synthetic galleries (``tests/registry/faces.py``), so how
hard the problem is for the graph index depends on how face-like they are. These tests compare them with
descriptors of real photos (deepface: 13 people, dlib's own pipeline) on what matters for a graph index: how
far apart two faces of one person and of two people are, and how the identities spread over the 128
dimensions (the share of the spread of identity centres along their top principal directions: uniform
random vectors spread evenly, real descriptors do not).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from tests.embedder.real_faces import detect_faces, dlib_descriptor
from tests.registry.faces import faces_around, identity_centres

Matrix = npt.NDArray[np.float64]


def _real_descriptors(folder: Path) -> tuple[Matrix, npt.NDArray[np.str_]]:
    """Descriptors and identities of the deepface photos that hold exactly one face."""
    vectors, labels = [], []
    with (folder / "deepface" / "identities.csv").open() as table:
        for row in csv.DictReader(table):
            faces = detect_faces(folder / "deepface" / row["file"])
            if len(faces) == 1:
                vectors.append(dlib_descriptor(faces[0].dlib_chip).astype(np.float64))
                labels.append(row["identity"])
    return np.array(vectors), np.array(labels)


def _mean_distances(vectors: Matrix, labels: npt.NDArray[np.generic]) -> tuple[float, float]:
    """Mean distance between two faces of one person, and of two people."""
    distances = np.linalg.norm(vectors[:, None] - vectors[None], axis=2)
    pairs = np.triu_indices(len(vectors), 1)
    same = (labels[:, None] == labels[None])[pairs]
    return float(distances[pairs][same].mean()), float(distances[pairs][~same].mean())


def _top_share(vectors: Matrix, labels: npt.NDArray[np.generic], top: int = 5) -> float:
    """Share of the spread of identity centres that lies along their ``top`` principal directions."""
    centres = np.stack([vectors[labels == label].mean(axis=0) for label in np.unique(labels)])
    spread = np.linalg.svd(centres - centres.mean(axis=0), compute_uv=False) ** 2
    return float(spread[:top].sum() / spread.sum())


def _synthetic_like(labels: npt.NDArray[np.str_], spectrum: str, seed: int) -> tuple[Matrix, npt.NDArray[np.int64]]:
    """A synthetic gallery with as many people, and faces per person, as the real one."""
    rng = np.random.default_rng(seed)
    counts = [int(np.sum(labels == label)) for label in np.unique(labels)]
    centres = identity_centres(len(counts), rng, spectrum=spectrum)
    vectors = np.concatenate([faces_around(centres[i], count, rng) for i, count in enumerate(counts)])
    owners = np.repeat(np.arange(len(counts)), counts)
    return vectors.astype(np.float64), owners


@pytest.fixture(scope="module")
def real(shared_faces_dir: Path) -> tuple[Matrix, npt.NDArray[np.str_]]:
    vectors, labels = _real_descriptors(shared_faces_dir)
    assert len(np.unique(labels)) >= 10, "too few identities found to compare with"
    return vectors, labels


@pytest.mark.parametrize("spectrum", ["facelike", "isotropic"])
def test_synthetic_faces_are_as_far_apart_as_real_ones(
    real: tuple[Matrix, npt.NDArray[np.str_]], spectrum: str
) -> None:
    real_same, real_different = _mean_distances(*real)
    synthetic = [_mean_distances(*_synthetic_like(real[1], spectrum, seed)) for seed in range(20)]
    same, different = np.mean(synthetic, axis=0)
    assert same == pytest.approx(real_same, abs=0.05)
    assert different == pytest.approx(real_different, abs=0.05)


def test_facelike_identities_spread_over_the_dimensions_as_real_ones_do(
    real: tuple[Matrix, npt.NDArray[np.str_]],
) -> None:
    real_share = _top_share(*real)
    facelike = np.mean([_top_share(*_synthetic_like(real[1], "facelike", seed)) for seed in range(40)])
    isotropic = np.mean([_top_share(*_synthetic_like(real[1], "isotropic", seed)) for seed in range(40)])
    # Real descriptors concentrate more of their spread in a few directions than random directions do,
    # and "facelike" reproduces that; "isotropic" stays the harder, evenly spread case.
    assert facelike == pytest.approx(real_share, abs=0.06)
    assert isotropic < real_share - 0.06
