"""Fixtures of the deployment checks: the rendered Kubernetes overlays, rendered once per session."""

from __future__ import annotations

import pytest

from .support import OVERLAYS, Manifest, render_overlay


@pytest.fixture(scope="session", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[Manifest]]:
    """Each overlay's name and rendered objects (rendered once per session)."""
    name: str = request.param
    return name, render_overlay(name)


@pytest.fixture(scope="session")
def gpu_manifests() -> list[Manifest]:
    """The objects of the gpu overlay."""
    return render_overlay("gpu")


@pytest.fixture(scope="session")
def cpu_manifests() -> list[Manifest]:
    """The objects of the cpu overlay."""
    return render_overlay("cpu")
