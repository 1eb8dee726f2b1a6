"""Measures the model's impostor distance distribution and writes the gateway's ``impostor_tail.json``.

    .venv/bin/python -m benchmarks.impostor_tail            # writes services/gateway/facerec_gateway/impostor_tail.json
    .venv/bin/python -m benchmarks.impostor_tail --check    # prints the fit against the data, writes nothing

A target false-positive identification rate over N enrolled people needs the false match rate per entry at
``1 - (1 - FPIR) ** (1 / N)``: 1e-5 for 1 % over 1,000 people, 1e-8 over 1M. No labelled set here holds enough
impostor pairs to see that far, so the distribution is measured, then its lower tail is fitted and extrapolated:

- **Measured**: every impostor pair (two faces of different people) within each labelled set of
  ``$FACEREC_FACES_DIR`` (lfw_a_to_j, deepface, dlib_johns, essex_faces94, yalefaces; never across sets, where the
  same person could appear under two names), from the descriptors ``benchmarks/open_set.py`` caches (the real
  pipeline and model). About 27 M pairs, almost all LFW's.
- **Fitted** (peaks over threshold, extreme value theory): below ``u``, the distance at FMR ``TAIL_FMR``
  (1e-3), the shortfalls ``u - d`` of the impostor distances under ``u`` follow a generalised Pareto
  distribution; its shape and scale are fitted by maximum likelihood (scipy's ``genpareto``). Below ``u``,
  ``FMR(t) = TAIL_FMR * GPD.sf(u - t)``. The fit is checked against the measured FMR at 1e-4 .. 1e-6
  (``--check`` prints it): a negative shape bounds the tail, so the extrapolation cannot run off to distances
  no impostor reaches.
- **Shipped**: one table of (threshold, log10 FMR) every ``STEP`` from 0 to 1.5, measured at and above ``u``,
  fitted below, floored at ``FLOOR_LOG10`` (the gateway interpolates linearly in log10 between points).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import numpy as np
from scipy.stats import genpareto

from benchmarks.common import print_table
from benchmarks.open_set import Described, all_photos, describe_all
from tests.paths import REPO_ROOT

OUTPUT = REPO_ROOT / "services" / "gateway" / "facerec_gateway" / "impostor_tail.json"
TAIL_FMR = 1e-3
STEP = 0.0025
TOP = 1.5
FLOOR_LOG10 = -15.0
# Impostor distances above this are only counted (the tail is all that needs them one by one).
KEEP_BELOW = 0.75
_BLOCK = 512


def impostor_distances(sets: list[Described]) -> tuple[np.ndarray, int, np.ndarray]:
    """Impostor distances under ``KEEP_BELOW`` (sorted), the number of impostor pairs, and a histogram of all
    impostor distances on the table's grid (counts of distances in (t - STEP, t])."""
    grid = np.arange(0.0, TOP + STEP / 2, STEP)
    histogram = np.zeros(len(grid) + 1, dtype=np.int64)
    kept: list[np.ndarray] = []
    total = 0
    for described in sets:
        vectors = described.descriptors.astype(np.float64)
        _, codes = np.unique(np.asarray(described.people), return_inverse=True)
        squares = (vectors**2).sum(1)
        for start in range(0, len(vectors) - 1, _BLOCK):
            stop = min(start + _BLOCK, len(vectors) - 1)
            # Columns after each row's own index only: every unordered pair once.
            others = slice(start + 1, len(vectors))
            squared = squares[start:stop, None] + squares[None, others] - 2.0 * vectors[start:stop] @ vectors[others].T
            distances = np.sqrt(np.maximum(squared, 0.0))
            rows = np.arange(start, stop)[:, None]
            columns = np.arange(start + 1, len(vectors))[None, :]
            impostor = (rows < columns) & (codes[rows] != codes[columns])
            values = distances[impostor]
            total += len(values)
            kept.append(values[values < KEEP_BELOW])
            histogram += np.bincount(np.searchsorted(grid, values, side="left"), minlength=len(grid) + 1)
    return np.sort(np.concatenate(kept)), total, histogram


def fit_tail(low: np.ndarray, total: int) -> tuple[float, float, float]:
    """(u, shape, scale): the distance at FMR ``TAIL_FMR`` and the generalised Pareto fit of the shortfalls."""
    count = round(TAIL_FMR * total)
    u = float(low[count - 1])
    shortfalls = u - low[: count - 1]
    shape, _, scale = genpareto.fit(shortfalls, floc=0.0)
    return u, float(shape), float(scale)


def tail_fmr(t: np.ndarray, u: float, shape: float, scale: float) -> np.ndarray:
    """The fitted FMR below ``u``."""
    return TAIL_FMR * genpareto.sf(u - t, shape, loc=0.0, scale=scale)


def table(histogram: np.ndarray, total: int, u: float, shape: float, scale: float) -> list[list[float]]:
    """Rows (threshold, log10 FMR), strictly increasing in both, from the floor to FMR 1."""
    grid = np.arange(0.0, TOP + STEP / 2, STEP)
    measured = np.cumsum(histogram[: len(grid)]) / total
    fitted = tail_fmr(grid, u, shape, scale)
    fmr = np.where(grid >= u, measured, fitted)
    with np.errstate(divide="ignore"):
        log10 = np.maximum(np.log10(fmr), FLOOR_LOG10)
    rows: list[list[float]] = []
    for t, value in zip(grid, np.round(log10, 6), strict=True):
        if rows and value <= rows[-1][1]:
            continue  # flat stretches (the floor, FMR 1) keep their first point: the inverse stays a function
        rows.append([round(float(t), 4), float(value)])
    return rows


def check(low: np.ndarray, total: int, u: float, shape: float, scale: float) -> list[tuple[str, ...]]:
    """The measured threshold at FMR 1e-4 .. 1e-6 next to the fitted one (u, the fit's anchor, is at 1e-3)."""
    rows: list[tuple[str, ...]] = []
    for fmr in (1e-4, 3e-5, 1e-5, 3e-6, 1e-6):
        count = round(fmr * total)
        measured = float(low[count - 1]) if count >= 1 else float("nan")
        grid = np.linspace(0.0, u, 20001)
        fitted = float(np.interp(np.log10(fmr), np.log10(np.maximum(tail_fmr(grid, u, shape, scale), 1e-300)), grid))
        rows.append((f"{fmr:.0e}", str(count), f"{measured:.4f}", f"{fitted:.4f}"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="print the fit against the data, write nothing")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    described = asyncio.run(describe_all(all_photos(), threads=1))
    low, total, histogram = impostor_distances(list(described.values()))
    u, shape, scale = fit_tail(low, total)
    print(f"{total} impostor pairs; u = {u:.4f} at FMR {TAIL_FMR:g}; GPD shape {shape:.4f}, scale {scale:.5f}")
    print_table(("FMR", "pairs under", "measured t", "fitted t"), check(low, total, u, shape, scale))
    if args.check:
        return
    rows = table(histogram, total, u, shape, scale)
    document = {
        "model_id": "dlib_resnet_v1",
        "measured_by": "benchmarks/impostor_tail.py",
        "sets": {name: len(d.people) for name, d in described.items()},
        "impostor_pairs": total,
        "tail": {"fmr_at_u": TAIL_FMR, "u": u, "gpd_shape": shape, "gpd_scale": scale},
        "table": rows,
    }
    args.output.write_text(json.dumps(document, indent=None) + "\n")
    print(f"wrote {args.output} ({len(rows)} rows)")


if __name__ == "__main__":
    main()
