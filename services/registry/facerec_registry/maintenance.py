"""The registry's own upkeep, on a timer in its process: retention purges and rewrites after erasures.

Each round (the first as the process starts, then every ``FACEREC_REGISTRY_RETENTION_INTERVAL_S``) purges the
people whose retention period ran out (``Registry.purge_expired``) and starts, where the store needs it, the
rewrite of each collection whose faces were erased since its last one (``Registry.compact_erased``), so that
erased descriptors leave the disk within about one interval. A round that fails (a Qdrant server away) is
logged and the next one tries again; the loop never ends the process. Several replicas may run it against one
server: purges are idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from facerec_registry.registry import Registry

log = logging.getLogger(__name__)


class Maintenance:
    """Runs the registry's upkeep every ``interval_s`` seconds, in worker threads, until stopped."""

    def __init__(self, registry: Registry, interval_s: float) -> None:
        self._registry = registry
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.rounds = 0

    def start(self) -> None:
        """Starts the loop on the running event loop."""
        self._task = asyncio.create_task(self._run(), name="registry-maintenance")

    async def stop(self) -> None:
        """Stops the loop, after the round under way if there is one (so the store is not closed under it)."""
        if self._task is not None:
            self._stopping.set()
            await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._stopping.is_set():
            await self.run_round()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval_s)

    async def run_round(self) -> None:
        """One round: purge, then start rewrites; failures are logged."""
        try:
            purged = await asyncio.to_thread(self._registry.purge_expired)
            rewriting = await asyncio.to_thread(self._registry.compact_erased)
        except Exception:
            log.exception("registry maintenance round failed; the next one tries again")
        else:
            if purged or rewriting:
                log.info("maintenance: %d faces purged; rewriting %s", purged, ", ".join(rewriting) or "nothing")
        self.rounds += 1
