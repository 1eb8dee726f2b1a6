"""The README's benchmark commands run (on tiny inputs here: their figures are measured on demand, not in CI)
and end with one JSON object carrying the figures their issues name."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.paths import REPO_ROOT


def run_benchmark(*args: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert isinstance(figures, dict)
    return figures


def test_embedder_benchmark_reports_its_three_figures(samples_dir) -> None:
    figures = run_benchmark("benchmarks.embedder", "--faces", "4", "--photos", "2")
    assert float(figures["max_abs_diff"]) <= 1e-5  # type: ignore[arg-type]
    assert float(figures["triton_vs_dlib_throughput"]) > 0  # type: ignore[arg-type]
    assert float(figures["pipeline_vs_dlib_throughput"]) > 0  # type: ignore[arg-type]


def test_e2e_benchmark_reports_gateway_overhead_and_bulk_enroll_ratio(samples_dir) -> None:
    figures = run_benchmark("benchmarks.e2e", "--photos", "3")
    assert float(figures["gateway_overhead_ratio"]) > 0  # type: ignore[arg-type]
    assert float(figures["bulk_enroll_vs_embed_ratio"]) > 0  # type: ignore[arg-type]


@pytest.mark.parametrize("data", ["facelike", "isotropic"])
def test_registry_benchmark_reports_speedup_recall_and_grpc_latency(data: str) -> None:
    figures = run_benchmark("benchmarks.registry", "--sizes", "3000", "--queries", "20", "--data", data)
    assert figures["n"] == 3000 and figures["data"] == data
    assert 0 <= float(figures["recall_at_10"]) <= 1  # type: ignore[arg-type]
    assert float(figures["speedup_vs_exact_p50"]) > 0  # type: ignore[arg-type]
    assert float(figures["grpc_search_p50_ms"]) > 0  # type: ignore[arg-type]
    # The same for the nearest people, one face each (what identification asks).
    assert 0 <= float(figures["people_recall_at_10"]) <= 1  # type: ignore[arg-type]
    assert float(figures["people_speedup_vs_exact_p50"]) > 0  # type: ignore[arg-type]
    assert float(figures["grpc_people_search_p50_ms"]) > 0  # type: ignore[arg-type]
