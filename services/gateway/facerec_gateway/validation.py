"""Checks on the fields of public requests, before any work is done."""

from __future__ import annotations

import re

from facerec_gateway.errors import InvalidRequest

COLLECTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,47}$")
MAX_PHOTOS_PER_ENROLLMENT = 64
DEFAULT_TOP_K = 5
MAX_TOP_K = 100
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def collection_name(name: str) -> str:
    if not COLLECTION_NAME.match(name):
        raise InvalidRequest(
            f"invalid collection name {name!r}: 1-48 characters of letters, digits, '_' and '-', "
            "starting with a letter or digit"
        )
    return name


def person_id(value: str) -> str:
    if not value:
        raise InvalidRequest("person_id is required")
    if len(value) > 128:
        raise InvalidRequest(f"person_id is {len(value)} characters long; the maximum is 128")
    if not value.isprintable():
        raise InvalidRequest("person_id must not contain control characters")
    return value


def threshold(value: float | None) -> float | None:
    if value is not None and not 0 < value <= 2:
        raise InvalidRequest(f"threshold {value} is out of range: it must be in (0, 2]")
    return value


def top_k(value: int) -> int:
    if value == 0:
        return DEFAULT_TOP_K
    if not 1 <= value <= MAX_TOP_K:
        raise InvalidRequest(f"top_k {value} is out of range: 1-{MAX_TOP_K} (0 means {DEFAULT_TOP_K})")
    return value


def page_size(value: int) -> int:
    if value == 0:
        return DEFAULT_PAGE_SIZE
    if not 1 <= value <= MAX_PAGE_SIZE:
        raise InvalidRequest(f"page_size {value} is out of range: 1-{MAX_PAGE_SIZE} (0 means {DEFAULT_PAGE_SIZE})")
    return value


def image(data: bytes, what: str = "image") -> bytes:
    if not data:
        raise InvalidRequest(f"{what} is empty")
    return data
