"""The Kubernetes overlays: they render, validate against the Kubernetes schemas, and keep their promises."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from .support import (
    FACEREC_SERVICES,
    K8S,
    Manifest,
    containers,
    load_yaml,
    main_container,
    named,
    of_kind,
    pod_spec,
    read_env_file,
    settings,
)

# The oldest Kubernetes release the manifests are validated for (the preStop sleep action is beta, on by
# default, since 1.30); the schemas of kubernetes-validate for it are checked strictly (unknown fields are errors).
KUBERNETES_VERSION = "1.31"
# Objects of custom resource definitions, which kubernetes-validate does not know: test_monitoring.py
# validates them against their own schemas.
CUSTOM_API_GROUPS = ("monitoring.coreos.com/",)
PARAMETERS = read_env_file(K8S / "base" / "parameters.env")

kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed")


def test_every_rendered_object_validates_against_the_kubernetes_schemas(rendering):
    name, manifests = rendering
    builtin = [m for m in manifests if not m["apiVersion"].startswith(CUSTOM_API_GROUPS)]
    for manifest in builtin:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    assert len(builtin) > 20, f"{name} rendered only {len(builtin)} objects"


def test_the_schema_check_rejects_an_unknown_field(cpu_manifests):
    broken = copy.deepcopy(named(cpu_manifests, "Deployment", "gateway"))
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"grpc": {"port": 50051}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_everything_lands_in_the_facerec_namespace(rendering):
    _, manifests = rendering
    namespaced = [m for m in manifests if m["kind"] != "Namespace"]
    assert {m["metadata"].get("namespace") for m in namespaced} == {"facerec"}


def test_the_gpu_overlay_requests_gpus_for_triton_only(gpu_manifests):
    with_gpus = {
        (workload["metadata"]["name"], container["name"])
        for workload in of_kind(gpu_manifests, "Deployment")
        for container in containers(workload)
        if "nvidia.com/gpu" in str(container.get("resources", {}))
    }
    assert with_gpus == {("triton", "triton")}
    resources = named(gpu_manifests, "Deployment", "triton")["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == resources["requests"]["nvidia.com/gpu"] == "1"


def test_the_cpu_overlay_requests_no_gpu(cpu_manifests):
    assert "nvidia.com/gpu" not in str(of_kind(cpu_manifests, "Deployment"))


def test_the_cpu_overlay_serves_the_derived_cpu_config_and_the_gpu_overlay_the_production_one(
    cpu_manifests, gpu_manifests
):
    def triton_args(manifests: list[Manifest]) -> list[str]:
        args: list[str] = named(manifests, "Deployment", "triton")["spec"]["template"]["spec"]["containers"][0]["args"]
        return args

    assert "--model-config-name=cpu_onnx" in triton_args(cpu_manifests)
    assert not [arg for arg in triton_args(gpu_manifests) if arg.startswith("--model-config-name")]


def test_only_the_gateway_is_exposed_outside_the_cluster(overlay):
    _, manifests = overlay
    exposed = {
        service["metadata"]["name"]
        for service in of_kind(manifests, "Service")
        if service["spec"].get("type", "ClusterIP") in ("LoadBalancer", "NodePort")
        or service["spec"].get("externalIPs")
    }
    ingress_backends = {
        path["backend"]["service"]["name"]
        for ingress in of_kind(manifests, "Ingress")
        for rule in ingress["spec"].get("rules", [])
        for path in rule.get("http", {}).get("paths", [])
    }
    assert exposed == {"gateway"}
    assert ingress_backends <= {"gateway"}


def admits_outside_traffic(rule: dict[str, Any]) -> bool:
    """Whether an ingress rule lets in traffic from outside the cluster (or from any namespace)."""
    peers = rule.get("from")
    if not peers:
        return True
    return any("ipBlock" in peer or peer.get("namespaceSelector") == {} for peer in peers)


def test_network_policies_deny_ingress_by_default(overlay):
    _, manifests = overlay
    default_deny = [
        policy
        for policy in of_kind(manifests, "NetworkPolicy")
        if policy["spec"]["podSelector"] == {} and "Ingress" in policy["spec"]["policyTypes"]
    ]
    assert default_deny, "no NetworkPolicy selects every pod for Ingress"
    assert all(not policy["spec"].get("ingress") for policy in default_deny)


def test_network_policies_admit_outside_traffic_to_the_gateway_only(overlay):
    _, manifests = overlay
    opened_to = [
        policy["spec"]["podSelector"]
        for policy in of_kind(manifests, "NetworkPolicy")
        for rule in policy["spec"].get("ingress", [])
        if admits_outside_traffic(rule)
    ]
    assert opened_to == [{"matchLabels": {"app.kubernetes.io/name": "gateway"}}]


@pytest.mark.parametrize(
    ("target", "callers"),
    [
        ("triton", {"embedder"}),
        ("qdrant", {"registry", "qdrant"}),
        ("embedder", {"gateway"}),
        ("registry", {"gateway"}),
    ],
)
def test_internal_services_admit_only_their_callers_and_monitoring(rendering, target, callers):
    _, manifests = rendering
    admitted: set[str] = set()
    for policy in of_kind(manifests, "NetworkPolicy"):
        selector = policy["spec"]["podSelector"]
        selected = selector.get("matchLabels", {}).get("app.kubernetes.io/name") == target or any(
            expression["key"] == "app.kubernetes.io/name" and target in expression["values"]
            for expression in selector.get("matchExpressions", [])
        )
        if not selected:
            continue
        for rule in policy["spec"].get("ingress", []):
            assert not admits_outside_traffic(rule), f"{policy['metadata']['name']} opens {target} to the world"
            for peer in rule["from"]:
                if "namespaceSelector" in peer:
                    monitoring = PARAMETERS["MONITORING_NAMESPACE"]
                    assert peer["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": monitoring}}
                else:
                    admitted.add(peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"])
    assert admitted == callers


def test_every_container_runs_as_non_root_with_a_read_only_root_filesystem(overlay):
    _, manifests = overlay
    for workload in of_kind(manifests, "Deployment"):
        pod_security = pod_spec(workload).get("securityContext", {})
        assert pod_security.get("seccompProfile", {}).get("type") == "RuntimeDefault"
        for container in containers(workload):
            security = container.get("securityContext", {})
            where = f"{workload['metadata']['name']}/{container['name']}"
            assert security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is True, where
            assert security.get("runAsUser", pod_security.get("runAsUser", 0)) != 0, where
            assert security.get("readOnlyRootFilesystem") is True, where
            assert security.get("allowPrivilegeEscalation") is False, where
            assert security.get("capabilities", {}).get("drop") == ["ALL"], where


def test_every_container_has_cpu_and_memory_requests_and_limits(overlay):
    _, manifests = overlay
    for workload in of_kind(manifests, "Deployment"):
        for container in containers(workload):
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(bound, {})), (
                    f"{workload['metadata']['name']}/{container['name']} lacks {bound}"
                )


@pytest.mark.parametrize(("service", "port"), FACEREC_SERVICES.items())
def test_plaintext_ports_are_probed_through_grpc_health_and_tls_ports_by_tcp(rendering, service, port):
    _, manifests = rendering
    container = main_container(named(manifests, "Deployment", service))
    assert {"name": "grpc", "containerPort": port, "protocol": "TCP"} in container["ports"]
    probes = ("startupProbe", "readinessProbe", "livenessProbe")
    if f"FACEREC_{service.upper()}_TLS_CERT_FILE" in settings(manifests, service):
        # The kubelet's gRPC probes speak plaintext only: on a TLS port they would never succeed.
        for probe in probes:
            assert set(container[probe]) - {"periodSeconds", "timeoutSeconds", "failureThreshold"} == {"tcpSocket"}
            assert container[probe]["tcpSocket"] == {"port": "grpc"}, f"{service} {probe}"
        return
    # Readiness follows the dependencies; startup and liveness only the process (the `liveness` health name).
    assert container["readinessProbe"]["grpc"] == {"port": port}, service
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["grpc"] == {"port": port, "service": "liveness"}, f"{service} {probe}"


def test_the_gateway_serves_tls_and_the_internal_services_plaintext_without_the_mtls_component(overlay):
    _, manifests = overlay
    assert "FACEREC_GATEWAY_TLS_CERT_FILE" in settings(manifests, "gateway")
    for service in ("embedder", "registry"):
        assert not [name for name in settings(manifests, service) if "_TLS_" in name], service


def test_triton_is_probed_on_its_ready_endpoint_with_memory_backed_shared_memory(overlay):
    _, manifests = overlay
    triton = named(manifests, "Deployment", "triton")
    container = triton["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
    volumes = {volume["name"]: volume for volume in pod_spec(triton)["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"
    assert "--model-repository=/models" in container["args"]
    assert "/models" in {mount["mountPath"] for mount in pod_spec(triton)["initContainers"][0]["volumeMounts"]}


def test_each_workload_runs_under_its_own_service_account_without_an_api_token(overlay):
    _, manifests = overlay
    accounts = {account["metadata"]["name"]: account for account in of_kind(manifests, "ServiceAccount")}
    used = [pod_spec(workload)["serviceAccountName"] for workload in of_kind(manifests, "Deployment")]
    assert sorted(used) == sorted(set(used)) == sorted(["gateway", "embedder", "registry", "triton"])
    for name in used:
        assert accounts[name]["automountServiceAccountToken"] is False


def test_gateway_and_embedder_scale_on_cpu_and_triton_on_queue_time(overlay):
    _, manifests = overlay
    autoscalers = {hpa["spec"]["scaleTargetRef"]["name"]: hpa for hpa in of_kind(manifests, "HorizontalPodAutoscaler")}
    assert set(autoscalers) == {"gateway", "embedder", "triton"}
    for name in ("gateway", "embedder"):
        (metric,) = autoscalers[name]["spec"]["metrics"]
        assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
    (queue,) = autoscalers["triton"]["spec"]["metrics"]
    assert queue["type"] == "Pods"
    assert queue["pods"]["metric"]["name"] == "triton_queue_time_per_request_us"
    deployments = {deployment["metadata"]["name"] for deployment in of_kind(manifests, "Deployment")}
    assert set(autoscalers) <= deployments
    for name in autoscalers:
        # An HPA-managed Deployment must not pin a count that each `kubectl apply` would reset.
        assert "replicas" not in named(manifests, "Deployment", name)["spec"]


def test_every_deployment_has_a_disruption_budget(overlay):
    _, manifests = overlay
    budgets = [pdb["spec"]["selector"]["matchLabels"] for pdb in of_kind(manifests, "PodDisruptionBudget")]
    for workload in of_kind(manifests, "Deployment"):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert any(selector.items() <= labels.items() for selector in budgets), workload["metadata"]["name"]


def test_every_service_routes_to_named_ports_of_a_deployment(overlay):
    _, manifests = overlay
    for service in of_kind(manifests, "Service"):
        backends = [
            workload
            for workload in of_kind(manifests, "Deployment")
            if service["spec"]["selector"].items() <= workload["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(backends) == 1, service["metadata"]["name"]
        port_names = {port["name"] for port in pod_spec(backends[0])["containers"][0]["ports"]}
        assert {port["targetPort"] for port in service["spec"]["ports"]} <= port_names


def test_configured_addresses_point_at_the_services(cpu_manifests):
    ports = {
        (service["metadata"]["name"], port["port"])
        for service in of_kind(cpu_manifests, "Service")
        for port in service["spec"]["ports"]
    }
    addresses = [
        settings(cpu_manifests, "gateway")["FACEREC_GATEWAY_EMBEDDER_ADDRESS"],
        settings(cpu_manifests, "gateway")["FACEREC_GATEWAY_REGISTRY_ADDRESS"],
        settings(cpu_manifests, "embedder")["FACEREC_EMBEDDER_TRITON_URL"],
    ]
    for address in addresses:
        host, port = address.removeprefix("dns:///").rsplit(":", 1)
        assert (host, int(port)) in ports, address


@pytest.mark.parametrize(("service", "port"), FACEREC_SERVICES.items())
def test_each_service_listens_where_its_probes_and_service_look(cpu_manifests, service, port):
    environment = settings(cpu_manifests, service)
    prefix = f"FACEREC_{service.upper()}"
    assert environment[f"{prefix}_PORT"] == str(port)
    metrics_port = int(environment[f"{prefix}_METRICS_PORT"])
    container = named(cpu_manifests, "Deployment", service)["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "metrics", "containerPort": metrics_port, "protocol": "TCP"} in container["ports"]


def test_the_gateway_reads_its_api_keys_from_a_mounted_secret(cpu_manifests):
    gateway = named(cpu_manifests, "Deployment", "gateway")
    keys_file = settings(cpu_manifests, "gateway")["FACEREC_GATEWAY_API_KEYS_FILE"]
    volumes = {volume["name"]: volume for volume in pod_spec(gateway)["volumes"]}
    (mount,) = [
        mount
        for mount in gateway["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
        if keys_file.startswith(mount["mountPath"] + "/")
    ]
    assert volumes[mount["name"]]["secret"]["secretName"] == "gateway-api-keys"
    assert mount["readOnly"] is True


def test_the_registry_runs_in_server_mode_against_the_qdrant_cluster(cpu_manifests):
    environment = settings(cpu_manifests, "registry")
    values = load_yaml(K8S / "qdrant" / "values.yaml")
    assert environment["FACEREC_REGISTRY_QDRANT_URL"] == "http://qdrant:6333"  # REST URL; the client talks gRPC on 6334
    assert "FACEREC_REGISTRY_DATA_DIR" not in environment
    shards = int(environment["FACEREC_REGISTRY_QDRANT_SHARD_NUMBER"])
    replication = int(environment["FACEREC_REGISTRY_QDRANT_REPLICATION_FACTOR"])
    assert shards % values["replicaCount"] == 0
    assert replication == 2 <= values["replicaCount"]
    registry = named(cpu_manifests, "Deployment", "registry")["spec"]["template"]["spec"]["containers"][0]
    (api_key,) = [env for env in registry["env"] if env["name"] == "FACEREC_REGISTRY_QDRANT_API_KEY"]
    (qdrant_key,) = [env for env in values["env"] if env["name"] == "QDRANT__SERVICE__API_KEY"]
    assert (
        api_key["valueFrom"]
        == qdrant_key["valueFrom"]
        == {"secretKeyRef": {"name": "qdrant-api-key", "key": "api-key"}}
    )
