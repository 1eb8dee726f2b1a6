"""Shared pieces of the benchmarks: real photos, timing, the JSON last line."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tests.paths import SAMPLES_DIR, SHARED_FACES_DIR


def benchmark_photos(limit: int) -> list[Path]:
    """Real face photos: the labelled deepface set when $FACEREC_FACES_DIR is present, else the sample photos."""
    deepface = SHARED_FACES_DIR / "deepface"
    photos = sorted(deepface.glob("img*.jpg")) if deepface.is_dir() else []
    if not photos:
        photos = sorted(p for p in SAMPLES_DIR.glob("*.jpg") if "partial" not in p.name)
    if not photos:
        raise SystemExit(f"no photos: run scripts/setup.sh (expected {SAMPLES_DIR})")
    return (photos * (1 + limit // len(photos)))[:limit]


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def timed(run: Callable[[], Any]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def percentile_ms(samples_s: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples_s) * 1000, q))


def print_table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows, strict=True)]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))


def print_json(figures: dict[str, Any]) -> None:
    """The benchmark's last line."""
    print(json.dumps(figures, sort_keys=True))
