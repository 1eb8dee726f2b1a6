"""Per-request context carried across awaits: the request id, and who the request acts for (the actor)."""

from __future__ import annotations

import uuid
from contextvars import ContextVar

REQUEST_ID_HEADER = "x-request-id"

request_id: ContextVar[str] = ContextVar("facerec_request_id", default="")

# Who a call acts for, forwarded to the services it calls and written in the audit record: the gateway sets
# "key:<fingerprint>" of its caller's API key (facerec.api_keys.key_fingerprint); at most 128 printable ASCII.
ACTOR_HEADER = "x-facerec-actor"

actor: ContextVar[str] = ContextVar("facerec_actor", default="")


def new_request_id() -> str:
    """A fresh request id (32 hex characters)."""
    return uuid.uuid4().hex


def valid_request_id(value: str) -> bool:
    """Accept caller ids that are short printable ASCII, so they are safe to log and to forward."""
    return 0 < len(value) <= 128 and value.isascii() and value.isprintable()
