"""Collections: names per tenant, decision settings of new collections, the default collection created on first
use, and the cache that spares the registry a read per request (over fakes of the embedder and the registry)."""

from __future__ import annotations

import pytest

from facerec.runtime import errors
from facerec.runtime.deadlines import Deadline
from facerec_gateway.auth import Tenant
from facerec_gateway.collections import DEFAULT_CACHE_S, Collections, NewCollection
from facerec_gateway.decisions import DEFAULT_MIN_MARGIN, DEFAULT_TARGET_FPIR, DecisionSettings
from facerec_gateway.domain import SettingsUpdate
from facerec_gateway.errors import CollectionNotAllowed, InvalidRequest, ModelMismatch
from tests.gateway.fakes import TENANT, Clock, FakeEmbedder, FakeRegistry, recognition, vector


def deadline() -> Deadline:
    return Deadline.after(5.0)


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def collections(registry: FakeRegistry, clock: Clock) -> Collections:
    return recognition(FakeEmbedder(), registry, clock=clock).collections


async def test_a_new_collection_without_settings_gets_the_default_target_fpir_capped_at_the_default_threshold(
    collections: Collections,
) -> None:
    created = await collections.create(TENANT, NewCollection("staff"), deadline())

    assert created.name == "staff"
    assert created.settings == DecisionSettings(0.6, DEFAULT_TARGET_FPIR, DEFAULT_MIN_MARGIN)


async def test_a_threshold_given_without_a_target_is_a_fixed_threshold(collections: Collections) -> None:
    created = await collections.create(TENANT, NewCollection("staff", threshold=0.5), deadline())

    assert created.settings.threshold == pytest.approx(0.5) and created.settings.target_fpir == 0.0


async def test_a_target_and_a_margin_given_are_kept_with_the_threshold_as_cap(collections: Collections) -> None:
    request = NewCollection("staff", threshold=0.55, target_fpir=0.05, min_margin=0.04)

    created = await collections.create(TENANT, request, deadline())

    assert created.settings == DecisionSettings(0.55, 0.05, 0.04)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (NewCollection("staff", target_fpir=0.7), "target_fpir"),
        (NewCollection("staff", min_margin=1.5), "min_margin"),
        (NewCollection("staff", threshold=0.0), "threshold"),
        (NewCollection("bad name!"), "collection name"),
    ],
)
async def test_settings_out_of_range_are_refused_naming_the_field(
    collections: Collections,
    registry: FakeRegistry,
    request_: NewCollection,
    field: str,
) -> None:
    with pytest.raises(InvalidRequest, match=field):
        await collections.create(TENANT, request_, deadline())
    assert registry.calls == []


async def test_another_model_than_the_embedders_is_refused(collections: Collections) -> None:
    with pytest.raises(ModelMismatch):
        await collections.create(TENANT, NewCollection("staff", model_id="arcface"), deadline())


async def test_the_default_collection_is_created_on_first_use_by_get_then_create(
    collections: Collections,
    registry: FakeRegistry,
) -> None:
    found = await collections.resolve(TENANT, "", deadline(), create_default=True)

    assert found.name == "acme__default"
    assert registry.calls == ["GetCollection(settings)", "CreateCollection"]
    assert found.settings.target_fpir == DEFAULT_TARGET_FPIR


async def test_another_missing_collection_is_not_found_and_not_created(
    collections: Collections,
    registry: FakeRegistry,
) -> None:
    with pytest.raises(errors.NotFound, match="'staff' does not exist"):
        await collections.resolve(TENANT, "staff", deadline(), create_default=True)
    assert "CreateCollection" not in registry.calls


async def test_a_collection_is_read_once_until_its_cache_entry_expires(
    collections: Collections,
    registry: FakeRegistry,
    clock: Clock,
) -> None:
    registry.add_collection("acme__staff")

    for _ in range(3):
        await collections.resolve(TENANT, "staff", deadline(), create_default=False)
    clock.advance(DEFAULT_CACHE_S - 0.1)
    await collections.resolve(TENANT, "staff", deadline(), create_default=False)
    assert registry.calls == ["GetCollection(settings)"]

    clock.advance(0.2)
    await collections.resolve(TENANT, "staff", deadline(), create_default=False)
    assert registry.calls == ["GetCollection(settings)"] * 2


async def test_a_collection_with_a_target_fpir_is_read_with_its_size_once_known_to_need_it(
    collections: Collections,
    registry: FakeRegistry,
    clock: Clock,
) -> None:
    registry.add_collection("acme__staff", target_fpir=0.01)
    registry.add_face("acme__staff", "ann", vector(1, 1, 1, 1))

    first = await collections.resolve(TENANT, "staff", deadline(), create_default=False, with_size=True)
    clock.advance(DEFAULT_CACHE_S + 1)
    again = await collections.resolve(TENANT, "staff", deadline(), create_default=False, with_size=True)

    assert first.size == again.size and first.size is not None and first.size.people == 1
    # The first read learns that the collection needs its size; later reads ask for it at once.
    assert registry.calls == ["GetCollection(settings)", "GetCollection(counts)", "GetCollection(counts)"]


async def test_a_fixed_threshold_collection_is_never_counted_for_identification(
    collections: Collections,
    registry: FakeRegistry,
    clock: Clock,
) -> None:
    registry.add_collection("acme__staff", target_fpir=0.0)

    for _ in range(2):
        await collections.resolve(TENANT, "staff", deadline(), create_default=False, with_size=True)
        clock.advance(DEFAULT_CACHE_S + 1)

    assert registry.calls == ["GetCollection(settings)"] * 2


async def test_an_update_changes_the_settings_and_refreshes_the_cache(
    collections: Collections,
    registry: FakeRegistry,
) -> None:
    registry.add_collection("acme__staff", threshold=0.6, target_fpir=0.01)
    await collections.resolve(TENANT, "staff", deadline(), create_default=False)

    updated = await collections.update(TENANT, "staff", SettingsUpdate(threshold=0.5, target_fpir=0.0), deadline())
    cached = await collections.resolve(TENANT, "staff", deadline(), create_default=False)

    assert (updated.settings.threshold, updated.settings.target_fpir) == (0.5, 0.0)
    assert cached.settings == updated.settings
    assert registry.calls == ["GetCollection(settings)", "UpdateCollection"]


async def test_an_update_of_a_missing_collection_is_not_found_under_the_tenants_name(
    collections: Collections,
) -> None:
    with pytest.raises(errors.NotFound, match="collection 'staff' does not exist"):
        await collections.update(TENANT, "staff", SettingsUpdate(min_margin=0.1), deadline())


async def test_tenants_see_only_their_own_collections_under_their_own_names(
    collections: Collections,
    registry: FakeRegistry,
) -> None:
    registry.add_collection("acme__staff")
    registry.add_collection("acme__visitors")
    registry.add_collection("other__staff")
    narrow = Tenant("acme", frozenset({"staff"}))

    assert [c.name for c in await collections.list_all(TENANT, deadline())] == ["staff", "visitors"]
    assert [c.name for c in await collections.list_all(narrow, deadline())] == ["staff"]
    with pytest.raises(CollectionNotAllowed):
        await collections.get(narrow, "visitors", deadline())


async def test_a_deleted_collection_is_forgotten_by_the_cache(
    collections: Collections,
    registry: FakeRegistry,
) -> None:
    registry.add_collection("acme__staff")
    await collections.resolve(TENANT, "staff", deadline(), create_default=False)

    await collections.delete(TENANT, "staff", deadline())

    with pytest.raises(errors.NotFound):
        await collections.resolve(TENANT, "staff", deadline(), create_default=False)
