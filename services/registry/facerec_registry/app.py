"""The registry process: collections of people's descriptors in Qdrant (embedded Edge, or a server)."""

from __future__ import annotations

import asyncio
import fcntl
import logging
from collections.abc import Sequence
from pathlib import Path

from facerec.registry.v1 import registry_pb2, registry_pb2_grpc
from facerec.runtime.server import ServiceBinding
from facerec_registry.errors import StoreUnavailable
from facerec_registry.maintenance import Maintenance
from facerec_registry.readiness import QdrantServerProbe
from facerec_registry.registry import Registry
from facerec_registry.servicer import RegistryServicer
from facerec_registry.settings import RegistrySettings
from facerec_registry.store import FaceStore, StoreConfig, open_store

log = logging.getLogger(__name__)


def store_config(settings: RegistrySettings) -> StoreConfig:
    """The store's configuration from the service's settings."""
    return StoreConfig(
        data_dir=settings.data_dir,
        qdrant_url=settings.qdrant_url,
        grpc_port=settings.qdrant_grpc_port,
        https=settings.qdrant_https,
        api_key=settings.qdrant_api_key,
        timeout_s=max(1, round(settings.qdrant_timeout_s)),
        hnsw_m=settings.hnsw_m,
        hnsw_ef_construct=settings.hnsw_ef_construct,
        hnsw_ef=settings.search_ef,
        people_hnsw_ef=settings.people_search_ef,
        int8_quantization=settings.quantization,
        shard_number=settings.qdrant_shard_number,
        replication_factor=settings.qdrant_replication_factor,
        optimize_threshold=settings.optimize_threshold,
    )


class DataDirLock:
    """An exclusive lock on the embedded store's folder: only one registry process may open it (Qdrant Edge
    shards are opened lazily, so without this a second process could start and fail later, or worse)."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self._file = (data_dir / "registry.lock").open("a")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            raise DataDirInUse(f"another registry process holds {data_dir}; only one may open it") from None

    def release(self) -> None:
        fcntl.flock(self._file, fcntl.LOCK_UN)
        self._file.close()


class DataDirInUse(RuntimeError):
    """The embedded store's folder is open in another registry process."""


class RegistryApp:
    """Serves facerec.registry.v1.Registry; healthy while its store is open and, for a Qdrant server, while the
    server answers (``facerec_registry.readiness``)."""

    name = "registry"

    def __init__(self, settings: RegistrySettings) -> None:
        self.settings = settings
        config = store_config(settings)
        self._lock = None if config.qdrant_url else DataDirLock(config.data_dir)
        self.store: FaceStore | None = open_store(config)
        self._probe = QdrantServerProbe(config) if config.qdrant_url else None
        self.registry = Registry(self.store, shared_settings_ttl_s=settings.shared_settings_ttl_s)
        self.maintenance = Maintenance(self.registry, settings.retention_interval_s)
        log.info("face store open: %s", config.qdrant_url or config.data_dir)

    def bindings(self) -> Sequence[ServiceBinding]:
        return [
            ServiceBinding(
                registry_pb2.DESCRIPTOR.services_by_name["Registry"],
                RegistryServicer(self.registry),
                registry_pb2_grpc.add_RegistryServicer_to_server,
            )
        ]

    async def start(self) -> None:
        # Before serving: a transient collection left by a crash is no call's any more.
        try:
            removed = await asyncio.to_thread(self.registry.remove_transient_collections)
        except StoreUnavailable:
            log.warning("could not remove leftover transient collections: the Qdrant server is unavailable")
        else:
            if removed:
                log.info("removed %d leftover transient collections", len(removed))
        self.maintenance.start()

    async def ready(self) -> bool:
        if self.store is None:
            return False
        return self._probe is None or await self._probe.answers()

    async def close(self) -> None:
        await self.maintenance.stop()
        if self.store is not None:
            await asyncio.to_thread(self.store.close)
            self.store = None
        if self._probe is not None:
            self._probe.close()
        if self._lock is not None:
            self._lock.release()
