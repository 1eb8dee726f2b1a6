"""Every command of the README runs: the two set-up commands are what CI and `make up` run, and the
quickstart works as written against a real `facerec up` stack (separate processes, real Triton)."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from facerec.runtime.net import free_port
from tests.paths import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()
FACEREC = str(Path(sys.executable).parent / "facerec")


def fenced_block(after_heading: str, language: str = "sh") -> list[str]:
    """The command lines of the first ``language`` code block after ``after_heading``."""
    section = README.split(after_heading, 1)[1]
    block = re.search(rf"```{language}\n(.*?)```", section, re.S)
    assert block is not None, f"no ```{language} block after {after_heading!r}"
    return [line.split("#", 1)[0].strip() for line in block.group(1).splitlines() if line.split("#", 1)[0].strip()]


def test_readme_starts_with_the_two_commands_and_ci_runs_the_test_one() -> None:
    first = fenced_block("# facerec")
    assert first == ["make up", "make test"]
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert "make test" in ci.splitlines()[-1]


def test_make_up_sets_up_then_runs_facerec_up_and_make_test_runs_the_checks() -> None:
    up = subprocess.run(
        ["make", "--no-print-directory", "-n", "up"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert up.splitlines() == ["scripts/setup.sh", ".venv/bin/facerec up"]
    test = subprocess.run(
        ["make", "--no-print-directory", "-n", "test"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert test.splitlines() == ["scripts/test.sh"]
    script = (REPO_ROOT / "scripts" / "test.sh").read_text()
    for step in ("scripts/setup.sh", "ruff check", "ruff format --check", "mypy", "gen_protos.py --check", "pytest"):
        assert step in script


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """`facerec up` as a user runs it (on free ports, so it never collides with a stack already running)."""
    data_dir = tmp_path_factory.mktemp("facerec-data")
    process = subprocess.Popen(
        [FACEREC, "up", "--data-dir", str(data_dir), "--port", str(free_port()),
         "--embedder-port", str(free_port()), "--registry-port", str(free_port())],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO_ROOT,
    )  # fmt: skip
    assert process.stdout is not None
    settings: dict[str, str] = {}
    deadline = time.monotonic() + 240
    while len(settings) < 2 and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        key, _, value = line.strip().partition("=")
        if key in ("FACEREC_GATEWAY", "FACEREC_API_KEY"):
            settings[key] = value
    assert len(settings) == 2, f"facerec up printed no settings (exit code {process.poll()})"
    yield settings | {"data_dir": str(data_dir), "pid": str(process.pid)}
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0, "facerec up must stop everything cleanly on SIGTERM"


def run_quickstart_line(line: str, stack: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FACEREC_GATEWAY": stack["FACEREC_GATEWAY"], "FACEREC_API_KEY": stack["FACEREC_API_KEY"]}
    return subprocess.run(shlex.split(line), cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_quickstart_works_as_written(local_stack: dict[str, str], samples_dir: Path) -> None:
    lines = fenced_block("## Quickstart")
    assert lines[0].startswith("export FACEREC_GATEWAY=") and "FACEREC_API_KEY=" in lines[0]
    outputs: dict[str, str] = {}
    for line in lines[1:]:
        result = run_quickstart_line(line, local_stack)
        assert result.returncode == 0, f"{line!r} exited {result.returncode}: {result.stderr}"
        outputs[line] = result.stdout
    identify_obama = outputs[".venv/bin/facerec identify .cache/samples/obama2.jpg"]
    assert "obama" in identify_obama
    biden = json.loads(outputs[".venv/bin/facerec identify .cache/samples/biden.jpg --json"])
    assert len(biden["faces"]) == 1 and biden["faces"][0]["match"] is None
    assert biden["faces"][0]["candidates"][0]["person_id"] == "obama"
    _x, _y, width, height = biden["faces"][0]["box"]
    assert width > 0 and height > 0
    assert "obama" in outputs[".venv/bin/facerec people list"]


def test_facerec_up_runs_every_part_as_its_own_process_and_keeps_keys_hashed(local_stack: dict[str, str]) -> None:
    children = subprocess.run(
        ["ps", "-o", "args=", "--ppid", local_stack["pid"]], capture_output=True, text=True, check=False
    ).stdout
    for part in ("tritonserver", "facerec-registry", "facerec-embedder", "facerec-gateway"):
        assert part in children, f"{part} is not a child process of facerec up"
    keys = (Path(local_stack["data_dir"]) / "api_keys.yaml").read_text()
    assert local_stack["FACEREC_API_KEY"] not in keys and "sha256:" in keys


def test_sdk_example_runs_as_written(local_stack: dict[str, str]) -> None:
    code = "\n".join(fenced_block_raw("## The public API, the SDK and the CLI", "python"))
    env = {
        **os.environ,
        "FACEREC_GATEWAY": local_stack["FACEREC_GATEWAY"],
        "FACEREC_API_KEY": local_stack["FACEREC_API_KEY"],
    }
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['obama']"


@pytest.mark.parametrize("service", ["gateway", "embedder", "registry"])
def test_every_setting_of_every_service_is_documented(service: str) -> None:
    from facerec_embedder.settings import EmbedderSettings
    from facerec_gateway.settings import GatewaySettings
    from facerec_registry.settings import RegistrySettings

    classes: dict[str, type[BaseSettings]] = {
        "gateway": GatewaySettings,
        "embedder": EmbedderSettings,
        "registry": RegistrySettings,
    }
    settings = classes[service]
    for name in settings.model_fields:
        assert f"`{name.upper()}`" in README or f"`{name.upper()}," in README or f", `{name.upper()}`" in README, name


def fenced_block_raw(after_heading: str, language: str) -> list[str]:
    section = README.split(after_heading, 1)[1]
    block = re.search(rf"```{language}\n(.*?)```", section, re.S)
    assert block is not None
    return block.group(1).splitlines()
