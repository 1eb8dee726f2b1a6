"""The aio server factory and the lifecycle of a facerec service process.

A service describes itself as a :class:`ServiceApp`: the gRPC services it registers, how to open and close its
resources, and whether its own dependencies are ready. :class:`ServiceRunner` does the rest, identically for the
three services: binds the address (port 0 allowed) with the message-size limit, installs the interceptors,
serves ``grpc.health.v1`` (NOT_SERVING until the app reports ready, re-checked every ``health_interval_s``,
NOT_SERVING again during shutdown; the name ``liveness`` is SERVING while the process runs) and server
reflection (names from the generated descriptors), exposes Prometheus metrics, and shuts down gracefully on
SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from facerec.runtime.interceptors import server_interceptors
from facerec.runtime.metrics import MetricsEndpoint, start_metrics_endpoint
from facerec.runtime.settings import ServiceSettings

log = logging.getLogger("facerec.server")

# Health name that answers SERVING while the process runs, whatever its dependencies: for liveness probes,
# so an outage of Triton or Qdrant makes pods unready (no traffic) without restarting them.
LIVENESS = "liveness"

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass(frozen=True)
class ServiceBinding:
    """One gRPC service to register: its descriptor, the servicer, and the generated ``add_..._to_server``."""

    descriptor: ServiceDescriptor
    servicer: Any
    add_to_server: Callable[[Any, grpc.aio.Server], None]

    @property
    def full_name(self) -> str:
        return str(self.descriptor.full_name)


class ServiceApp(Protocol):
    """What a service provides to the runner."""

    name: str

    def bindings(self) -> Sequence[ServiceBinding]:
        """The gRPC services this process serves."""
        ...

    async def start(self) -> None:
        """Open resources (clients, stores). Called before the server accepts calls."""
        ...

    async def ready(self) -> bool:
        """Whether the service's own dependencies are ready (health is SERVING only while this is true)."""
        ...

    async def close(self) -> None:
        """Release resources. Called after the server stopped."""
        ...


def grpc_options(settings: ServiceSettings) -> list[tuple[str, Any]]:
    """Channel arguments of the server: message-size limits suited to photos."""
    return [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.so_reuseport", 0),
    ]


def create_server(
    settings: ServiceSettings, service_name: str, bindings: Sequence[ServiceBinding]
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """Build (not start) an aio server for ``bindings`` plus health and reflection; returns the bound port.

    Health starts NOT_SERVING for the overall server ("") and for every bound service.
    """
    interceptors = server_interceptors(service_name, settings.tracing)
    server = grpc.aio.server(interceptors=interceptors, options=grpc_options(settings))
    for binding in bindings:
        binding.add_to_server(binding.servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [b.full_name for b in bindings]
    reflection.enable_server_reflection(
        [*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME], server
    )
    port = server.add_insecure_port(f"{settings.host}:{settings.port}")
    if port == 0:
        raise OSError(f"cannot bind {settings.host}:{settings.port}")
    return server, port, health_servicer


class ServiceRunner:
    """Runs one :class:`ServiceApp`: start, keep health in step with readiness, stop gracefully."""

    def __init__(self, app: ServiceApp, settings: ServiceSettings) -> None:
        self.app = app
        self.settings = settings
        self.port = 0
        self.metrics: MetricsEndpoint | None = None
        self._server: grpc.aio.Server | None = None
        self._health: health.aio.HealthServicer | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._service_names: list[str] = []
        self._serving: bool | None = None
        self._stopping = False

    @property
    def address(self) -> str:
        host = "127.0.0.1" if self.settings.host in ("0.0.0.0", "::", "[::]") else self.settings.host
        return f"{host}:{self.port}"

    async def start(self) -> int:
        """Open the app's resources, start serving (health NOT_SERVING until ready); returns the port."""
        bindings = self.app.bindings()
        self._service_names = ["", *(b.full_name for b in bindings)]
        self._server, self.port, self._health = create_server(self.settings, self.app.name, bindings)
        await self._set_health(False)
        await self.app.start()
        await self._server.start()
        await self._health.set(LIVENESS, SERVING)
        if self.settings.metrics_port:
            self.metrics = start_metrics_endpoint(self.settings.metrics_host, self.settings.metrics_port)
        self._watcher = asyncio.create_task(self._watch_readiness(), name=f"{self.app.name}-health")
        log.info("%s listening on %s", self.app.name, self.address, extra={"port": self.port})
        return self.port

    async def _set_health(self, serving: bool) -> None:
        if self._health is None or serving == self._serving:
            return
        self._serving = serving
        for name in self._service_names:
            await self._health.set(name, SERVING if serving else NOT_SERVING)
        log.info("health %s", "SERVING" if serving else "NOT_SERVING")

    async def _watch_readiness(self) -> None:
        while not self._stopping:
            try:
                ready = await self.app.ready()
            except Exception:
                log.exception("readiness check failed")
                ready = False
            if not self._stopping:
                await self._set_health(ready)
            await asyncio.sleep(self.settings.health_interval_s)

    async def stop(self, grace: float | None = None) -> None:
        """NOT_SERVING at once, let in-flight calls finish within the grace period, then release resources."""
        if self._stopping:
            return
        self._stopping = True
        if self._health is not None:
            self._serving = None
            for name in [*self._service_names, LIVENESS]:
                await self._health.set(name, NOT_SERVING)
            await self._health.enter_graceful_shutdown()
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        if self._server is not None:
            await self._server.stop(self.settings.grace_period_s if grace is None else grace)
        if self.metrics is not None:
            self.metrics.close()
        await self.app.close()
        log.info("%s stopped", self.app.name)

    async def wait_for_termination(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()


async def serve_until_signalled(runner: ServiceRunner) -> None:
    """Start ``runner`` and serve until SIGTERM or SIGINT, then stop gracefully."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await runner.start()
    await stop.wait()
    log.info("signal received: shutting down (grace %.1fs)", runner.settings.grace_period_s)
    await runner.stop()
