"""What operators watch, on the real stack: after one Identify, each service's /metrics shows its stage
histograms with counts, the gRPC layer's calls and in-flight gauge, and the stages' debug lines carry the
request id the caller sent (through all three services)."""

from __future__ import annotations

import asyncio
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from facerec_embedder.triton.launcher import TritonServer
from tests.runtime.json_lines import Lines, json_lines
from tests.runtime.observed_stack import ObservedStack, observed_stack

pytestmark = pytest.mark.slow

# The stages each service times for one Identify.
STAGES_OF = {
    "gateway": {"search", "decide"},
    "registry": {"search"},
    "embedder": {"decode", "detect", "align", "embed"},
}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
async def observed(triton_server: TritonServer, samples_dir: Path, tmp_path_factory) -> AsyncIterator[ObservedStack]:
    data_dir = tmp_path_factory.mktemp("observed-registry")
    async with observed_stack(triton_server.grpc_url, data_dir, {"obama": samples_dir / "obama.jpg"}) as stack:
        yield stack


@pytest.fixture
def debug_lines() -> Iterator[Lines]:
    with json_lines("facerec") as lines:
        yield lines


def scrape(url: str) -> Samples:
    """Every sample of a /metrics page, by name and labels."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def stage_count(samples: Samples, service: str, stage: str) -> float:
    return samples.get(("facerec_stage_duration_seconds_count", (("service", service), ("stage", stage))), 0.0)


async def test_after_an_identify_each_service_shows_its_stage_histograms(
    observed: ObservedStack, samples_dir: Path
) -> None:
    before = {service: await asyncio.to_thread(scrape, url) for service, url in observed.metrics_urls.items()}
    response = await observed.identify((samples_dir / "obama2.jpg").read_bytes(), "rid-metrics-1")
    assert [face.match.person_id for face in response.faces] == ["obama"]
    for service, url in observed.metrics_urls.items():
        after = await asyncio.to_thread(scrape, url)
        grown = {
            stage: stage_count(after, service, stage) - stage_count(before[service], service, stage)
            for stage in STAGES_OF[service]
        }
        assert all(count >= 1 for count in grown.values()), f"{service}'s /metrics: {grown}"


async def test_the_grpc_layer_counts_calls_and_none_stays_in_flight(observed: ObservedStack, samples_dir: Path) -> None:
    await observed.identify((samples_dir / "obama2.jpg").read_bytes(), "rid-metrics-2")
    samples = await asyncio.to_thread(scrape, observed.metrics_urls["gateway"])
    method = ("method", "/facerec.v1.FaceRecognition/Identify")
    service = ("service", "gateway")
    assert samples[("facerec_grpc_in_flight_calls", (method, service))] == 0
    assert samples[("facerec_grpc_requests_total", (("code", "OK"), method, service))] >= 1
    assert samples[("facerec_grpc_request_duration_seconds_count", (method, service))] >= 1


async def test_each_stage_writes_a_debug_line_with_the_callers_request_id(
    observed: ObservedStack, samples_dir: Path, debug_lines: Lines
) -> None:
    await observed.identify((samples_dir / "obama2.jpg").read_bytes(), "rid-metrics-3")
    stages = Counter(
        str(line["stage"])
        for line in debug_lines.lines
        if line.get("request_id") == "rid-metrics-3" and "stage" in line
    )
    assert set(stages) == set().union(*STAGES_OF.values())
    assert stages["search"] == 2  # the gateway's (round trip) and the registry's own
