"""Fixtures of the deployment checks: the rendered Kubernetes overlays, rendered once per session."""

from __future__ import annotations

import pytest

from .support import OVERLAYS, Manifest, render_overlay, render_with_components

# Every rendering a cluster may apply: each overlay alone, and with the optional components (mtls, monitoring).
RENDERINGS = (*OVERLAYS, *(f"{name}+components" for name in OVERLAYS))


def rendered(name: str) -> list[Manifest]:
    """The objects of one rendering of RENDERINGS."""
    overlay, _, components = name.partition("+")
    return render_with_components(overlay) if components else render_overlay(overlay)


@pytest.fixture(scope="session", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[Manifest]]:
    """Each overlay's name and rendered objects (rendered once per session)."""
    name: str = request.param
    return name, render_overlay(name)


@pytest.fixture(scope="session", params=RENDERINGS)
def rendering(request: pytest.FixtureRequest) -> tuple[str, list[Manifest]]:
    """Each overlay, alone and with the optional components: its name and rendered objects."""
    name: str = request.param
    return name, rendered(name)


@pytest.fixture(scope="session")
def gpu_manifests() -> list[Manifest]:
    """The objects of the gpu overlay."""
    return render_overlay("gpu")


@pytest.fixture(scope="session")
def cpu_manifests() -> list[Manifest]:
    """The objects of the cpu overlay."""
    return render_overlay("cpu")


@pytest.fixture(scope="session")
def cpu_with_components() -> list[Manifest]:
    """The objects of the cpu overlay with the components mtls and monitoring."""
    return render_with_components("cpu")
