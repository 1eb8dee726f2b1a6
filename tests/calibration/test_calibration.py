"""Calibration over every genuine and impostor pair (facerec.calibration), checked against a brute-force count."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from facerec import calibration
from facerec.calibration import GRID_STEP, calibrate


def clustered(people: int, faces: int, rng: np.random.Generator, spread: float = 0.03) -> tuple[np.ndarray, list[str]]:
    """Faces around per-person centres: same-person pairs ~0.4 apart, different people ~0.8 (like dlib's)."""
    centres = rng.normal(scale=0.05, size=(people, 128))
    vectors = np.repeat(centres, faces, axis=0) + rng.normal(scale=spread, size=(people * faces, 128))
    return vectors.astype(np.float32), [f"p{i}" for i in range(people) for _ in range(faces)]


def brute_force(vectors: np.ndarray, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Every genuine and every impostor distance, the plain way."""
    values = vectors.astype(np.float64)
    distances = np.linalg.norm(values[:, None, :] - values[None, :, :], axis=2)
    upper = np.triu(np.ones(distances.shape, dtype=bool), 1)
    same = np.asarray(labels)[:, None] == np.asarray(labels)[None, :]
    return distances[upper & same], distances[upper & ~same]


def test_threshold_is_the_largest_whose_false_match_rate_is_within_the_target() -> None:
    vectors, labels = clustered(12, 5, np.random.default_rng(1))
    genuine, impostor = brute_force(vectors, labels)
    result = calibrate(vectors, labels, target_fmr=0.01)
    assert (result.genuine_pairs, result.impostor_pairs) == (len(genuine), len(impostor)) == (120, 1650)
    assert result.fmr <= 0.01
    assert result.fmr == pytest.approx(np.mean(impostor <= result.threshold + 1e-9))
    assert result.fnmr == pytest.approx(np.mean(genuine > result.threshold + 1e-9))
    # One grid step further, more than the target would be falsely matched.
    assert np.mean(impostor <= result.threshold + GRID_STEP + 1e-9) > 0.01


def test_equal_error_rate_is_where_the_two_rates_meet() -> None:
    vectors, labels = clustered(15, 4, np.random.default_rng(2), spread=0.07)
    genuine, impostor = brute_force(vectors, labels)
    result = calibrate(vectors, labels, target_fmr=0.001)
    fmr = np.mean(impostor <= result.eer_threshold + 1e-9)
    fnmr = np.mean(genuine > result.eer_threshold + 1e-9)
    assert result.eer == pytest.approx((fmr + fnmr) / 2)
    assert abs(fmr - fnmr) <= 2 / len(genuine)  # the rates cross within one pair's step
    assert 0 < result.eer < 0.5


def test_well_separated_people_have_no_error_and_the_eer_threshold_between_them() -> None:
    vectors, labels = clustered(6, 3, np.random.default_rng(3), spread=0.01)
    genuine, impostor = brute_force(vectors, labels)
    result = calibrate(vectors, labels, target_fmr=0.001)
    assert (result.eer, result.fnmr, result.fmr) == (0.0, 0.0, 0.0)
    assert genuine.max() < result.eer_threshold < impostor.min()


def test_people_with_one_face_give_impostor_pairs_only() -> None:
    vectors, labels = clustered(4, 2, np.random.default_rng(4))
    extra, _ = clustered(3, 1, np.random.default_rng(5))
    result = calibrate(np.concatenate([vectors, extra]), [*labels, "x", "y", "z"], target_fmr=0.1)
    assert (result.people, result.faces, result.genuine_pairs) == (4, 11, 4)
    assert result.impostor_pairs == 11 * 10 // 2 - 4


def test_blocks_of_rows_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    vectors, labels = clustered(20, 3, np.random.default_rng(6))
    whole = calibrate(vectors, labels, target_fmr=0.01)
    monkeypatch.setattr(calibration, "_BLOCK_PAIRS", 7)
    assert calibrate(vectors, labels, target_fmr=0.01) == whole


def test_memory_stays_bounded_on_many_faces() -> None:
    vectors, labels = clustered(1000, 4, np.random.default_rng(7))  # 4,000 faces, 8 M pairs
    tracemalloc.start()
    try:
        result = calibrate(vectors, labels, target_fmr=0.001)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.genuine_pairs + result.impostor_pairs == 4000 * 3999 // 2
    assert peak < 120 * 2**20  # all 8 M distances as float64 alone would take 64 MB, their masks and bins more


def test_nobody_with_two_faces_cannot_be_calibrated() -> None:
    vectors, _ = clustered(3, 1, np.random.default_rng(8))
    with pytest.raises(ValueError, match="no person has two faces"):
        calibrate(vectors, ["a", "b", "c"], target_fmr=0.01)


def test_one_person_alone_cannot_be_calibrated() -> None:
    vectors, _ = clustered(1, 3, np.random.default_rng(9))
    with pytest.raises(ValueError, match="impostor pairs"):
        calibrate(vectors, ["a", "a", "a"], target_fmr=0.01)


@pytest.mark.parametrize("target", [0.0, -0.1, 0.6, float("nan")])
def test_a_target_out_of_range_is_refused(target: float) -> None:
    vectors, labels = clustered(3, 2, np.random.default_rng(10))
    with pytest.raises(ValueError, match="target_fmr"):
        calibrate(vectors, labels, target_fmr=target)


def test_labels_must_match_the_descriptors() -> None:
    vectors, labels = clustered(3, 2, np.random.default_rng(11))
    with pytest.raises(ValueError, match="labels"):
        calibrate(vectors, labels[:-1], target_fmr=0.01)
