"""The values of the official Qdrant Helm chart: a distributed, authenticated, restricted Qdrant."""

from __future__ import annotations

from typing import Any

import pytest

from .support import K8S, load_yaml

VALUES_FILE = K8S / "qdrant" / "values.yaml"

# Top-level keys of the chart's values (its values.yaml / values.schema.json): a typo would be ignored silently.
CHART_KEYS = {
    "replicaCount", "image", "imagePullSecrets", "nameOverride", "fullnameOverride", "args", "env", "service",
    "ingress", "livenessProbe", "readinessProbe", "startupProbe", "additionalLabels", "additionalAnnotations",
    "podAnnotations", "podLabels", "resources", "containerSecurityContext", "podSecurityContext", "lifecycle",
    "updateVolumeFsOwnership", "nodeSelector", "tolerations", "affinity", "topologySpreadConstraints",
    "persistence", "snapshotPersistence", "snapshotRestoration", "config", "sidecarContainers", "metrics",
    "serviceAccount", "priorityClassName", "shareProcessNamespace", "terminationGracePeriodSeconds",
    "podManagementPolicy", "podDisruptionBudget", "apiKey", "readOnlyApiKey", "additionalVolumes",
    "additionalVolumeMounts",
}  # fmt: skip


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    loaded: dict[str, Any] = load_yaml(VALUES_FILE)
    return loaded


def test_the_values_use_only_keys_of_the_chart(values):
    assert set(values) <= CHART_KEYS, sorted(set(values) - CHART_KEYS)


def test_qdrant_runs_three_nodes_in_cluster_mode_one_per_machine(values):
    assert values["replicaCount"] == 3
    assert values["config"]["cluster"]["enabled"] is True
    assert values["config"]["cluster"]["p2p"]["port"] == 6335
    anti_affinity = values["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti_affinity[0]["topologyKey"] == "kubernetes.io/hostname"


def test_new_collections_default_to_two_replicas(values):
    assert values["config"]["storage"]["collection"]["replication_factor"] == 2


def test_the_api_key_comes_from_a_secret_not_from_the_values(values):
    assert "apiKey" not in values
    (api_key,) = [env for env in values["env"] if env["name"] == "QDRANT__SERVICE__API_KEY"]
    assert set(api_key) == {"name", "valueFrom"}
    assert api_key["valueFrom"]["secretKeyRef"] == {"name": "qdrant-api-key", "key": "api-key"}


def test_qdrant_meets_the_restricted_pod_security_profile(values):
    security = values["containerSecurityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] != 0
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert security["seccompProfile"]["type"] == "RuntimeDefault"
    # The chart's volume-ownership init container runs as root.
    assert values["updateVolumeFsOwnership"] is False


def test_qdrant_has_resources_persistent_storage_and_a_disruption_budget(values):
    assert {"cpu", "memory"} <= set(values["resources"]["requests"])
    assert {"cpu", "memory"} <= set(values["resources"]["limits"])
    assert values["persistence"]["size"] and values["snapshotPersistence"]["enabled"] is True
    assert values["podDisruptionBudget"] == {"enabled": True, "maxUnavailable": 1}


def test_qdrant_stays_inside_the_cluster(values):
    assert values["service"]["type"] == "ClusterIP"
    assert values.get("ingress", {}).get("enabled", False) is False
