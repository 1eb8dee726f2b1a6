"""A collection's retention period through the gateway: set at creation, changed, removed, shown; bad values refused
before the registry is asked (over fakes of the embedder and the registry)."""

from __future__ import annotations

import pytest

from facerec.limits import MAX_RETENTION_SECONDS
from facerec.runtime.deadlines import Deadline
from facerec.v1 import facerec_pb2
from facerec_gateway import conversions
from facerec_gateway.collections import Collections, NewCollection
from facerec_gateway.domain import SettingsUpdate
from facerec_gateway.errors import InvalidRequest
from tests.gateway.fakes import TENANT, FakeEmbedder, FakeRegistry, recognition

THIRTY_DAYS = 30 * 24 * 3600


def deadline() -> Deadline:
    return Deadline.after(5.0)


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry()


@pytest.fixture
def collections(registry: FakeRegistry) -> Collections:
    return recognition(FakeEmbedder(), registry).collections


async def test_a_retention_given_at_creation_is_stored_and_shown(
    collections: Collections, registry: FakeRegistry
) -> None:
    created = await collections.create(TENANT, NewCollection("staff", retention_seconds=THIRTY_DAYS), deadline())

    assert created.retention_seconds == THIRTY_DAYS
    assert registry.stored["acme__staff"].collection.retention_seconds == THIRTY_DAYS
    assert (await collections.get(TENANT, "staff", deadline())).retention_seconds == THIRTY_DAYS


async def test_without_a_retention_faces_are_kept_until_deleted(collections: Collections) -> None:
    created = await collections.create(TENANT, NewCollection("staff"), deadline())

    assert created.retention_seconds == 0


async def test_an_update_sets_changes_or_removes_the_retention_and_leaves_it_when_unset(
    collections: Collections,
) -> None:
    await collections.create(TENANT, NewCollection("staff"), deadline())

    assert (
        await collections.update(TENANT, "staff", SettingsUpdate(retention_seconds=2), deadline())
    ).retention_seconds == 2
    kept = await collections.update(TENANT, "staff", SettingsUpdate(min_margin=0.1), deadline())
    assert kept.retention_seconds == 2 and kept.settings.min_margin == pytest.approx(0.1)
    assert (
        await collections.update(TENANT, "staff", SettingsUpdate(retention_seconds=0), deadline())
    ).retention_seconds == 0


@pytest.mark.parametrize("seconds", [-1, MAX_RETENTION_SECONDS + 1])
async def test_a_retention_out_of_range_is_refused_before_the_registry_is_asked(
    collections: Collections, registry: FakeRegistry, seconds: int
) -> None:
    with pytest.raises(InvalidRequest, match="retention_seconds"):
        await collections.create(TENANT, NewCollection("staff", retention_seconds=seconds), deadline())
    registry.add_collection("acme__staff")
    with pytest.raises(InvalidRequest, match="retention_seconds"):
        await collections.update(TENANT, "staff", SettingsUpdate(retention_seconds=seconds), deadline())
    assert "CreateCollection" not in registry.calls and "UpdateCollection" not in registry.calls


def test_the_public_messages_carry_the_retention_only_when_set() -> None:
    unset = conversions.new_collection(facerec_pb2.CreateCollectionRequest(name="staff"))
    given = conversions.new_collection(facerec_pb2.CreateCollectionRequest(name="staff", retention_seconds=60))
    update = conversions.settings_update(facerec_pb2.UpdateCollectionRequest(name="staff", retention_seconds=0))
    untouched = conversions.settings_update(facerec_pb2.UpdateCollectionRequest(name="staff", threshold=0.5))

    assert (unset.retention_seconds, given.retention_seconds) == (None, 60)
    assert (update.retention_seconds, untouched.retention_seconds) == (0, None)


async def test_the_collection_message_shows_the_retention(collections: Collections) -> None:
    created = await collections.create(TENANT, NewCollection("staff", retention_seconds=THIRTY_DAYS), deadline())

    assert conversions.collection_message(created).retention_seconds == THIRTY_DAYS
