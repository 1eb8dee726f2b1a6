"""Shared pytest configuration: fixture modules and the locations of real face photos."""

from __future__ import annotations

import pytest

from tests.paths import REPO_ROOT, SAMPLES_DIR, SHARED_FACES_DIR

# Tests whose assertions hold only on a machine not loaded by other tests (saturation and refusal latency, kill -9
# and SIGTERM under load, against deadlines), and the install tests (one wheelhouse for the whole machine):
# `make test` runs every other test in parallel workers first (pytest-xdist, one file per worker), then these
# alone (scripts/test.sh).
EXCLUSIVE = (
    "tests/fault/test_overload.py",
    "tests/fault/test_kill.py",
    "tests/fault/test_sigterm.py",
    "tests/install/",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        where = item.path.relative_to(REPO_ROOT).as_posix()
        if where.startswith(EXCLUSIVE):
            item.add_marker(pytest.mark.exclusive)


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
