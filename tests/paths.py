"""Where the test data lives."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLES_DIR = REPO_ROOT / ".cache" / "samples"
SHARED_FACES_DIR = (REPO_ROOT / ".." / "shared" / "faces").resolve()
