"""Prometheus metrics of the gRPC layer, shared by every service (labelled by service), and their endpoint."""

from __future__ import annotations

from dataclasses import dataclass
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import Counter, Gauge, Histogram, start_http_server

REQUESTS = Counter(
    "facerec_grpc_requests_total",
    "gRPC calls handled, by service, method and status code.",
    ["service", "method", "code"],
)
ERRORS = Counter(
    "facerec_grpc_errors_total",
    "gRPC calls that ended with a status other than OK, by service, method and status code.",
    ["service", "method", "code"],
)
LATENCY = Histogram(
    "facerec_grpc_request_duration_seconds",
    "Time from receiving a gRPC call to its last response, by service and method.",
    ["service", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)

IN_FLIGHT = Gauge(
    "facerec_grpc_in_flight_calls",
    "gRPC calls being served right now (received, not yet answered), by service and method.",
    ["service", "method"],
)

DEPENDENCY_UP = Gauge(
    "facerec_dependency_up",
    "1 while a service this one calls can serve (its health check answers SERVING), else 0; by service and "
    "dependency. Also in the service's health under the dependency's own gRPC service name.",
    ["service", "dependency"],
)


def observe_call(service: str, method: str, code: str, seconds: float) -> None:
    """Record one finished call."""
    REQUESTS.labels(service, method, code).inc()
    LATENCY.labels(service, method).observe(seconds)
    if code != "OK":
        ERRORS.labels(service, method, code).inc()


@dataclass
class MetricsEndpoint:
    """A running /metrics HTTP server."""

    server: WSGIServer
    thread: Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_metrics_endpoint(host: str, port: int) -> MetricsEndpoint:
    """Serve the default registry on ``host:port`` (port 0 picks a free port) in a daemon thread."""
    server, thread = start_http_server(port, addr=host)
    return MetricsEndpoint(server, thread)
