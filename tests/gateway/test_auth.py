"""API keys are stored hashed and map to a tenant and its collections."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facerec.api_keys import key_fingerprint
from facerec_gateway.auth import ApiKeys, Tenant, hash_key, public_collection_name, registry_collection_name
from facerec_gateway.errors import ApiKeyConfigError, CollectionNotAllowed, MissingApiKey, UnknownApiKey


def _document(**tenants: tuple[str, list[str]]) -> dict[str, object]:
    return {
        "keys": [
            {"sha256": hash_key(key), "tenant": tenant, "collections": collections}
            for tenant, (key, collections) in tenants.items()
        ]
    }


def test_bearer_key_authenticates_its_tenant(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(json.dumps(_document(acme=("secret-a", ["staff"]))))
    keys = ApiKeys.load(path, None)
    tenant = keys.authenticate([("authorization", "Bearer secret-a")])
    assert tenant == Tenant("acme", frozenset({"staff"}), key_fingerprint("secret-a"))
    assert keys.authenticate([("x-api-key", "secret-a")]) == tenant


def test_keys_are_never_stored_in_clear(tmp_path: Path) -> None:
    keys = ApiKeys.from_document(_document(acme=("secret-a", ["*"])))
    assert "secret-a" not in repr(keys._tenants)


def test_missing_and_unknown_keys_are_unauthenticated() -> None:
    keys = ApiKeys.from_document(_document(acme=("secret-a", ["*"])))
    with pytest.raises(MissingApiKey):
        keys.authenticate([])
    with pytest.raises(UnknownApiKey):
        keys.authenticate([("authorization", "Bearer secret-b")])


def test_collection_outside_the_allow_list_is_permission_denied() -> None:
    tenant = Tenant("acme", frozenset({"staff"}))
    tenant.check("staff")
    with pytest.raises(CollectionNotAllowed):
        tenant.check("visitors")
    Tenant("acme", frozenset({"*"})).check("visitors")


def test_tenants_never_share_a_registry_collection() -> None:
    a, b = Tenant("a", frozenset({"*"})), Tenant("b", frozenset({"*"}))
    assert registry_collection_name(a, "default") != registry_collection_name(b, "default")
    assert public_collection_name(a, registry_collection_name(b, "default")) is None
    assert public_collection_name(a, registry_collection_name(a, "default")) == "default"


@pytest.mark.parametrize(
    "entry",
    [
        {"sha256": "abc", "tenant": "acme"},
        {"sha256": "0" * 64, "tenant": "Bad Tenant"},
        {"sha256": "0" * 64, "tenant": "a__b"},
        {"sha256": "0" * 64, "tenant": "acme", "collections": "staff"},
    ],
)
def test_malformed_key_entries_are_refused_at_start_up(entry: dict[str, object]) -> None:
    with pytest.raises(ApiKeyConfigError):
        ApiKeys.from_document({"keys": [entry]})


def test_inline_json_document_adds_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(f"keys:\n  - sha256: {hash_key('k1')}\n    tenant: one\n    collections: ['*']\n")
    keys = ApiKeys.load(path, json.dumps(_document(two=("k2", ["*"]))))
    assert keys.authenticate([("x-api-key", "k1")]).id == "one"
    assert keys.authenticate([("x-api-key", "k2")]).id == "two"
