"""Drains without outages: preStop delays and grace periods that add up, disruption budgets that fit the replicas.

On a rollout or a node drain, Kubernetes removes the pod from its Service and sends SIGTERM at the same time;
the preStop delay runs first, so that callers and load balancers stop sending before the process stops
accepting. The kubelet kills the pod ``terminationGracePeriodSeconds`` after the start of the preStop hook:
that must cover the delay, the server's own drain and a margin.
"""

from __future__ import annotations

from typing import Any

import pytest

from .support import (
    FACEREC_SERVICES,
    K8S,
    Manifest,
    load_yaml,
    main_container,
    min_replicas,
    named,
    of_kind,
    pod_spec,
    pods_of,
    settings,
)

# Slack between the end of the server's drain and the kubelet's SIGKILL (process exit, log flush).
MARGIN_S = 5
WORKLOADS = (*FACEREC_SERVICES, "triton")


def prestop_sleep(container: dict[str, Any]) -> int:
    """Seconds of the container's preStop delay (the kubelet's sleep action)."""
    pre_stop = container.get("lifecycle", {}).get("preStop")
    assert pre_stop, f"{container['name']} has no preStop delay"
    assert set(pre_stop) == {"sleep"}, f"{container['name']}: preStop {pre_stop}"
    seconds = int(pre_stop["sleep"]["seconds"])
    assert seconds > 0
    return seconds


def drain_s(manifests: list[Manifest], workload: str) -> float:
    """How long the server takes after SIGTERM to stop (its own delay, then its in-flight calls), from its
    settings."""
    if workload == "triton":
        args = main_container(named(manifests, "Deployment", "triton"))["args"]
        (timeout,) = [arg.split("=", 1)[1] for arg in args if arg.startswith("--exit-timeout-secs=")]
        return float(timeout)
    environment = settings(manifests, workload)
    prefix = f"FACEREC_{workload.upper()}"
    # A delay of the service's own (serving while NOT_SERVING) comes on top of its grace period.
    return float(environment[f"{prefix}_SHUTDOWN_DELAY_S"]) + float(environment[f"{prefix}_GRACE_PERIOD_S"])


@pytest.mark.parametrize("workload", WORKLOADS)
def test_every_pod_waits_before_sigterm_and_its_grace_period_covers_the_wait_and_the_drain(rendering, workload):
    _, manifests = rendering
    deployment = named(manifests, "Deployment", workload)
    delay = prestop_sleep(main_container(deployment))
    drain = drain_s(manifests, workload)
    grace = pod_spec(deployment)["terminationGracePeriodSeconds"]
    assert grace >= delay + drain + MARGIN_S, f"{workload}: {grace} s < preStop {delay} + drain {drain} + {MARGIN_S}"


def test_the_gateway_waits_longest_for_its_load_balancer(rendering):
    # The cloud load balancer learns about a leaving gateway from health checks, slower than cluster DNS.
    _, manifests = rendering
    delays = {name: prestop_sleep(main_container(named(manifests, "Deployment", name))) for name in WORKLOADS}
    assert delays["gateway"] == max(delays.values())


def budget_allows(budget: dict[str, Any], replicas: int) -> tuple[int, int]:
    """(pods that may be evicted at once, pods kept) at ``replicas`` healthy pods."""
    if "maxUnavailable" in budget:
        unavailable = budget["maxUnavailable"]
        assert isinstance(unavailable, int), "percentages round in ways that depend on the count"
        return min(unavailable, replicas), replicas - min(unavailable, replicas)
    available = budget["minAvailable"]
    assert isinstance(available, int), "percentages round in ways that depend on the count"
    return max(replicas - available, 0), min(available, replicas)


def test_every_disruption_budget_lets_one_pod_go_and_keeps_one(rendering):
    _, manifests = rendering
    budgets = of_kind(manifests, "PodDisruptionBudget")
    assert budgets
    for budget in budgets:
        name = budget["metadata"]["name"]
        (workload,) = pods_of(manifests, budget["spec"]["selector"]["matchLabels"])
        replicas = min_replicas(manifests, workload)
        evictable, kept = budget_allows(budget["spec"], replicas)
        # 0 would block every node drain for good; keeping none is an outage.
        assert evictable >= 1, f"{name}: no pod may be evicted at {replicas} replicas"
        assert kept >= 1, f"{name}: all {replicas} pods may be evicted at once"
        # A pod that is not ready serves nothing: counting it could block a drain for as long as it is broken.
        assert budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow", name


def test_triton_runs_at_least_two_pods_and_its_budget_keeps_one(rendering):
    _, manifests = rendering
    triton = named(manifests, "Deployment", "triton")
    assert min_replicas(manifests, triton) >= 2
    (budget,) = [
        b
        for b in of_kind(manifests, "PodDisruptionBudget")
        if pods_of(manifests, b["spec"]["selector"]["matchLabels"]) == [triton]
    ]
    assert budget_allows(budget["spec"], min_replicas(manifests, triton)) == (1, min_replicas(manifests, triton) - 1)


def test_rollouts_never_take_a_pod_away_before_its_replacement_is_ready(rendering):
    _, manifests = rendering
    for deployment in of_kind(manifests, "Deployment"):
        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0, deployment["metadata"]["name"]


def test_qdrants_budget_fits_its_nodes():
    values = load_yaml(K8S / "qdrant" / "values.yaml")
    evictable, kept = budget_allows(values["podDisruptionBudget"], values["replicaCount"])
    assert values["podDisruptionBudget"]["enabled"] is True
    assert evictable == 1 and kept >= 2  # replication factor 2: a shard keeps a copy while a node is away
