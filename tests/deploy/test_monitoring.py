"""Metrics that arrive: the PodMonitors scrape real pods on real ports, the NetworkPolicy admits the scraper's
namespace (one parameter), and prometheus-adapter's rule serves the metric Triton's autoscaler asks for, from
series Triton exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from .support import (
    FACEREC_SERVICES,
    K8S,
    Manifest,
    load_yaml,
    main_container,
    named,
    of_kind,
    pods_of,
    read_env_file,
    settings,
)

MONITORING = K8S / "components" / "monitoring"
PODMONITOR_SCHEMA = json.loads((Path(__file__).parent / "schemas" / "podmonitor-v1.json").read_text())
PARAMETERS = read_env_file(K8S / "base" / "parameters.env")
SCRAPED = (*FACEREC_SERVICES, "triton")
# Triton's per-model inference counters (docs/user_guide/metrics.md of triton-inference-server/server; on by
# default, --metrics-config counter_latencies), the only series a rule of ours may read.
TRITON_COUNTERS = {
    "nv_inference_request_success",
    "nv_inference_request_failure",
    "nv_inference_count",
    "nv_inference_exec_count",
    "nv_inference_request_duration_us",
    "nv_inference_queue_duration_us",
    "nv_inference_compute_input_duration_us",
    "nv_inference_compute_infer_duration_us",
    "nv_inference_compute_output_duration_us",
}
# The labels the Prometheus Operator gives every series a PodMonitor scrapes (besides the target's own).
OPERATOR_LABELS = {"namespace", "pod", "container", "endpoint", "job", "instance"}


def podmonitors(manifests: list[Manifest]) -> list[Manifest]:
    return of_kind(manifests, "PodMonitor")


def test_every_podmonitor_validates_against_the_crd_subset(cpu_with_components):
    monitors = podmonitors(cpu_with_components)
    assert monitors
    for monitor in monitors:
        jsonschema.Draft202012Validator(PODMONITOR_SCHEMA).validate(monitor)


def test_the_podmonitor_schema_rejects_an_unknown_field(cpu_with_components):
    monitor = dict(podmonitors(cpu_with_components)[0])
    broken = {**monitor, "spec": {**monitor["spec"], "podMetricEndpoints": monitor["spec"]["podMetricsEndpoints"]}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(PODMONITOR_SCHEMA).validate(broken)


def metrics_port(manifests: list[Manifest], workload: str) -> int:
    """The port the workload's server exposes /metrics on, from its own settings or arguments."""
    if workload == "triton":
        args = main_container(named(manifests, "Deployment", "triton"))["args"]
        assert "--allow-metrics=true" in args
        (port,) = [int(arg.split("=", 1)[1]) for arg in args if arg.startswith("--metrics-port=")]
        return port
    return int(settings(manifests, workload)[f"FACEREC_{workload.upper()}_METRICS_PORT"])


@pytest.mark.parametrize("workload", SCRAPED)
def test_each_workload_is_scraped_by_a_podmonitor_that_selects_its_pods_and_names_their_metrics_port(
    cpu_with_components, workload
):
    deployment = named(cpu_with_components, "Deployment", workload)
    monitors = [
        monitor
        for monitor in podmonitors(cpu_with_components)
        if deployment in pods_of(cpu_with_components, monitor["spec"]["selector"]["matchLabels"])
    ]
    assert len(monitors) == 1, f"{len(monitors)} PodMonitors select the {workload} pods"
    (monitor,) = monitors
    assert pods_of(cpu_with_components, monitor["spec"]["selector"]["matchLabels"]) == [deployment]
    assert monitor["metadata"]["namespace"] == deployment["metadata"]["namespace"]  # no namespaceSelector needed
    ports = {port["name"]: port["containerPort"] for port in main_container(deployment)["ports"]}
    for endpoint in monitor["spec"]["podMetricsEndpoints"]:
        assert endpoint["port"] in ports, f"{workload}: no container port named {endpoint['port']}"
        assert ports[endpoint["port"]] == metrics_port(cpu_with_components, workload)
        assert endpoint.get("path", "/metrics") == "/metrics"


def test_the_monitoring_namespace_is_one_parameter_the_network_policy_admits_to_every_scraped_port(rendering):
    _, manifests = rendering
    namespace = PARAMETERS["MONITORING_NAMESPACE"]
    admitted: dict[str, set[int]] = {}
    for policy in of_kind(manifests, "NetworkPolicy"):
        for rule in policy["spec"].get("ingress", []):
            for peer in rule.get("from", []):
                if peer.get("namespaceSelector") == {"matchLabels": {"kubernetes.io/metadata.name": namespace}}:
                    for name in policy["spec"]["podSelector"]["matchExpressions"][0]["values"]:
                        admitted.setdefault(name, set()).update(port["port"] for port in rule["ports"])
    for workload in SCRAPED:
        assert metrics_port(manifests, workload) in admitted.get(workload, set()), workload
    # The value lives in parameters.env only: the policy's source carries a placeholder.
    assert "kubernetes.io/metadata.name: monitoring" not in (K8S / "base" / "networkpolicies.yaml").read_text()


def adapter_rule(metric: str) -> dict[str, Any]:
    """The custom rule of prometheus-adapter-values.yaml that serves ``metric``."""
    values = load_yaml(MONITORING / "prometheus-adapter-values.yaml")
    rules = [rule for rule in values["rules"]["custom"] if rule["name"]["as"] == metric]
    assert len(rules) == 1, f"{len(rules)} prometheus-adapter rules serve {metric}"
    rule: dict[str, Any] = rules[0]
    return rule


def triton_autoscaling_metric(manifests: list[Manifest]) -> str:
    (hpa,) = [
        h for h in of_kind(manifests, "HorizontalPodAutoscaler") if h["spec"]["scaleTargetRef"]["name"] == "triton"
    ]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods"
    name: str = metric["pods"]["metric"]["name"]
    return name


def series_name(query: str) -> str:
    """The metric name a seriesQuery selects: ``name{...}``."""
    match = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\}", query.strip())
    assert match, query
    return match.group(1)


def render_metrics_query(rule: dict[str, Any], namespace: str, pods: list[str]) -> str:
    """The PromQL prometheus-adapter sends for an HPA's Pods metric on ``pods`` of ``namespace``: its Go template
    with the series, the label matchers of the requested objects and the grouping by pod."""
    pod_label = next(label for label, target in rule["resources"]["overrides"].items() if target["resource"] == "pod")
    ns_label = next(
        label for label, target in rule["resources"]["overrides"].items() if target["resource"] == "namespace"
    )
    values = {
        "Series": series_name(rule["seriesQuery"]),
        "LabelMatchers": f'{ns_label}="{namespace}",{pod_label}=~"{"|".join(pods)}"',
        "GroupBy": pod_label,
    }
    rendered = re.sub(r"<<\s*\.(\w+)\s*>>", lambda match: values[match.group(1)], rule["metricsQuery"])
    assert "<<" not in rendered and ">>" not in rendered, rendered
    return rendered


def test_the_adapter_rule_serves_the_metric_tritons_autoscaler_asks_for_from_series_triton_exports(overlay):
    _, manifests = overlay
    metric = triton_autoscaling_metric(manifests)
    rule = adapter_rule(metric)
    series = series_name(rule["seriesQuery"])
    assert series in TRITON_COUNTERS
    assert re.fullmatch(rule["name"]["matches"], series), "the rule's name.matches must match its series"
    # Every label the rule maps to an object is one the scrape attaches.
    assert set(rule["resources"]["overrides"]) <= OPERATOR_LABELS
    assert {target["resource"] for target in rule["resources"]["overrides"].values()} == {"namespace", "pod"}
    triton = named(manifests, "Deployment", "triton")
    query = render_metrics_query(rule, triton["metadata"]["namespace"], ["triton-0", "triton-1"])
    names = set(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{", query))
    assert names and names <= TRITON_COUNTERS, f"the query reads {sorted(names - TRITON_COUNTERS)}"
    assert query.count("(") == query.count(")") and query.count("{") == query.count("}")
    assert f'namespace="{triton["metadata"]["namespace"]}"' in query and "by (pod)" in query


def test_the_adapter_rate_window_holds_four_triton_scrapes(cpu_with_components):
    rule = adapter_rule(triton_autoscaling_metric(cpu_with_components))
    windows = {
        int(seconds) * {"s": 1, "m": 60}[unit] for seconds, unit in re.findall(r"\[(\d+)([sm])\]", rule["metricsQuery"])
    }
    (monitor,) = [m for m in podmonitors(cpu_with_components) if m["metadata"]["name"] == "triton"]
    interval = monitor["spec"]["podMetricsEndpoints"][0]["interval"]
    assert interval.endswith("s")
    assert windows and min(windows) >= 4 * int(interval[:-1]), "rate() needs several samples per window"


def test_the_adapter_asks_the_prometheus_of_the_monitoring_namespace():
    values = load_yaml(MONITORING / "prometheus-adapter-values.yaml")
    host = values["prometheus"]["url"].split("://", 1)[1].split("/")[0]
    service, namespace, *_ = host.split(".")
    assert namespace == PARAMETERS["MONITORING_NAMESPACE"], service


def test_the_monitoring_component_is_optional(cpu_manifests):
    # The plain overlays apply on a cluster without the Prometheus Operator's CRDs.
    assert not [m for m in cpu_manifests if m["apiVersion"].startswith("monitoring.coreos.com/")]
    assert load_yaml(MONITORING / "kustomization.yaml")["kind"] == "Component"
