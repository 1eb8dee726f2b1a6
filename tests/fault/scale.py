"""How much load the long fault tests send: a CI size by default, the full size with ``FACEREC_FAULT_FULL=1``.

The full sizes are the ones the README's figures were measured with (10,000 generated requests, a 20,000-call
soak); CI runs on 2 cores under a time budget, so it sends fewer, enough to catch a leak or an UNKNOWN status
that shows at all (the soak's growth bound is the same).
"""

from __future__ import annotations

import os

FULL = os.environ.get("FACEREC_FAULT_FULL", "") == "1"


def scaled(ci: int, full: int) -> int:
    """``full`` when ``FACEREC_FAULT_FULL=1``, else ``ci``."""
    return full if FULL else ci
