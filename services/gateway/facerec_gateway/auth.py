"""API keys -> tenants -> the collections each tenant may use.

Keys are configured as SHA-256 hashes (never in clear), in a YAML or JSON document::

    keys:
      - sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
        tenant: acme
        collections: ["default", "staff"]   # or ["*"] for any collection of the tenant

A caller presents its key as ``authorization: Bearer <key>`` or ``x-api-key: <key>``.

Collections are namespaced by tenant: the registry stores tenant ``acme``'s collection ``staff`` under a name
derived from both (:func:`registry_collection_name`), so a tenant can only ever reach its own collections; the
allow-list narrows that further, and naming a collection outside it is PERMISSION_DENIED.

An authenticated call acts for its key: the key's fingerprint (``facerec.api_keys.digest_fingerprint``, never
the key) becomes the call's actor (``facerec.runtime.context.actor``), which every downstream call carries as
``x-facerec-actor``, so the registry's audit record names the key behind each change.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from facerec import limits
from facerec.api_keys import digest_fingerprint, hash_key
from facerec.runtime import context
from facerec_gateway.errors import ApiKeyConfigError, CollectionNotAllowed, MissingApiKey, UnknownApiKey

ANY_COLLECTION = "*"


@dataclass(frozen=True)
class Tenant:
    """Who is calling: a tenant id, the collections it may use, and the fingerprint of the key that called."""

    id: str
    collections: frozenset[str]
    fingerprint: str = ""

    def allows(self, collection: str) -> bool:
        return ANY_COLLECTION in self.collections or collection in self.collections

    def check(self, collection: str) -> None:
        """Raise PERMISSION_DENIED unless this tenant may use ``collection``."""
        if not self.allows(collection):
            raise CollectionNotAllowed(f"this API key may not use collection {collection!r}")


def registry_collection_name(tenant: Tenant, collection: str) -> str:
    """The registry's name for a tenant's collection (the rule: ``facerec.limits.registry_collection_name``)."""
    return limits.registry_collection_name(tenant.id, collection)


def public_collection_name(tenant: Tenant, registry_name: str) -> str | None:
    """The tenant's name for a registry collection, or None when it belongs to another tenant."""
    return limits.public_collection_name(tenant.id, registry_name)


class ApiKeys:
    """The configured keys, looked up by hash in constant time per candidate."""

    def __init__(self, tenants_by_hash: Mapping[str, Tenant]) -> None:
        self._tenants = dict(tenants_by_hash)

    def __len__(self) -> int:
        return len(self._tenants)

    def authenticate(self, metadata: Iterable[tuple[str, Any]]) -> Tenant:
        """The tenant of the key in the call's metadata; UNAUTHENTICATED when missing or unknown.

        The call then acts for that key: its fingerprint is set as the actor of the current context (the call's
        own task, and the tasks it starts), for every downstream call and the audit record.
        """
        key = _key_from_metadata(metadata)
        if not key:
            raise MissingApiKey("missing API key: send 'authorization: Bearer <key>'")
        digest = hash_key(key)
        for known, tenant in self._tenants.items():
            if hmac.compare_digest(known, digest):
                context.actor.set(tenant.fingerprint)
                return tenant
        raise UnknownApiKey("invalid API key")

    @classmethod
    def from_document(cls, document: Any) -> ApiKeys:
        """Parse the ``keys:`` document (already loaded from YAML or JSON)."""
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ApiKeyConfigError("API key document must be a mapping with a 'keys' list")
        tenants: dict[str, Tenant] = {}
        for index, entry in enumerate(document["keys"]):
            digest, tenant = _parse_entry(index, entry)
            tenants[digest] = tenant
        return cls(tenants)

    @classmethod
    def load(cls, path: Path | None, inline: str | None) -> ApiKeys:
        """Keys from a YAML/JSON file and/or an inline JSON document (both may be given; they add up)."""
        tenants: dict[str, Tenant] = {}
        if path is not None:
            tenants.update(cls.from_document(yaml.safe_load(path.read_text()))._tenants)
        if inline:
            try:
                document = json.loads(inline)
            except json.JSONDecodeError as error:
                raise ApiKeyConfigError(f"inline API keys are not valid JSON: {error}") from error
            tenants.update(cls.from_document(document)._tenants)
        return cls(tenants)


def _parse_entry(index: int, entry: Any) -> tuple[str, Tenant]:
    if not isinstance(entry, dict):
        raise ApiKeyConfigError(f"keys[{index}] must be a mapping")
    digest = str(entry.get("sha256", "")).lower()
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ApiKeyConfigError(f"keys[{index}].sha256 must be 64 hex characters (the SHA-256 of the key)")
    tenant_id = str(entry.get("tenant", ""))
    if (reason := limits.problem(limits.check_tenant_id, tenant_id)) is not None:
        raise ApiKeyConfigError(f"keys[{index}].tenant: {reason}")
    collections = entry.get("collections", [ANY_COLLECTION])
    if not isinstance(collections, list) or not all(isinstance(c, str) and c for c in collections):
        raise ApiKeyConfigError(f"keys[{index}].collections must be a list of names (or ['*'])")
    return digest, Tenant(tenant_id, frozenset(collections), digest_fingerprint(digest))


def _key_from_metadata(metadata: Iterable[tuple[str, Any]]) -> str:
    for name, value in metadata:
        text = value.decode() if isinstance(value, bytes) else str(value)
        if name == "authorization" and text.lower().startswith("bearer "):
            return text[7:].strip()
        if name == "x-api-key":
            return text.strip()
    return ""
