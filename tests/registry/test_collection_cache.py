"""The collection settings the registry keeps between requests (``collection_cache.py``)."""

from __future__ import annotations

from datetime import UTC, datetime

from facerec_registry.collection_cache import CollectionCache
from facerec_registry.domain import Collection

STAFF = Collection("staff", "m", 128, 0.6, "", datetime(2026, 1, 1, tzinfo=UTC))
STAFF_64 = Collection("staff", "m", 64, 0.6, "", datetime(2026, 1, 2, tzinfo=UTC))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Loads:
    def __init__(self, answer: Collection | None) -> None:
        self.answer = answer
        self.calls = 0

    def __call__(self, name: str) -> Collection | None:
        self.calls += 1
        return self.answer


def test_settings_are_loaded_once_and_kept_without_expiry() -> None:
    cache, load = CollectionCache(ttl_s=None), Loads(STAFF)

    assert [cache.get("staff", load) for _ in range(3)] == [STAFF] * 3
    assert load.calls == 1


def test_settings_are_loaded_again_once_they_expire() -> None:
    clock = Clock()
    cache, load = CollectionCache(ttl_s=5.0, clock=clock), Loads(STAFF)
    cache.get("staff", load)

    clock.now += 4.9
    cache.get("staff", load)
    clock.now += 0.2
    cache.get("staff", load)

    assert load.calls == 2


def test_an_absent_collection_is_not_kept() -> None:
    cache, load = CollectionCache(ttl_s=None), Loads(None)

    assert cache.get("staff", load) is None
    assert cache.get("staff", load) is None
    assert load.calls == 2


def test_put_and_drop_replace_what_is_kept() -> None:
    cache, load = CollectionCache(ttl_s=None), Loads(STAFF)
    cache.put(STAFF_64)

    assert cache.get("staff", load) == STAFF_64
    cache.drop("staff")
    assert cache.get("staff", load) == STAFF
    assert load.calls == 1


def test_a_load_that_raced_a_change_does_not_overwrite_it() -> None:
    cache = CollectionCache(ttl_s=None)

    def load_then_see_a_change(name: str) -> Collection | None:
        # The store answered with the old settings; meanwhile the collection was re-made.
        cache.put(STAFF_64)
        return STAFF

    assert cache.get("staff", load_then_see_a_change) == STAFF
    assert cache.get("staff", Loads(None)) == STAFF_64
