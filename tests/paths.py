"""Where the test data lives.

The labelled face photos (``<set>/<person>/<photos>``, e.g. LFW's people) are not part of the repository:
``FACEREC_FACES_DIR`` names their folder, by default ``faces`` in a ``shared`` folder beside the checkout.
Tests and benchmarks that need them skip, or say so, where the folder is absent.
"""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLES_DIR = REPO_ROOT / ".cache" / "samples"
SHARED_FACES_DIR = Path(os.environ.get("FACEREC_FACES_DIR") or REPO_ROOT.parent / "shared" / "faces").resolve()
