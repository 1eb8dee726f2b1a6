"""How an API key is stored: its SHA-256 hex digest, never the key itself; and how it is named in records.

One rule for the gateway (which checks a presented key against the configured digests) and for ``facerec up``
(which writes the digest of the key it generates); standard library only, so clients can import it.
"""

from __future__ import annotations

import hashlib


def hash_key(key: str) -> str:
    """The SHA-256 hex digest under which a key is configured."""
    return hashlib.sha256(key.encode()).hexdigest()


FINGERPRINT_LENGTH = 16


def key_fingerprint(key: str) -> str:
    """How a key is named in the audit record and in logs: ``key:`` and the first 16 hex digits of its digest.

    The digest's prefix identifies the key among a tenant's keys (collisions need ~2^32 keys) and cannot be
    turned back into the key; an operator finds it by hashing the configured keys' digests the same way."""
    return f"key:{hash_key(key)[:FINGERPRINT_LENGTH]}"


def digest_fingerprint(digest: str) -> str:
    """The fingerprint of a key known only by its configured digest (as :func:`key_fingerprint` gives)."""
    return f"key:{digest[:FINGERPRINT_LENGTH]}"
