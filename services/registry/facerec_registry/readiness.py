"""Whether the registry's store can serve now: the registry's readiness.

The embedded store is ready while it is open. A Qdrant server is ready while it answers: its gRPC health check
(``qdrant.Qdrant/HealthCheck``, which reads nothing) within :data:`READINESS_TIMEOUT_S`, asked over a client of
its own with the store's address, API key and TLS, so that a check never waits behind the store's calls or their
10 s timeout, and reconnecting within a second once the server is back.
"""

from __future__ import annotations

import asyncio

import grpc
from qdrant_client import QdrantClient
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from facerec.retry import RECONNECT_OPTIONS
from facerec_registry.store.base import StoreConfig
from facerec_registry.store.server import client_options

READINESS_TIMEOUT_S = 2.0


class QdrantServerProbe:
    """Asks a Qdrant server whether it answers, in bounded time."""

    def __init__(self, config: StoreConfig, timeout_s: float = READINESS_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        options = {
            **client_options(config),
            "timeout": max(1, round(timeout_s)),  # qdrant-client takes whole seconds
            "grpc_options": dict(RECONNECT_OPTIONS),
            "check_compatibility": False,  # no version request at construction: the server may be down
        }
        self._client = QdrantClient(**options)

    async def answers(self) -> bool:
        """Whether the server answered its health check within the timeout."""
        try:
            await asyncio.wait_for(asyncio.to_thread(self._client.info), self.timeout_s)
        except (TimeoutError, grpc.RpcError, ResponseHandlingException, UnexpectedResponse, OSError):
            return False
        return True

    def close(self) -> None:
        self._client.close()
