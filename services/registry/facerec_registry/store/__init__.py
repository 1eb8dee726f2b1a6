"""Vector stores behind the registry's ``FaceStore`` seam, and the factory that picks one from settings."""

from __future__ import annotations

from facerec_registry.store.base import FaceStore, StoreConfig


def open_store(config: StoreConfig) -> FaceStore:
    """A Qdrant server store when ``config.qdrant_url`` is set, else the embedded Qdrant Edge store."""
    if config.qdrant_url:
        from facerec_registry.store.server import ServerFaceStore

        return ServerFaceStore(config)
    from facerec_registry.store.edge import EdgeFaceStore

    return EdgeFaceStore(config)


__all__ = ["FaceStore", "StoreConfig", "open_store"]
