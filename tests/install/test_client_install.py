"""`pip install facerec` (no extra): the SDK and the CLI's client commands, and nothing of the server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from facerec.cli import exit_codes
from tests.fixtures.stack import ALPHA_KEY, Stack
from tests.install.environments import InstalledEnv

pytestmark = pytest.mark.slow

# Import names of the server extra's heaviest packages: none may reach a client install.
SERVER_ONLY_MODULES = (
    "dlib",
    "onnxruntime",
    "onnx",
    "tritonclient",
    "pytriton",
    "qdrant_edge",
    "qdrant_client",
    "scipy",
    "yuface",
    "pydantic_settings",
    "opentelemetry",
)

# Every module of the SDK and of the client CLI imports with the client's dependencies alone.
IMPORT_CLIENT_MODULES = """
import importlib, pkgutil
import facerec.cli, facerec.sdk
names = ["facerec.api_keys", "facerec.photo_formats"]
for package in (facerec.sdk, facerec.cli):
    names += [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
for name in names:
    importlib.import_module(name)
print(len(names))
"""

# What the CLI loads to start: none of it may be server code (the services' packages, the service runtime).
SERVER_CODE_LOADED = """
import sys
import facerec.cli.main
server = ("facerec_gateway", "facerec_embedder", "facerec_registry", "facerec.runtime")
print(" ".join(sorted(m for m in sys.modules if m.startswith(server))))
"""


# One real session of the SDK against the stack: the caller's collections listed, a photo's face found from a
# numpy array (which the SDK encodes with Pillow).
SDK_SESSION = """
import json, sys
import numpy as np
from PIL import Image
from facerec.sdk import Client
address, key, photo = sys.argv[1:]
with Client(address, key, timeout=60) as client:
    names = [c.name for c in client.list_collections()]
    pixels = np.asarray(Image.open(photo).convert("RGB"))
    faces = client.detect(pixels).faces
print(json.dumps({"collections": names, "faces": len(faces)}))
"""


def test_the_cli_starts_and_documents_its_commands(client_env: InstalledEnv, tmp_path: Path) -> None:
    result = client_env.run(["facerec", "--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    for command in ("identify", "enroll", "import", "collections", "health", "up"):
        assert command in result.stdout


def test_every_module_of_the_sdk_and_the_cli_imports(client_env: InstalledEnv, tmp_path: Path) -> None:
    result = client_env.python_code(IMPORT_CLIENT_MODULES, tmp_path)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 10


def test_the_cli_loads_no_server_code(client_env: InstalledEnv, tmp_path: Path) -> None:
    result = client_env.python_code(SERVER_CODE_LOADED, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == []


def test_no_server_only_package_is_installed(client_env: InstalledEnv, tmp_path: Path) -> None:
    code = f"import importlib.util; print(' '.join(n for n in {SERVER_ONLY_MODULES!r} if importlib.util.find_spec(n)))"
    result = client_env.python_code(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == []


def test_facerec_up_says_to_install_the_server_extra(client_env: InstalledEnv, tmp_path: Path) -> None:
    result = client_env.run(["facerec", "up", "--data-dir", str(tmp_path / "data")], tmp_path)
    assert result.returncode == exit_codes.USAGE, result.stderr
    assert "pip install 'facerec[server]'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists(), "nothing is started or written"


async def test_the_sdk_and_the_cli_work_against_a_running_stack(
    client_env: InstalledEnv, stack: Stack, samples_dir: Path, tmp_path: Path
) -> None:
    address = stack.gateway.address
    # In threads: the stack serves on this test's event loop.
    session = await asyncio.to_thread(
        client_env.python_code, SDK_SESSION, tmp_path, address, ALPHA_KEY, str(samples_dir / "obama.jpg")
    )
    assert session.returncode == 0, session.stderr
    outcome = json.loads(session.stdout)
    assert outcome["faces"] == 1
    cli = ["facerec", "--gateway", address, "--api-key", ALPHA_KEY]
    listed = await asyncio.to_thread(client_env.run, [*cli, "collections", "list", "--json"], tmp_path)
    assert listed.returncode == exit_codes.OK, listed.stderr
    assert sorted(c["name"] for c in json.loads(listed.stdout)["collections"]) == sorted(outcome["collections"])
    health = await asyncio.to_thread(client_env.run, [*cli, "health"], tmp_path)
    assert health.returncode == exit_codes.OK, health.stderr
