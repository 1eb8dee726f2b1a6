"""Shared pytest configuration: fixture modules and the locations of real face photos."""

from __future__ import annotations

import pytest

from tests.paths import SAMPLES_DIR, SHARED_FACES_DIR

pytest_plugins = ["tests.fixtures.triton", "tests.fixtures.stack"]


@pytest.fixture(scope="session")
def samples_dir():
    """Photos of PyPI's face-recognition 1.3.0 sdist (obama x3, biden), fetched by scripts/setup.sh."""
    if not (SAMPLES_DIR / "obama.jpg").exists():
        pytest.fail(f"{SAMPLES_DIR} is missing: run scripts/setup.sh (the README's commands do)")
    return SAMPLES_DIR


@pytest.fixture(scope="session")
def shared_faces_dir():
    """The labelled real photos (``FACEREC_FACES_DIR``); tests using them skip where they are absent."""
    if not SHARED_FACES_DIR.is_dir():
        pytest.skip(f"{SHARED_FACES_DIR} is absent: accuracy tests on labelled photos need it")
    return SHARED_FACES_DIR
