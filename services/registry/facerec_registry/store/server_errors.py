"""How the server store reads the errors of qdrant-client (REST, gRPC and its local mode alike)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from facerec_registry.errors import CollectionNotFound, StoreUnavailable

_UNAVAILABLE_CODES = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
_LOCAL_MODE_MISSING = re.compile(r"Collection \S+ not found")


def already_exists(error: Exception) -> bool:
    """Whether the error says the Qdrant collection exists already (another replica created it first)."""
    if isinstance(error, UnexpectedResponse):
        return error.status_code == 409
    if isinstance(error, grpc.Call):
        return error.code() == grpc.StatusCode.ALREADY_EXISTS or "already exists" in (error.details() or "")
    # qdrant-client's local mode raises ValueError("Collection <name> already exists").
    return isinstance(error, ValueError) and "already exists" in str(error)


def collection_missing(error: Exception) -> bool:
    """Whether the error says the Qdrant collection does not exist (another replica deleted it)."""
    if isinstance(error, UnexpectedResponse):
        return error.status_code == 404
    if isinstance(error, grpc.Call):
        return error.code() == grpc.StatusCode.NOT_FOUND
    # qdrant-client's local mode (the contract tests' reference) raises ValueError("Collection <name> not found").
    return isinstance(error, ValueError) and _LOCAL_MODE_MISSING.fullmatch(str(error)) is not None


@contextmanager
def translated_errors(name: str | None = None) -> Iterator[None]:
    """Connection failures become ``StoreUnavailable``; with the gallery's ``name``, a missing Qdrant collection
    becomes ``CollectionNotFound``; anything else propagates as it is."""
    try:
        yield
    except ResponseHandlingException as error:
        raise StoreUnavailable(f"Qdrant server unreachable: {error}") from error
    except (UnexpectedResponse, grpc.RpcError, ValueError) as error:
        if name is not None and collection_missing(error):
            raise CollectionNotFound(f"collection {name!r} does not exist") from error
        code = error.code() if isinstance(error, grpc.Call) else None
        if code in _UNAVAILABLE_CODES:
            raise StoreUnavailable(f"Qdrant server unavailable: {code}") from error
        raise
