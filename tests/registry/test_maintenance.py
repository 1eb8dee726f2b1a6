"""The registry's upkeep loop: rounds on a timer, a failing round logged and followed by the next, a clean stop."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from facerec_registry.maintenance import Maintenance
from facerec_registry.registry import Registry
from facerec_registry.store.base import StoreConfig
from facerec_registry.store.edge import EdgeFaceStore
from facerec_registry.store.server import ServerFaceStore

pytestmark = pytest.mark.filterwarnings("ignore:Failed to obtain server version:UserWarning")


async def _rounds(maintenance: Maintenance, wanted: int, timeout_s: float = 10) -> None:
    for _ in range(int(timeout_s / 0.01)):
        if maintenance.rounds >= wanted:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{maintenance.rounds} rounds in {timeout_s} s, not {wanted}")


async def test_rounds_repeat_on_the_interval_and_stop_cleanly(tmp_path: Path) -> None:
    store = EdgeFaceStore(StoreConfig(data_dir=tmp_path))
    maintenance = Maintenance(Registry(store), interval_s=0.05)
    try:
        maintenance.start()
        await _rounds(maintenance, 3)
        await maintenance.stop()
        stopped_at = maintenance.rounds
        await asyncio.sleep(0.2)
        assert maintenance.rounds == stopped_at
    finally:
        store.close()


async def test_a_round_that_fails_is_logged_and_the_next_one_runs(caplog: pytest.LogCaptureFixture) -> None:
    # A real fault: nothing listens on the Qdrant server's port.
    store = ServerFaceStore(StoreConfig(qdrant_url="http://127.0.0.1:1", grpc_port=1, timeout_s=1))
    maintenance = Maintenance(Registry(store), interval_s=0.05)
    try:
        with caplog.at_level(logging.ERROR, logger="facerec_registry.maintenance"):
            maintenance.start()
            await _rounds(maintenance, 2)
            await maintenance.stop()
    finally:
        store.close()

    failures = [r for r in caplog.records if "maintenance round failed" in r.getMessage()]
    assert len(failures) >= 2
