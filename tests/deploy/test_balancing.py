"""Balancing that follows the replicas: headless Services, dns:/// targets and a maximum connection age.

Through a ClusterIP Service each caller's single HTTP/2 connection lands on one pod for its whole life. The
callers therefore resolve a headless Service (every ready pod's address) and balance over all of them, and the
servers close connections after a maximum age so that callers pick up replicas added since.
"""

from __future__ import annotations

import pytest

from .support import FACEREC_SERVICES, Manifest, main_container, named, of_kind, pods_of, settings

# Who calls whom, through which setting: (caller, setting, callee, the callee's container port name).
HOPS = [
    ("gateway", "FACEREC_GATEWAY_EMBEDDER_ADDRESS", "embedder", "grpc"),
    ("gateway", "FACEREC_GATEWAY_REGISTRY_ADDRESS", "registry", "grpc"),
    ("embedder", "FACEREC_EMBEDDER_TRITON_URL", "triton", "grpc"),
]
# The internal services' callers must find a new replica within this many seconds (age + grace).
INTERNAL_REBALANCE_S = 60


def dns_target(target: str) -> tuple[str, int]:
    """(host, port) of a gRPC ``dns:///host:port`` target; fails on any other form."""
    assert target.startswith("dns:///"), f"{target!r} is not a dns:/// target (pick-first to one address)"
    host, _, port = target.removeprefix("dns:///").rpartition(":")
    assert host and port.isdigit(), target
    return host, int(port)


def service_named(manifests: list[Manifest], host: str, namespace: str) -> Manifest:
    """The Service a DNS name of the cluster resolves to: ``name``, ``name.namespace``,
    ``name.namespace.svc`` or ``name.namespace.svc.cluster.local``, from a pod in ``namespace``."""
    name, *rest = host.split(".")
    if rest:
        assert rest[0] == namespace and rest[1:] in ([], ["svc"], ["svc", "cluster", "local"]), host
    return named(manifests, "Service", name)


@pytest.mark.parametrize(("caller", "setting", "callee", "port_name"), HOPS)
def test_each_caller_balances_over_the_headless_service_of_its_callee(rendering, caller, setting, callee, port_name):
    _, manifests = rendering
    host, port = dns_target(settings(manifests, caller)[setting])
    caller_namespace = named(manifests, "Deployment", caller)["metadata"]["namespace"]
    service = service_named(manifests, host, caller_namespace)
    assert service["spec"].get("clusterIP") == "None", f"{service['metadata']['name']} is not headless"
    # A headless Service maps no ports: DNS gives pod addresses, so the target's port is the pod's own.
    (backend,) = pods_of(manifests, service["spec"]["selector"])
    assert backend["metadata"]["name"] == callee
    ports = {p["name"]: p["containerPort"] for p in main_container(backend)["ports"]}
    assert ports[port_name] == port, f"{setting}: port {port} vs the {callee} container's {port_name} port"
    (service_port,) = [p for p in service["spec"]["ports"] if p["targetPort"] == port_name]
    assert service_port["port"] == port


def test_every_service_but_the_gateways_load_balancer_is_headless(rendering):
    _, manifests = rendering
    with_virtual_ip = {
        service["metadata"]["name"]
        for service in of_kind(manifests, "Service")
        if service["spec"].get("clusterIP") != "None"
    }
    # The gateway's stays an L4 LoadBalancer: clients outside the cluster reach it through one address.
    assert with_virtual_ip == {"gateway"}
    assert named(manifests, "Service", "gateway")["spec"]["type"] == "LoadBalancer"


def test_headless_services_publish_only_ready_pods(rendering):
    _, manifests = rendering
    for service in of_kind(manifests, "Service"):
        # Not-ready pods in DNS would be balanced over as well.
        assert not service["spec"].get("publishNotReadyAddresses"), service["metadata"]["name"]


@pytest.mark.parametrize("service", FACEREC_SERVICES)
def test_every_facerec_server_closes_connections_after_a_maximum_age(rendering, service):
    _, manifests = rendering
    environment = settings(manifests, service)
    prefix = f"FACEREC_{service.upper()}"
    age = float(environment[f"{prefix}_MAX_CONNECTION_AGE_S"])
    assert age > 0, f"{service}: 0 is no limit"
    if service == "gateway":
        # Unset grace: the clients' streams on an old connection run on until they end.
        assert f"{prefix}_MAX_CONNECTION_AGE_GRACE_S" not in environment
        return
    grace = float(environment[f"{prefix}_MAX_CONNECTION_AGE_GRACE_S"])
    # The gateway's channels find an embedder or registry replica the autoscaler added within this.
    assert grace > 0 and age + grace <= INTERNAL_REBALANCE_S, service


def test_triton_closes_connections_after_a_maximum_age_too(rendering):
    # Triton's own options (milliseconds): without them an embedder's connection to a Triton pod lives forever
    # and the pods the autoscaler adds would wait for some connection to fail before receiving calls.
    _, manifests = rendering
    args = main_container(named(manifests, "Deployment", "triton"))["args"]
    options = dict(arg.removeprefix("--").split("=", 1) for arg in args if arg.startswith("--grpc-max-connection-age"))
    age_s, grace_s = (
        int(options["grpc-max-connection-age"]) / 1000,
        int(options["grpc-max-connection-age-grace"]) / 1000,
    )
    assert age_s > 0 and grace_s > 0
    assert age_s + grace_s <= INTERNAL_REBALANCE_S


def test_the_embedder_dials_more_than_one_triton(rendering):
    # Balancing needs somewhere to go: Triton never runs fewer than 2 pods (see also test_drains.py).
    _, manifests = rendering
    (hpa,) = [
        h for h in of_kind(manifests, "HorizontalPodAutoscaler") if h["spec"]["scaleTargetRef"]["name"] == "triton"
    ]
    assert hpa["spec"]["minReplicas"] >= 2
