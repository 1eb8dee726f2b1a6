"""The aio server factory and the lifecycle of a facerec service process.

A service describes itself as a :class:`ServiceApp`: the gRPC services it registers, how to open and close its
resources, and whether its own dependencies are ready. :class:`ServiceRunner` does the rest, identically for the
three services: binds the address (port 0 allowed) with the message-size limit, installs the interceptors,
serves ``grpc.health.v1`` (NOT_SERVING until the app reports ready, re-checked every ``health_interval_s``,
NOT_SERVING again during shutdown; the name ``liveness`` is SERVING while the process runs) and server
reflection (names from the generated descriptors), exposes Prometheus metrics, and shuts down gracefully on
SIGTERM/SIGINT.

Scaling out: every connection ends after ``max_connection_age_s`` (GOAWAY; its calls get
``max_connection_age_grace_s`` to finish), so that clients balancing over a ``dns:///`` name resolve it again and
reach replicas added since. An app that calls other services (:class:`WatchesDependencies`) has each one's state
checked with its own readiness and shown under the dependency's own service name in this server's health (and in
``facerec_dependency_up``), apart from the app's own readiness: a gateway whose registry is down still serves
Detect, and says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from facerec.runtime import tls
from facerec.runtime.interceptors import server_interceptors
from facerec.runtime.metrics import DEPENDENCY_UP, MetricsEndpoint, start_metrics_endpoint
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


@dataclass(frozen=True)
class Dependency:
    """Another service this one calls: ``label`` names it in metrics and logs (``embedder``), ``service`` is its
    own gRPC service name, under which its state shows in this server's health, and ``serving`` says whether it
    can serve now (a failure counts as no)."""

    label: str
    service: str
    serving: Callable[[], Awaitable[bool]]


@runtime_checkable
class WatchesDependencies(Protocol):
    """A :class:`ServiceApp` that calls other services and reports each one's state apart from its own."""

    def dependencies(self) -> Sequence[Dependency]:
        """The services it calls, each checked every ``health_interval_s``."""
        ...


def grpc_options(settings: ServiceSettings) -> list[tuple[str, Any]]:
    """Channel arguments of the server: message-size limits suited to photos, and the connections' age."""
    options: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.so_reuseport", 0),
    ]
    if settings.max_connection_age_s > 0:
        options.append(("grpc.max_connection_age_ms", _milliseconds(settings.max_connection_age_s)))
        if settings.max_connection_age_grace_s is not None:  # gRPC's default grace: unlimited
            options.append(("grpc.max_connection_age_grace_ms", _milliseconds(settings.max_connection_age_grace_s)))
    return options


def _milliseconds(seconds: float) -> int:
    """A duration as gRPC's integer milliseconds, capped at its largest (INT_MAX, which it reads as unlimited)."""
    return min(round(seconds * 1000), 2**31 - 1)


def create_server(
    settings: ServiceSettings, service_name: str, bindings: Sequence[ServiceBinding]
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """Build (not start) an aio server for ``bindings`` plus health and reflection; returns the bound port.

    Health starts NOT_SERVING for the overall server ("") and for every bound service. The port speaks TLS when
    the settings name a certificate (``facerec.runtime.tls``), else plaintext.
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
    address, credentials = f"{settings.host}:{settings.port}", tls.server_credentials(settings)
    port = server.add_insecure_port(address) if credentials is None else server.add_secure_port(address, credentials)
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
        self._dependencies: list[Dependency] = []
        self._dependency_up: dict[str, bool] = {}
        self._stopping = False

    @property
    def address(self) -> str:
        host = "127.0.0.1" if self.settings.host in ("0.0.0.0", "::", "[::]") else self.settings.host
        return f"{host}:{self.port}"

    async def start(self) -> int:
        """Open the app's resources, start serving (health NOT_SERVING until ready); returns the port."""
        bindings = self.app.bindings()
        self._service_names = ["", *(b.full_name for b in bindings)]
        if isinstance(self.app, WatchesDependencies):
            self._dependencies = list(self.app.dependencies())
        self._server, self.port, self._health = create_server(self.settings, self.app.name, bindings)
        await self._set_health(False)
        for dependency in self._dependencies:
            await self._set_dependency(dependency, False)
        await self.app.start()
        await self._server.start()
        await self._health.set(LIVENESS, SERVING)
        if self.settings.metrics_port:
            self.metrics = start_metrics_endpoint(self.settings.metrics_host, self.settings.metrics_port)
        self._watcher = asyncio.create_task(self._watch_readiness(), name=f"{self.app.name}-health")
        wire = tls.describe(self.settings)
        log.info("%s listening on %s (%s)", self.app.name, self.address, wire, extra={"port": self.port})
        return self.port

    async def _set_health(self, serving: bool) -> None:
        if self._health is None or serving == self._serving:
            return
        self._serving = serving
        for name in self._service_names:
            await self._health.set(name, SERVING if serving else NOT_SERVING)
        log.info("health %s", "SERVING" if serving else "NOT_SERVING")

    async def _set_dependency(self, dependency: Dependency, up: bool) -> None:
        DEPENDENCY_UP.labels(self.app.name, dependency.label).set(1 if up else 0)
        previous = self._dependency_up.get(dependency.label)
        if self._health is None or previous == up:
            return
        self._dependency_up[dependency.label] = up
        await self._health.set(dependency.service, SERVING if up else NOT_SERVING)
        if previous is not None:  # a change, not the NOT_SERVING it starts with
            log.log(
                logging.INFO if up else logging.WARNING,
                "dependency %s %s",
                dependency.label,
                "SERVING" if up else "NOT_SERVING",
                extra={"dependency": dependency.label},
            )

    async def _app_ready(self) -> bool:
        try:
            return await self.app.ready()
        except Exception:
            log.exception("readiness check failed")
            return False

    @staticmethod
    async def _dependency_serving(dependency: Dependency) -> bool:
        try:
            return await dependency.serving()
        except Exception:  # a check that fails says: not serving (its transitions are logged, not every failure)
            log.debug("check of %s failed", dependency.label, exc_info=True)
            return False

    async def _watch_readiness(self) -> None:
        while not self._stopping:
            ready, *states = await asyncio.gather(
                self._app_ready(), *(self._dependency_serving(d) for d in self._dependencies)
            )
            if not self._stopping:
                await self._set_health(ready)
                for dependency, up in zip(self._dependencies, states, strict=True):
                    await self._set_dependency(dependency, up)
            await asyncio.sleep(self.settings.health_interval_s)

    async def stop(self, grace: float | None = None, *, delay_s: float = 0.0) -> None:
        """NOT_SERVING at once; go on serving for ``delay_s`` (health answers NOT_SERVING meanwhile, so load
        balancers and clients move away); then refuse new calls, let in-flight ones finish within the grace
        period, and release resources."""
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
        if delay_s > 0 and self._server is not None:
            log.info("draining: serving %.1f s more with health NOT_SERVING", delay_s)
            await asyncio.sleep(delay_s)
        if self._server is not None:
            # gRPC refuses new calls from here on (health checks too) and sends every client a GOAWAY.
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
    settings = runner.settings
    log.info(
        "signal received: shutting down (delay %.1fs, grace %.1fs)", settings.shutdown_delay_s, settings.grace_period_s
    )
    await runner.stop(delay_s=settings.shutdown_delay_s)
