"""Per-request context carried across awaits: the request id."""

from __future__ import annotations

import uuid
from contextvars import ContextVar

REQUEST_ID_HEADER = "x-request-id"

request_id: ContextVar[str] = ContextVar("facerec_request_id", default="")


def new_request_id() -> str:
    """A fresh request id (32 hex characters)."""
    return uuid.uuid4().hex


def valid_request_id(value: str) -> bool:
    """Accept caller ids that are short printable ASCII, so they are safe to log and to forward."""
    return 0 < len(value) <= 128 and value.isascii() and value.isprintable()
