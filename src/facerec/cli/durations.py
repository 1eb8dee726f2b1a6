"""Durations and points in time as people type them on the command line.

A duration is a number of seconds (``3600``) or numbers with units, largest first (``30d``, ``12h``, ``1d12h``,
``90s``; units ``s``, ``m`` (minutes), ``h``, ``d``, ``w`` (7 days), ``y`` (365 days)); ``0`` is no duration.
``--retention`` takes one; ``--since`` takes one (that long ago) or an ISO 8601 time (``2026-12-01``,
``2026-12-01T09:30``, ``2026-12-01T09:30:00+01:00``; without an offset it is UTC, as the service's times are).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}

_PART = re.compile(r"(\d+)([smhdwy])")
_DURATION = re.compile(r"(?:\d+[smhdwy])+")


def parse_duration(text: str) -> int:
    """Seconds of a duration such as ``30d``, ``1d12h`` or ``3600``; ValueError naming the accepted forms."""
    value = text.strip().lower()
    if value.isdigit():
        return int(value)
    if not _DURATION.fullmatch(value):
        raise ValueError(
            f"{text!r} is not a duration: give seconds (3600) or numbers with units s, m, h, d, w, y (30d, 1d12h)"
        )
    return sum(int(number) * UNITS[unit] for number, unit in _PART.findall(value))


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """The time ``text`` names: a duration ago (``7d``: seven days before ``now``) or an ISO 8601 time (UTC
    when it has no offset); ValueError when it is neither."""
    try:
        return (now or datetime.now(UTC)) - timedelta(seconds=parse_duration(text))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a time (ISO 8601: 2026-12-01 or 2026-12-01T09:30:00Z) nor a duration ago (7d, 12h)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def format_duration(seconds: int) -> str:
    """A duration in the units :func:`parse_duration` reads, largest first, weeks left out (``2592000`` -> ``30d``,
    ``90`` -> ``1m30s``, ``31536000`` -> ``1y``); ``0`` for none."""
    if seconds <= 0:
        return "0"
    parts = []
    left = seconds
    for unit in ("y", "d", "h", "m", "s"):
        size = UNITS[unit]
        count, left = divmod(left, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
