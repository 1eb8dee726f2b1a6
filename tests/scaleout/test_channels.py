"""The services' outbound channels: round-robin over every address of a name, the retry policy kept, names resolved
again within a second, and a dependency's status that is SERVING while any of its replicas is."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from facerec.runtime.channels import RETRY_SERVICE_CONFIG, service_channel_options
from facerec.runtime.server import ServiceRunner
from facerec_embedder import runtime
from facerec_gateway.clients import EmbedderClient
from tests.runtime.conftest import probe_settings
from tests.runtime.probe import ProbeApp
from tests.scaleout.dns import LoopbackDns
from tests.scaleout.replicas import port_free_on, require_loopback_replicas


def service_config(options: list[tuple[str, Any]]) -> dict[str, Any]:
    return dict(json.loads(dict(options)["grpc.service_config"]))


def test_service_channels_go_round_robin_with_the_retry_policy_and_resolve_again_within_a_second() -> None:
    options = service_channel_options(max_message_bytes=1024)
    config = service_config(options)
    assert config["loadBalancingConfig"] == [{"round_robin": {}}]
    assert config["methodConfig"] == RETRY_SERVICE_CONFIG["methodConfig"]
    assert dict(options)["grpc.dns_min_time_between_resolutions_ms"] <= 1000
    without_retries = service_config(service_channel_options(max_message_bytes=1024, retry=False))
    assert without_retries == {"loadBalancingConfig": [{"round_robin": {}}]}


def test_the_embedders_triton_channel_goes_round_robin_without_a_retry_policy() -> None:
    # Triton's full queue answers UNAVAILABLE too: the embedder's overload refusal must see it at once.
    options = runtime._TRITON_CHANNEL_ARGS
    assert service_config(options) == {"loadBalancingConfig": [{"round_robin": {}}]}
    assert dict(options)["grpc.dns_min_time_between_resolutions_ms"] <= 1000


@pytest.fixture
async def two_replicas() -> AsyncIterator[tuple[LoopbackDns, list[ProbeApp], str]]:
    require_loopback_replicas(2)
    hosts = ["127.0.0.1", "127.0.0.2"]
    port = port_free_on(hosts)
    apps = [ProbeApp(), ProbeApp()]
    runners = [ServiceRunner(app, probe_settings(host=host, port=port)) for app, host in zip(apps, hosts, strict=True)]
    for runner in runners:
        await runner.start()
    dns = LoopbackDns()
    dns.set("replicas.test", hosts)
    try:
        yield dns, apps, dns.target("replicas.test", port)
    finally:
        dns.close()
        for runner in runners:
            await runner.stop(0)


async def test_a_dependency_is_serving_while_any_replica_is_and_not_once_none_is(
    two_replicas: tuple[LoopbackDns, list[ProbeApp], str],
) -> None:
    _dns, apps, target = two_replicas
    client = EmbedderClient(target, 1 << 20)
    try:
        apps[0].is_ready = True  # one replica of two serving
        assert await becomes(client, True)
        assert all([await client.serving() for _ in range(10)])  # every check says so: none asks the other one
        apps[0].is_ready = False
        assert await becomes(client, False)
        apps[1].is_ready = True
        assert await becomes(client, True)
    finally:
        await client.close()


async def becomes(client: EmbedderClient, serving: bool, timeout_s: float = 3.0) -> bool:
    """Whether the client's status check answers ``serving`` within ``timeout_s`` (the runners re-check their
    readiness every 0.05 s; the channel learns their health by watching it)."""
    for _ in range(round(timeout_s / 0.05)):
        if await client.serving() == serving:
            return True
        await asyncio.sleep(0.05)
    return False
