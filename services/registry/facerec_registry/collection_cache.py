"""Collection settings the registry keeps between requests, so that a search does not read them from the store.

A search needs its collection's settings (that it exists, its dimension) and nothing else from the catalog;
reading them costs a dictionary lookup on the embedded store but two calls to a Qdrant server. The registry
keeps them here: filled on first use, replaced on create and update, dropped on delete, all through this
registry. Over a store other replicas share (``FaceStore.exclusive`` false) an entry also expires after
``ttl_s``, so that a change made elsewhere is seen within that time; meanwhile the store stays the
authority on existence (a search of a collection deleted elsewhere answers ``CollectionNotFound``, and the
entry is dropped). Writes read the settings afresh: they are rarer, and must never store faces under
settings another replica changed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from facerec_registry.domain import Collection


class CollectionCache:
    """Settings by collection name; thread-safe (the registry serves requests from worker threads)."""

    def __init__(self, ttl_s: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        # None: entries never expire (every change goes through this registry).
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[Collection, float]] = {}
        # Bumped by every change, so that a fill that read the store before a change cannot store stale settings.
        self._generation = 0

    def get(self, name: str, load: Callable[[str], Collection | None]) -> Collection | None:
        """The collection's settings, from memory while fresh, else from ``load`` (the store)."""
        # The hit path takes no lock (one dictionary read is atomic): it runs on every search.
        entry = self._entries.get(name)
        if entry is not None and (self._ttl_s is None or self._clock() - entry[1] < self._ttl_s):
            return entry[0]
        return self.refresh(name, load)

    def refresh(self, name: str, load: Callable[[str], Collection | None]) -> Collection | None:
        """The collection's settings from ``load`` (the store), kept unless a change came meanwhile."""
        generation = self._generation
        now = self._clock()
        collection = load(name)
        with self._lock:
            if self._generation == generation:
                if collection is None:
                    self._entries.pop(name, None)
                else:
                    self._entries[name] = (collection, now)
        return collection

    def put(self, collection: Collection) -> None:
        """Records settings just written to the store (or just read from it)."""
        with self._lock:
            self._generation += 1
            self._entries[collection.name] = (collection, self._clock())

    def drop(self, name: str) -> None:
        """Forgets a collection (deleted, or found gone)."""
        with self._lock:
            self._generation += 1
            self._entries.pop(name, None)
