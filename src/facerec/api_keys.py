"""How an API key is stored: its SHA-256 hex digest, never the key itself.

One rule for the gateway (which checks a presented key against the configured digests) and for ``facerec up``
(which writes the digest of the key it generates); standard library only, so clients can import it.
"""

from __future__ import annotations

import hashlib


def hash_key(key: str) -> str:
    """The SHA-256 hex digest under which a key is configured."""
    return hashlib.sha256(key.encode()).hexdigest()
