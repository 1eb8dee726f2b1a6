"""The limits and name formats that more than one side checks (SDK, CLI, gateway, registry): one home for each.

Standard library only, so the light client install can import it. Every check is a pure function that returns
the normalised value or raises ``ValueError`` with a message fit for the caller; each service wraps it in its
own error type (the gateway's ``InvalidRequest``, the registry's ``InvalidSearch`` ...), so the gRPC status
stays the service's business. ``problem(check, value)`` gives the message instead, where a caller collects them.

The rules:

- **Collection name** (the public one, as a tenant names it): 1-48 characters of ``[A-Za-z0-9_-]``, starting
  with a letter or digit (:func:`check_collection_name`).
- **Tenant id**: 1-32 characters of ``[a-z0-9-]``, starting with a letter or digit; never ``__``
  (:func:`check_tenant_id`).
- **Registry collection name** of a tenant's collection: ``<tenant>__<collection>``
  (:func:`registry_collection_name`, and back with :func:`public_collection_name`). The tenant id holds no
  ``_``, so the first ``__`` separates the two without ambiguity. The registry accepts 1-82 characters of
  ``[A-Za-z0-9_-]`` starting with a letter or digit (:func:`check_registry_collection_name`): 82 is the longest
  tenant, the separator and the longest collection name, so every gateway name fits (it accepted 64 before,
  and still accepts all of those).
- **Person id**: 1-128 characters, all printable (no control, format or line-separator characters; the ASCII
  space is allowed) (:func:`check_person_id`).
- **Display name** of a person: 0-256 printable characters; empty clears it (:func:`check_display_name`).
- **Metadata** of a person: at most 64 entries; each key 1-64 characters of ``[A-Za-z0-9_.-]``, each value at
  most 1 KiB (1024 bytes of UTF-8); an empty value deletes its key in an update (:func:`check_metadata`).
- **Photo name** (the caller's label of a photo, stored with its face): 0-256 printable characters
  (:func:`check_photo_name`).
- **Frame id** of an identification (echoed in its response): 0-128 printable characters (:func:`check_frame_id`).
- **Page token**: at most 8192 characters (the registry's own tokens are far shorter) (:func:`check_page_token`).
- **Photo bytes per enrollment**: at most 32 MiB in all, over every photo of one request
  (:func:`check_enrollment_bytes`); each photo is also bounded by the embedder's own byte and pixel limits.
- **Top-k**: 1-100 results per query; 0 means 5 where a default applies (:func:`top_k_or_default`,
  :func:`check_top_k`).
- **Page size**: 1-1000; 0 means 100 (:func:`page_size_or_default`).
- **Queries per search**: 1-256 descriptors in one registry search (:func:`check_query_count`).
- **Photos per enrollment**: 1-64 (:func:`check_photo_count`).
- **Threshold** (a euclidean distance): in (0, 2] (:func:`check_threshold`).
- **Target FPIR** (false-positive identification rate): 0 (a fixed threshold) or in (0, 0.5]
  (:func:`check_target_fpir`).
- **Minimum margin** between the nearest and the second-nearest person: in [0, 1]; 0 means no margin rule
  (:func:`check_min_margin`).
- **Target FMR** (false match rate) of a calibration: in (0, 0.5]; 0 means 0.001 (:func:`target_fmr_or_default`).
- **Retries** (which codes, how many attempts, backoff): ``facerec.retry``.
- **Echo of caller input** in messages: at most 64 characters of it, then how long it was
  (:func:`quoted`: ``'xxxx'…(10000 characters)``), so no message grows with what a caller sends; the status
  layer caps every message and its details once more (``facerec.runtime.errors``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TypeVar

T = TypeVar("T")

# --- names ------------------------------------------------------------------------------------------------

MAX_COLLECTION_NAME_LENGTH = 48
MAX_TENANT_ID_LENGTH = 32
TENANT_SEPARATOR = "__"
# Follows from the parts, so that every registry name the gateway makes is one the registry accepts.
MAX_REGISTRY_COLLECTION_NAME_LENGTH = MAX_TENANT_ID_LENGTH + len(TENANT_SEPARATOR) + MAX_COLLECTION_NAME_LENGTH

COLLECTION_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_-]{{0,{MAX_COLLECTION_NAME_LENGTH - 1}}}")
TENANT_ID = re.compile(rf"[a-z0-9][a-z0-9-]{{0,{MAX_TENANT_ID_LENGTH - 1}}}")
REGISTRY_COLLECTION_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_-]{{0,{MAX_REGISTRY_COLLECTION_NAME_LENGTH - 1}}}")

MAX_PERSON_ID_LENGTH = 128

# --- people and photos ------------------------------------------------------------------------------------

MAX_DISPLAY_NAME_LENGTH = 256
MAX_METADATA_ENTRIES = 64
MAX_METADATA_KEY_LENGTH = 64
METADATA_KEY = re.compile(rf"[A-Za-z0-9_.-]{{1,{MAX_METADATA_KEY_LENGTH}}}")
MAX_METADATA_VALUE_BYTES = 1024
MAX_PHOTO_NAME_LENGTH = 256
MAX_FRAME_ID_LENGTH = 128

# --- requests ---------------------------------------------------------------------------------------------

DEFAULT_TOP_K = 5
MAX_TOP_K = 100
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_QUERIES_PER_SEARCH = 256
MAX_PHOTOS_PER_ENROLLMENT = 64
# Equal to the services' default gRPC message limit, so that a gateway allowed larger messages still bounds what
# one enrollment makes the embedder decode at once.
MAX_ENROLLMENT_PHOTO_BYTES = 32 * 1024 * 1024
# Tokens the registry issues hold one person id (and a face id) in base64 JSON: a few hundred characters.
MAX_PAGE_TOKEN_LENGTH = 8192

# --- messages ---------------------------------------------------------------------------------------------

ECHO_PREFIX_LENGTH = 64

# --- decisions --------------------------------------------------------------------------------------------

# Descriptors of dlib's ResNet have unit length, so no two are further apart than 2.
MAX_THRESHOLD = 2.0
MAX_TARGET_FPIR = 0.5
MAX_MIN_MARGIN = 1.0
MAX_TARGET_FMR = 0.5
DEFAULT_TARGET_FMR = 0.001

# --- times -----------------------------------------------------------------------------------------------

# What a google.protobuf.Timestamp may hold: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z.
MIN_TIMESTAMP_SECONDS = -62_135_596_800
MAX_TIMESTAMP_SECONDS = 253_402_300_799

# --- retention --------------------------------------------------------------------------------------------

# A collection's retention period (seconds after a person's newest enrollment): 0 is none; at most 100 years.
MAX_RETENTION_SECONDS = 100 * 365 * 24 * 3600


def quoted(value: str, prefix: int = ECHO_PREFIX_LENGTH) -> str:
    """``value`` quoted for a message: whole when it has at most ``prefix`` characters, else its first ``prefix``
    and its length (``'aaaa'…(10000 characters)``), so a message never grows with the caller's input."""
    if len(value) <= prefix:
        return repr(value)
    return f"{value[:prefix]!r}…({len(value)} characters)"


def problem(check: Callable[[T], object], value: T) -> str | None:
    """The message ``check`` raises for ``value``, or ``None`` when the value passes."""
    try:
        check(value)
    except ValueError as error:
        return str(error)
    return None


# --- names ------------------------------------------------------------------------------------------------


def check_collection_name(name: str) -> str:
    """The public collection name when it is 1-48 characters of ``[A-Za-z0-9_-]`` starting with a letter or digit."""
    if not COLLECTION_NAME.fullmatch(name):
        raise ValueError(
            f"invalid collection name {quoted(name)}: 1-{MAX_COLLECTION_NAME_LENGTH} characters of letters, digits, "
            "'_' and '-', starting with a letter or digit"
        )
    return name


def check_tenant_id(tenant_id: str) -> str:
    """The tenant id when it is 1-32 characters of ``[a-z0-9-]`` starting with a letter or digit."""
    # The pattern admits no '_', hence no separator; the second test says so for whoever widens the pattern.
    if not TENANT_ID.fullmatch(tenant_id) or TENANT_SEPARATOR in tenant_id:
        raise ValueError(
            f"invalid tenant id {quoted(tenant_id)}: 1-{MAX_TENANT_ID_LENGTH} characters of lower-case letters, digits "
            f"and '-', starting with a letter or digit, without {TENANT_SEPARATOR!r}"
        )
    return tenant_id


def registry_collection_name(tenant_id: str, collection: str) -> str:
    """The registry's name for a tenant's collection: ``<tenant>__<collection>``.

    Both parts are expected valid (:func:`check_tenant_id`, :func:`check_collection_name`); the result then
    passes :func:`check_registry_collection_name`.
    """
    return f"{tenant_id}{TENANT_SEPARATOR}{collection}"


def public_collection_name(tenant_id: str, registry_name: str) -> str | None:
    """The tenant's name for a registry collection, or ``None`` when it belongs to another tenant (or none)."""
    prefix = f"{tenant_id}{TENANT_SEPARATOR}"
    return registry_name[len(prefix) :] if registry_name.startswith(prefix) else None


def check_registry_collection_name(name: str) -> str:
    """The registry collection name when it is 1-82 characters of ``[A-Za-z0-9_-]`` starting with a letter or
    digit: long enough for every ``<tenant>__<collection>``."""
    if not REGISTRY_COLLECTION_NAME.fullmatch(name):
        raise ValueError(
            f"collection name {quoted(name)} must be 1-{MAX_REGISTRY_COLLECTION_NAME_LENGTH} characters of "
            "[A-Za-z0-9_-], starting with a letter or digit"
        )
    return name


def check_person_id(person_id: str) -> str:
    """The person id when it is 1-128 printable characters (no control, format or line-separator characters)."""
    if not person_id:
        raise ValueError("person_id is required")
    if len(person_id) > MAX_PERSON_ID_LENGTH:
        raise ValueError(f"person_id is {len(person_id)} characters long; the maximum is {MAX_PERSON_ID_LENGTH}")
    if not person_id.isprintable():
        raise ValueError("person_id must not contain control characters")
    return person_id


# --- people and photos ------------------------------------------------------------------------------------


def _check_printable(value: str, field: str, max_length: int) -> str:
    if len(value) > max_length:
        raise ValueError(f"{field} is {len(value)} characters long; the maximum is {max_length}")
    if not value.isprintable():
        raise ValueError(f"{field} must not contain control characters")
    return value


def check_display_name(name: str) -> str:
    """A person's display name when it is 0-256 printable characters (empty clears it)."""
    return _check_printable(name, "display_name", MAX_DISPLAY_NAME_LENGTH)


def check_metadata_key(key: str, field: str = "metadata") -> str:
    """A metadata key when it is 1-64 characters of ``[A-Za-z0-9_.-]``."""
    if not METADATA_KEY.fullmatch(key):
        raise ValueError(
            f"{field} key {quoted(key)} is not 1-{MAX_METADATA_KEY_LENGTH} characters of letters, digits, "
            "'_', '.' and '-'"
        )
    return key


def check_metadata_value(key: str, value: str, field: str = "metadata") -> str:
    """The value of metadata key ``key`` when it is at most 1 KiB (1024 bytes of UTF-8)."""
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > MAX_METADATA_VALUE_BYTES:
        raise ValueError(
            f"{field}[{quoted(key)}] is {size} bytes long (UTF-8); the maximum is {MAX_METADATA_VALUE_BYTES}"
        )
    return value


def check_metadata(metadata: Mapping[str, str], field: str = "metadata") -> dict[str, str]:
    """Metadata of a person when it has at most 64 entries, each key and value within its limits."""
    if len(metadata) > MAX_METADATA_ENTRIES:
        raise ValueError(f"{field} has {len(metadata)} entries; the maximum is {MAX_METADATA_ENTRIES}")
    for key, value in metadata.items():
        check_metadata_key(key, field)
        check_metadata_value(key, value, field)
    return dict(metadata)


def check_photo_name(name: str, field: str = "photo name") -> str:
    """A photo's name (the caller's label, e.g. its file name) when it is 0-256 printable characters."""
    return _check_printable(name, field, MAX_PHOTO_NAME_LENGTH)


def check_frame_id(frame_id: str) -> str:
    """A frame id when it is 0-128 printable characters."""
    return _check_printable(frame_id, "frame_id", MAX_FRAME_ID_LENGTH)


# --- requests ---------------------------------------------------------------------------------------------


def check_top_k(top_k: int) -> int:
    """``top_k`` when it is 1-100."""
    if not 1 <= top_k <= MAX_TOP_K:
        raise ValueError(f"top_k {top_k} is out of range: 1-{MAX_TOP_K}")
    return top_k


def top_k_or_default(top_k: int) -> int:
    """The number of results to return: 0 means 5; otherwise 1-100."""
    if top_k == 0:
        return DEFAULT_TOP_K
    if not 1 <= top_k <= MAX_TOP_K:
        raise ValueError(f"top_k {top_k} is out of range: 1-{MAX_TOP_K} (0 means {DEFAULT_TOP_K})")
    return top_k


def page_size_or_default(page_size: int) -> int:
    """The page size to use: 0 means 100; otherwise 1-1000."""
    if page_size == 0:
        return DEFAULT_PAGE_SIZE
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size {page_size} is out of range: 1-{MAX_PAGE_SIZE} (0 means {DEFAULT_PAGE_SIZE})")
    return page_size


def check_page_token(token: str) -> str:
    """A page token when it has at most 8192 characters (what it holds is for its issuer to check)."""
    if len(token) > MAX_PAGE_TOKEN_LENGTH:
        raise ValueError(f"page_token is {len(token)} characters long; the maximum is {MAX_PAGE_TOKEN_LENGTH}")
    return token


def check_query_count(count: int) -> int:
    """The number of query descriptors in one search when it is 1-256."""
    if not 1 <= count <= MAX_QUERIES_PER_SEARCH:
        raise ValueError(f"a search takes 1-{MAX_QUERIES_PER_SEARCH} query descriptors, got {count}")
    return count


def check_photo_count(count: int) -> int:
    """The number of photos in one enrollment when it is 1-64."""
    if count < 1:
        raise ValueError("an enrollment needs at least one photo")
    if count > MAX_PHOTOS_PER_ENROLLMENT:
        raise ValueError(f"{count} photos in one enrollment; the maximum is {MAX_PHOTOS_PER_ENROLLMENT}")
    return count


def check_enrollment_bytes(total: int) -> int:
    """The photo bytes of one enrollment, all photos together, when they are at most 32 MiB."""
    if total > MAX_ENROLLMENT_PHOTO_BYTES:
        raise ValueError(
            f"the photos of one enrollment have {total:,} bytes in all; the maximum is "
            f"{MAX_ENROLLMENT_PHOTO_BYTES:,} ({MAX_ENROLLMENT_PHOTO_BYTES // (1024 * 1024)} MiB)"
        )
    return total


# --- decisions --------------------------------------------------------------------------------------------


def check_threshold(threshold: float) -> float:
    """The decision threshold (a euclidean distance) when it is in (0, 2]."""
    if not (math.isfinite(threshold) and 0 < threshold <= MAX_THRESHOLD):
        raise ValueError(f"threshold {threshold} is out of range: it must be in (0, {MAX_THRESHOLD:g}]")
    return threshold


def check_target_fpir(target_fpir: float) -> float:
    """The target false-positive identification rate when it is 0 (a fixed threshold) or in (0, 0.5]."""
    if not (math.isfinite(target_fpir) and 0 <= target_fpir <= MAX_TARGET_FPIR):
        raise ValueError(
            f"target_fpir {target_fpir} is out of range: it must be in (0, {MAX_TARGET_FPIR:g}], "
            "or 0 for a fixed threshold"
        )
    return target_fpir


def check_min_margin(min_margin: float) -> float:
    """The minimum margin between the nearest and second-nearest person when it is in [0, 1] (0: no rule)."""
    if not (math.isfinite(min_margin) and 0 <= min_margin <= MAX_MIN_MARGIN):
        raise ValueError(f"min_margin {min_margin} is out of range: it must be in [0, {MAX_MIN_MARGIN:g}]")
    return min_margin


def target_fmr_or_default(target_fmr: float) -> float:
    """The false match rate a calibration aims at: 0 means 0.001; otherwise in (0, 0.5]."""
    if target_fmr == 0:
        return DEFAULT_TARGET_FMR
    if not (math.isfinite(target_fmr) and 0 < target_fmr <= MAX_TARGET_FMR):
        raise ValueError(
            f"target_fmr {target_fmr} is out of range: it must be in (0, {MAX_TARGET_FMR:g}] "
            f"(0 means {DEFAULT_TARGET_FMR:g})"
        )
    return target_fmr


def check_retention_seconds(seconds: int) -> int:
    """A retention period when it is 0 (none) or 1 s to 100 years."""
    if not 0 <= seconds <= MAX_RETENTION_SECONDS:
        raise ValueError(
            f"retention_seconds {seconds} is out of range: 0 (no limit) or 1-{MAX_RETENTION_SECONDS} (100 years)"
        )
    return seconds


def check_timestamp(seconds: int, nanos: int, field: str) -> datetime:
    """A protobuf Timestamp's time (UTC) when it is a valid one: years 1-9999, nanos 0-999,999,999."""
    if not (MIN_TIMESTAMP_SECONDS <= seconds <= MAX_TIMESTAMP_SECONDS and 0 <= nanos <= 999_999_999):
        raise ValueError(f"{field} ({seconds} s, {nanos} ns) is not a valid time: years 1-9999, nanos 0-999999999")
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds, microseconds=nanos // 1000)
