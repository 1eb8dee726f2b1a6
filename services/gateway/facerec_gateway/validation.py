"""Checks on the fields of public requests, before any work is done.

The rules themselves live in ``facerec.limits`` (shared with the SDK, the CLI and the registry); here each
failure becomes the gateway's :class:`InvalidRequest` (INVALID_ARGUMENT) with the rule's message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TypeVar

from facerec import limits
from facerec_gateway.errors import InvalidRequest

T = TypeVar("T")
R = TypeVar("R")


def _checked(check: Callable[[T], R], value: T) -> R:
    try:
        return check(value)
    except ValueError as error:
        raise InvalidRequest(str(error)) from None


def _optional(check: Callable[[float], float], value: float | None) -> float | None:
    return None if value is None else _checked(check, value)


def collection_name(name: str) -> str:
    """A public collection name (1-48 characters of ``[A-Za-z0-9_-]``)."""
    return _checked(limits.check_collection_name, name)


def person_id(value: str) -> str:
    """A person id (1-128 printable characters)."""
    return _checked(limits.check_person_id, value)


def photo_count(count: int) -> int:
    """The number of photos of one enrollment (1-64)."""
    return _checked(limits.check_photo_count, count)


def display_name(value: str | None) -> str | None:
    """A display name when given: 0-256 printable characters."""
    return None if value is None else _checked(limits.check_display_name, value)


def metadata(values: Mapping[str, str]) -> dict[str, str]:
    """A person's metadata: at most 64 entries, keys of ``[A-Za-z0-9_.-]`` (1-64), values of at most 1 KiB."""
    return _checked(limits.check_metadata, values)


def photo_names(names: Sequence[str]) -> None:
    """The names of an enrollment's photos: each 0-256 printable characters."""
    for index, name in enumerate(names):
        try:
            limits.check_photo_name(name, f"photos[{index}].name")
        except ValueError as error:
            raise InvalidRequest(str(error)) from None


def enrollment_bytes(photos: Sequence[bytes]) -> int:
    """The photo bytes of one enrollment, all photos together (at most 32 MiB)."""
    return _checked(limits.check_enrollment_bytes, sum(len(photo) for photo in photos))


def frame_id(value: str) -> str:
    """A frame id: 0-128 printable characters."""
    return _checked(limits.check_frame_id, value)


def page_token(value: str) -> str:
    """A page token: at most 8192 characters (the registry checks what it holds)."""
    return _checked(limits.check_page_token, value)


def threshold(value: float | None) -> float | None:
    """A threshold when given: in (0, 2]."""
    return _optional(limits.check_threshold, value)


def target_fpir(value: float | None) -> float | None:
    """A target FPIR when given: 0 (a fixed threshold) or in (0, 0.5]."""
    return _optional(limits.check_target_fpir, value)


def min_margin(value: float | None) -> float | None:
    """A minimum margin when given: in [0, 1]."""
    return _optional(limits.check_min_margin, value)


def target_fmr(value: float) -> float:
    """A calibration's target FMR: 0 means the default; otherwise in (0, 0.5]."""
    return _checked(limits.target_fmr_or_default, value)


def top_k(value: int) -> int:
    """Candidates per face: 0 means the default; otherwise 1-100."""
    return _checked(limits.top_k_or_default, value)


def page_size(value: int) -> int:
    """A page size: 0 means the default; otherwise 1-1000."""
    return _checked(limits.page_size_or_default, value)


def image(data: bytes, what: str = "image") -> bytes:
    """Photo bytes, which must not be empty (their format is the embedder's to check)."""
    if not data:
        raise InvalidRequest(f"{what} is empty")
    return data


def timestamp(seconds: int, nanos: int, field: str) -> datetime:
    """A request's time (UTC) when it is a valid protobuf Timestamp."""
    return _checked(lambda s: limits.check_timestamp(s, nanos, field), seconds)
