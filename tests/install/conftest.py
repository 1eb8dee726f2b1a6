"""The two installs of facerec, each in its own clean virtual environment, built once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.install.environments import CannotInstall, InstalledEnv, build_project_wheel, create_env, wheelhouse


@pytest.fixture(scope="session")
def wheels() -> Path:
    """The local wheelhouse of pyproject.toml's runtime requirements (kept between runs)."""
    try:
        return wheelhouse()
    except CannotInstall as offline:
        pytest.skip(f"no package index answers and no wheelhouse is kept yet, so nothing can be installed: {offline}")


@pytest.fixture(scope="session")
def project_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel of the working tree's facerec."""
    return build_project_wheel(tmp_path_factory.mktemp("project-wheel"))


@pytest.fixture(scope="session")
def client_env(tmp_path_factory: pytest.TempPathFactory, wheels: Path, project_wheel: Path) -> InstalledEnv:
    """`pip install facerec`: the SDK and the CLI's client commands."""
    return create_env(tmp_path_factory.mktemp("install") / "client", str(project_wheel), wheels)


@pytest.fixture(scope="session")
def server_env(tmp_path_factory: pytest.TempPathFactory, wheels: Path, project_wheel: Path) -> InstalledEnv:
    """`pip install 'facerec[server]'`: the services and `facerec up`, runtime dependencies only."""
    return create_env(tmp_path_factory.mktemp("install") / "server", f"{project_wheel}[server]", wheels)
