"""Clean virtual environments with facerec installed as a user installs it, from a local wheelhouse.

The wheelhouse holds a wheel of every third-party requirement of pyproject.toml (the client's dependencies and
the ``server`` extra), built once by ``pip wheel`` with pip's own configuration (its package index and cache)
and kept under ``.cache/wheelhouse/<key>/``, the key following the requirements: later runs install offline
(``--no-index``). Each environment is ``python -m venv --without-pip`` (no system site packages) filled by the
test interpreter's pip through ``pip --python``, so its site-packages holds only what facerec pulls in.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.paths import REPO_ROOT

WHEELHOUSE_ROOT = REPO_ROOT / ".cache" / "wheelhouse"
# What a wheel of the project is built from (pyproject.toml's packages, its readme).
PROJECT_SOURCES = ("pyproject.toml", "README.md", "src", "services")
PIP_TIMEOUT_S = 600


# How pip says that it could not reach the package index at all (as opposed to a requirement that does not resolve).
_OFFLINE_SIGNS = (
    "NewConnectionError",
    "Max retries exceeded",
    "Temporary failure in name resolution",
    "Network is unreachable",
)


class CannotInstall(RuntimeError):
    """This machine cannot build the environments: no package index answers and no wheelhouse is kept."""


@dataclass(frozen=True)
class InstalledEnv:
    """A virtual environment with facerec installed, and what installing it cost."""

    root: Path
    install_s: float

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def python(self) -> Path:
        return self.bin / "python"

    @property
    def site_packages(self) -> Path:
        (path,) = (self.root / "lib").glob("python3*/site-packages")
        return path

    def size_mib(self) -> float:
        """The size of its site-packages (bytes of the files, MiB)."""
        total = sum(path.stat().st_size for path in self.site_packages.rglob("*") if path.is_file())
        return total / 2**20

    def environ(self) -> dict[str, str]:
        """This process's environment as a user's shell in this venv has it: its bin first, nothing of ours."""
        env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
        env["VIRTUAL_ENV"] = str(self.root)
        env["PATH"] = os.pathsep.join([str(self.bin), env.get("PATH", "")])
        return env

    def run(self, args: Sequence[str], cwd: Path, timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run one of its commands (``facerec``, ``python``, ...) in ``cwd``, away from the source tree."""
        command = [str(self.bin / args[0]), *args[1:]]
        return subprocess.run(
            command, cwd=cwd, env=self.environ(), capture_output=True, text=True, timeout=timeout_s, check=False
        )

    def python_code(
        self, code: str, cwd: Path, *args: str, timeout_s: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """Run Python ``code`` with this environment's interpreter (isolated mode: no cwd, no PYTHON* variables)."""
        return self.run(["python", "-I", "-c", code, *args], cwd, timeout_s)


def runtime_requirements() -> list[str]:
    """The client's dependencies and the ``server`` extra, as pyproject.toml pins them."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    return [*project["dependencies"], *project["optional-dependencies"]["server"]]


def _pip(*args: str, timeout_s: float = PIP_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)


def wheelhouse() -> Path:
    """The kept wheelhouse of the current requirements, built first when missing.

    Raises :class:`CannotInstall` when it is missing and no package index answers; a requirement that does not
    resolve fails the test (AssertionError).
    """
    requirements = runtime_requirements()
    tag = f"{sys.implementation.cache_tag}-{sysconfig.get_platform()}-{platform.libc_ver()[1]}"
    key = hashlib.sha256("\n".join([tag, *requirements]).encode()).hexdigest()[:16]
    target = WHEELHOUSE_ROOT / key
    if (target / "complete").is_file():
        return target
    WHEELHOUSE_ROOT.mkdir(parents=True, exist_ok=True)
    building = WHEELHOUSE_ROOT / f".{key}-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    result = _pip("wheel", "--quiet", "--wheel-dir", str(building), *requirements)
    if result.returncode != 0:
        shutil.rmtree(building, ignore_errors=True)
        message = f"pip could not fetch pyproject.toml's requirements into {target}:\n{result.stderr[-2000:]}"
        if any(sign in result.stderr for sign in _OFFLINE_SIGNS):
            raise CannotInstall(message)
        raise AssertionError(message)
    (building / "complete").write_text("\n".join(requirements) + "\n")
    if (target / "complete").is_file():  # another session finished the same wheelhouse first
        shutil.rmtree(building, ignore_errors=True)
    else:
        shutil.rmtree(target, ignore_errors=True)
        building.rename(target)
    for stale in WHEELHOUSE_ROOT.iterdir():  # wheelhouses of earlier requirements are never read again
        if stale.name != key and not stale.name.startswith("."):
            shutil.rmtree(stale, ignore_errors=True)
    return target


def build_project_wheel(out_dir: Path) -> Path:
    """A wheel of the working tree's facerec, built from a copy of its sources (no stale build/ folder)."""
    source = out_dir / "source"
    for name in PROJECT_SOURCES:
        origin = REPO_ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            source.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, source / name)
    result = _pip("wheel", "--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir", str(out_dir), str(source))
    if result.returncode != 0:
        raise AssertionError(f"the project's wheel does not build:\n{result.stderr[-3000:]}")
    (wheel,) = out_dir.glob("facerec-*.whl")
    return wheel


def create_env(root: Path, requirement: str, wheels: Path) -> InstalledEnv:
    """A new venv at ``root`` with ``requirement`` (the project's wheel, with or without extras) installed
    offline from ``wheels``; byte-code compiling is left to first use, as in a container build it is not."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    result = _pip(
        *["--python", str(root / "bin" / "python"), "install", "--quiet", "--no-compile"],
        *["--no-index", "--find-links", str(wheels), requirement],
    )
    if result.returncode != 0:
        raise AssertionError(f"pip install {requirement} failed:\n{result.stderr[-3000:]}")
    return InstalledEnv(root, time.perf_counter() - started)
