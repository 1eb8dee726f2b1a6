"""The README's benchmark commands run (on tiny inputs here: their figures are measured on demand, not in CI)
and end with one JSON object carrying the figures their issues name."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.paths import REPO_ROOT, SHARED_FACES_DIR


def run_benchmark(*args: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert isinstance(figures, dict)
    return figures


def test_embedder_benchmark_reports_its_three_figures(samples_dir) -> None:
    figures = run_benchmark("benchmarks.embedder", "--faces", "4", "--photos", "2", "--phone-photos", "1")
    assert float(figures["max_abs_diff"]) <= 1e-5  # type: ignore[arg-type]
    assert float(figures["triton_vs_dlib_throughput"]) > 0  # type: ignore[arg-type]
    assert float(figures["pipeline_vs_dlib_throughput"]) > 0  # type: ignore[arg-type]
    assert float(figures["pipeline_12mp_vs_dlib_throughput"]) > 0  # type: ignore[arg-type]


def test_e2e_benchmark_reports_gateway_overhead_and_bulk_enroll_ratio(samples_dir) -> None:
    figures = run_benchmark("benchmarks.e2e", "--photos", "3", "--phone-photos", "2")
    assert float(figures["gateway_overhead_ratio"]) > 0  # type: ignore[arg-type]
    assert float(figures["bulk_enroll_vs_embed_ratio"]) > 0  # type: ignore[arg-type]
    assert float(figures["identify_12mp_vs_1mp_p50"]) > 0  # type: ignore[arg-type]


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


def test_quality_gates_benchmark_reports_rejections_and_accuracy_of_today_and_the_defaults() -> None:
    if not (SHARED_FACES_DIR / "lfw_a_to_j").is_dir():
        pytest.skip(f"{SHARED_FACES_DIR / 'lfw_a_to_j'} is missing: the shared face photos are not on this machine")
    figures = run_benchmark("benchmarks.quality_gates", "--people", "4", "--per-set", "2", "--degraded", "2")
    assert figures["lfw_people"] == 4
    assert 0 <= float(figures["defaults_rejected_first_pct"]) <= 100  # type: ignore[arg-type]
    assert 0 <= float(figures["today_genuine_accuracy_pct"]) <= 100  # type: ignore[arg-type]
    assert float(figures["degraded_rejected_pct"]) > 0  # type: ignore[arg-type]


def test_import_benchmark_reports_completion_and_the_ratio_to_the_embedder(samples_dir) -> None:
    figures = run_benchmark("benchmarks.import_", "--photos", "4", "--width", "800", "--height", "600")
    assert figures["photos"] == 4 and figures["cli_exit_code"] == 0
    assert figures["faces_written"] == figures["faces_expected"] and figures["complete"] is True
    assert float(figures["import_vs_embedder_ratio"]) > 0  # type: ignore[arg-type]


def test_gallery_benchmark_reports_counts_listing_and_identify_through_the_gateway(samples_dir) -> None:
    figures = run_benchmark("benchmarks.gallery", "--sizes", "1000,3000", "--photos", "3", "--identify-s", "1")
    runs = {run["faces"]: run for run in figures["runs"]}  # type: ignore[attr-defined]
    assert sorted(runs) == [1000, 3000]
    assert runs[3000]["counted_people"] >= 300 and runs[3000]["counted_faces"] >= 3000
    assert float(figures["identify_p99_ratio"]) > 0  # type: ignore[arg-type]
    assert float(figures["largest_get_collection_p50_ms"]) > 0  # type: ignore[arg-type]
    assert float(figures["largest_people_page_p50_ms"]) > 0  # type: ignore[arg-type]


def test_detection_benchmark_reports_recall_per_set_and_deepface_accuracy_per_detector() -> None:
    if not (SHARED_FACES_DIR / "deepface").is_dir():
        pytest.skip(f"{SHARED_FACES_DIR / 'deepface'} is missing: the shared face photos are not on this machine")
    figures = run_benchmark("benchmarks.detection", "--limit", "4")
    for detector in ("yunet", "hog"):
        assert 0 <= int(figures[f"found_{detector}_deepface"]) <= int(figures["photos_deepface"])  # type: ignore[call-overload]
        assert 0 <= float(figures[f"deepface_rank1_{detector}"]) <= 1  # type: ignore[arg-type]
    assert isinstance(figures["yunet_finds_at_least_hog_everywhere"], bool)


def test_open_set_benchmark_reports_fpir_fnir_and_the_distractor_runs() -> None:
    if not (SHARED_FACES_DIR / "lfw_a_to_j").is_dir():
        pytest.skip(f"{SHARED_FACES_DIR / 'lfw_a_to_j'} is missing: the shared face photos are not on this machine")
    figures = run_benchmark(
        "benchmarks.open_set",
        *("--sets", "deepface", "lfw_a_to_j", "--lfw-people", "20", "--lfw-strangers", "40"),
        *("--per-person", "1", "--distractors", "500"),
    )
    trials = figures["trials"]
    assert isinstance(trials, list) and len(trials) == 3  # deepface half, LFW half, LFW 2+ photos
    for trial in trials:
        for rule in ("defaults", "defaults_no_margin", "at_fpir_1pct", "at_fpir_1pct_margin"):
            assert 0 <= trial[rule]["fpir"] <= 100 and 0 <= trial[rule]["fnir"] <= 100
    runs = figures["distractor_runs"]
    assert isinstance(runs, list) and [r["distractors"] for r in runs] == [0, 500]
    assert runs[1]["threshold"] < runs[0]["threshold"]  # the threshold follows the gallery's size
    for name in ("fpir_at_defaults_ok", "fpir_with_distractors_ok", "margin_no_worse_everywhere"):
        assert isinstance(figures[name], bool)


def test_registry_calls_benchmark_reports_get_collection_with_counts_and_one_store_call_per_search() -> None:
    figures = run_benchmark("benchmarks.registry_calls", "--faces", "500", "--calls", "5")
    assert figures["faces"] == 500
    assert float(figures["get_collection_counts_p50_ms"]) > 0  # type: ignore[arg-type]
    # A search reads no collection settings from the store: only searches (more than one when a round of
    # candidates brought too few distinct people).
    assert set(figures["store_calls_per_search"]) == {"search"}  # type: ignore[call-overload]


def test_tracing_benchmark_reports_the_cost_of_tracing_off_and_on() -> None:
    figures = run_benchmark("benchmarks.tracing", "--calls", "20", "--stages", "200")
    assert float(figures["stage_on_vs_off"]) > 0  # type: ignore[arg-type]
    assert float(figures["call_on_vs_off"]) > 0  # type: ignore[arg-type]
    assert int(figures["spans_exported"]) >= 200 + 20  # type: ignore[call-overload]


def test_overload_benchmark_reports_goodput_at_2x_and_16x_and_refusal_latency(samples_dir) -> None:
    figures = run_benchmark("benchmarks.overload", "--seconds", "1", "--photos", "2", "--size", "1155x866")
    assert float(figures["peak_goodput"]) > 0  # type: ignore[arg-type]
    assert float(figures["goodput_16x_vs_peak"]) >= 0  # type: ignore[arg-type]
    assert int(figures["deadline_exceeded_16x"]) >= 0  # type: ignore[call-overload]
    assert "refusal_p50_ms" in figures and "max_overrun_ms" in figures


def test_cluster_benchmark_reports_precision_recall_and_time_of_synthetic_and_real_photos() -> None:
    if not (SHARED_FACES_DIR / "dlib_johns").is_dir():
        pytest.skip(f"{SHARED_FACES_DIR / 'dlib_johns'} is missing: the shared face photos are not on this machine")
    figures = run_benchmark(
        "benchmarks.cluster", "--faces", "300", "--fit-on", "dlib_johns", "--real-sets", "dlib_johns"
    )
    synthetic = figures["synthetic"]
    assert isinstance(synthetic, dict) and synthetic["faces"] == 300
    assert 0 <= synthetic["precision"] <= 1 and 0 <= synthetic["recall"] <= 1
    assert synthetic["seconds"]["total"] > 0 and set(synthetic["cuts"]) == {
        "weighted chinese whispers (the gateway's)",
        "dlib's chinese whispers (links 1)",
        "connected components of mutual links",
    }
    rows = figures["real"]
    assert isinstance(rows, list) and len(rows) == 1
    real = rows[0]
    assert real["set"] == "dlib_johns" and real["photos"] == 55 and 0 <= real["recall"] <= 1
    assert isinstance(figures["synthetic_within_target_s"], bool) and isinstance(figures["real_targets_met"], bool)


def test_retention_benchmark_reports_audit_purge_and_rewrite_figures() -> None:
    figures = run_benchmark("benchmarks.retention", "--faces", "2000", "--appends", "5")
    # 1 % of the 200 people expired (10 faces each); 20 people erased; the rest kept through the rewrite.
    assert (figures["faces"], figures["purged_faces"], figures["faces_after_rewrite"]) == (2000, 20, 1840)
    assert float(figures["audit_append_p50_ms"]) > 0  # type: ignore[arg-type]
    assert float(figures["rewrite_s"]) > 0  # type: ignore[arg-type]
