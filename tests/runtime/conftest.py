"""A running probe service for exercising the shared runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from facerec.runtime.server import ServiceRunner
from facerec.runtime.settings import ServiceSettings
from tests.runtime.probe import ProbeApp


def probe_settings(**overrides: object) -> ServiceSettings:
    values: dict[str, object] = {"port": 0, "metrics_port": 0, "health_interval_s": 0.05, "grace_period_s": 1.0}
    values.update(overrides)
    return ServiceSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def probe() -> AsyncIterator[tuple[ProbeApp, ServiceRunner, grpc.aio.Channel]]:
    app = ProbeApp()
    runner = ServiceRunner(app, probe_settings())
    await runner.start()
    channel = grpc.aio.insecure_channel(runner.address)
    yield app, runner, channel
    await channel.close()
    await runner.stop(0)
