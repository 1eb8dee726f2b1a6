"""Collections: the tenant's names for them, the registry's behind them, their decision settings, a short cache.

A tenant names its collections; the registry stores them under a name joining the tenant's id and the
collection's (``facerec.limits.registry_collection_name``), so a tenant only ever reaches its own. An empty name
means the default collection, which is created on first use.

Enrollment and identification read a collection from a cache kept ``cache_s`` (5 s by default): a steady
stream of requests costs the registry no collection read per request, and a change made through another gateway
replica (UpdateCollection, DeleteCollection) is seen within that time. Those reads ask for the settings only,
which the registry answers without counting anything; a collection whose threshold follows its size (a target
FPIR) is read with its counts instead, so identification knows the gallery's size from the same cached read.

A collection may have a retention period (``retention_seconds``, ``facerec.limits.check_retention_seconds``): the
registry purges a person's faces that long after their newest enrollment, by itself, and audits the purge.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

from facerec import limits
from facerec.runtime import errors
from facerec.runtime.deadlines import Deadline
from facerec_gateway import validation
from facerec_gateway.auth import Tenant, public_collection_name, registry_collection_name
from facerec_gateway.clients import Embedder, Registry
from facerec_gateway.decisions import DEFAULT_MIN_MARGIN, DEFAULT_TARGET_FPIR, DecisionSettings, GallerySize
from facerec_gateway.domain import Collection, Model, SettingsUpdate, StoredCollection
from facerec_gateway.errors import InvalidRequest, ModelMismatch

DEFAULT_CACHE_S = 5.0


@dataclass(frozen=True)
class NewCollection:
    """What a new collection asks for; each setting left None takes its default (see :meth:`Collections.create`)."""

    name: str
    model_id: str = ""
    threshold: float | None = None
    target_fpir: float | None = None
    min_margin: float | None = None
    retention_seconds: int | None = None


def retention_seconds(value: int | None) -> int | None:
    """A retention period when given: 0 (none) or 1 s to 100 years (``facerec.limits``)."""
    if value is None:
        return None
    try:
        return limits.check_retention_seconds(value)
    except ValueError as error:
        raise InvalidRequest(str(error)) from None


@dataclass(frozen=True)
class _Entry:
    collection: StoredCollection
    fresh_until: float


class CollectionCache:
    """Collections as last read from the registry, each fresh for ``ttl_s`` after the read.

    An entry that is no longer fresh is still known: what it said (e.g. that the collection has a target FPIR)
    decides how the next read is made.
    """

    def __init__(self, ttl_s: float = DEFAULT_CACHE_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: dict[str, _Entry] = {}

    def fresh(self, name: str) -> StoredCollection | None:
        """The collection under registry name ``name`` when it was read less than ``ttl_s`` ago."""
        entry = self._entries.get(name)
        return entry.collection if entry is not None and entry.fresh_until > self._clock() else None

    def last_known(self, name: str) -> StoredCollection | None:
        """The collection as last read, however long ago."""
        entry = self._entries.get(name)
        return entry.collection if entry is not None else None

    def remember(self, collection: StoredCollection) -> None:
        """Keep ``collection`` as just read."""
        self._entries[collection.name] = _Entry(collection, self._clock() + self.ttl_s)

    def forget(self, name: str) -> None:
        """Drop what is known of the collection under registry name ``name``."""
        self._entries.pop(name, None)

    def size_changed(self, name: str) -> None:
        """Faces were written or erased through this gateway: the size known of the collection is out of date.

        Its settings stay fresh; the next read that needs the size (an identification with a target FPIR) asks
        the registry again, so the threshold and its reason follow this gateway's own writes at once.
        """
        entry = self._entries.get(name)
        if entry is not None and entry.collection.size is not None:
            self._entries[name] = _Entry(dataclasses.replace(entry.collection, size=None), entry.fresh_until)


class Collections:
    """The tenant's collections over the registry, with the embedder's model as the model of new ones."""

    def __init__(
        self,
        embedder: Embedder,
        registry: Registry,
        *,
        default_collection: str,
        default_threshold: float,
        cache: CollectionCache | None = None,
    ) -> None:
        self.embedder = embedder
        self.registry = registry
        self.default_collection = default_collection
        self.default_threshold = default_threshold
        self.cache = cache if cache is not None else CollectionCache()
        self._model: Model | None = None

    async def model(self, deadline: Deadline) -> Model:
        """The embedder's model (asked once, then remembered)."""
        if self._model is None:
            self._model = await self.embedder.model(deadline)
        return self._model

    def named(self, name: str) -> str:
        """The collection a request means: the one it names, or the default one."""
        return name or self.default_collection

    def authorize(self, tenant: Tenant, name: str) -> str:
        """The collection's name (the default one when empty), once it is valid and the tenant may use it."""
        name = validation.collection_name(self.named(name))
        tenant.check(name)
        return name

    def settings(self, collection: StoredCollection) -> DecisionSettings:
        """The collection's decision settings; a collection stored without a threshold has the gateway's."""
        stored = collection.settings
        if stored.threshold:
            return stored
        return DecisionSettings(self.default_threshold, stored.target_fpir, stored.min_margin)

    # ------------------------------------------------------------------------------------------ public operations

    async def create(self, tenant: Tenant, request: NewCollection, deadline: Deadline) -> Collection:
        """Create a collection of the embedder's model.

        A threshold given without a target FPIR is a fixed threshold (target 0); with neither, the collection
        gets the default target (``decisions.DEFAULT_TARGET_FPIR``) capped at the gateway's default threshold.
        """
        name = self.authorize(tenant, validation.collection_name(request.name))
        settings = self._new_settings(request)
        retention = retention_seconds(request.retention_seconds) or 0
        model = await self.model(deadline)
        if request.model_id and request.model_id != model.model_id:
            raise ModelMismatch(
                f"model {limits.quoted(request.model_id)} is not served here; the embedder serves {model.model_id!r}"
            )
        created = await self._create(tenant, name, settings, model, deadline, retention_seconds=retention)
        return self._public(tenant, created)

    async def get(self, tenant: Tenant, name: str, deadline: Deadline) -> Collection:
        """The collection with its counts."""
        name = self.authorize(tenant, name)
        found = await self._read(tenant, name, deadline, settings_only=False)
        self.cache.remember(found)
        return self._public(tenant, found)

    async def list_all(self, tenant: Tenant, deadline: Deadline) -> list[Collection]:
        """The tenant's collections it may use, ordered by name, with their counts."""
        found = await self.registry.list_collections(tenant.id, deadline)
        visible = [
            self._public(tenant, c)
            for c in found
            if (public := public_collection_name(tenant, c.name)) is not None and tenant.allows(public)
        ]
        return sorted(visible, key=lambda c: c.name)

    async def update(self, tenant: Tenant, name: str, update: SettingsUpdate, deadline: Deadline) -> Collection:
        """Change the collection's decision settings and retention; the values left None keep theirs."""
        name = self.authorize(tenant, name)
        checked = SettingsUpdate(
            threshold=validation.threshold(update.threshold),
            target_fpir=validation.target_fpir(update.target_fpir),
            min_margin=validation.min_margin(update.min_margin),
            retention_seconds=retention_seconds(update.retention_seconds),
        )
        try:
            updated = await self.registry.update_collection(registry_collection_name(tenant, name), checked, deadline)
        except errors.NotFound:
            raise errors.NotFound(f"collection {name!r} does not exist") from None
        self.cache.remember(updated)
        return self._public(tenant, updated)

    async def delete(self, tenant: Tenant, name: str, deadline: Deadline) -> int:
        """Delete the collection with every face in it; how many faces were deleted."""
        name = self.authorize(tenant, validation.collection_name(name))
        registry_name = registry_collection_name(tenant, name)
        self.cache.forget(registry_name)
        deleted = await self.registry.delete_collection(registry_name, deadline)
        self.cache.forget(registry_name)  # a read that raced the deletion may have cached it again
        return deleted

    # ------------------------------------------------------------------------------------------ for the other jobs

    async def resolve(
        self,
        tenant: Tenant,
        name: str,
        deadline: Deadline,
        *,
        create_default: bool,
        with_size: bool = False,
        check_model: bool = True,
    ) -> StoredCollection:
        """The registry collection behind a tenant's collection name, from the cache when fresh.

        ``create_default``: the default collection is created when it does not exist yet (its creation returns
        it: no second read). ``with_size``: a collection with a target FPIR comes with its size (people and
        faces), for identification's threshold; others never make the registry count. ``check_model``: the
        collection must hold the embedder's model's descriptors (what compares or writes new descriptors needs);
        calls that only read or remove stored data pass False and so work while the embedder is down. A
        collection read without the check is not cached, since the cache stands for checked collections.
        """
        name = self.authorize(tenant, name)
        registry_name = registry_collection_name(tenant, name)
        cached = self.cache.fresh(registry_name)
        if cached is not None and not (with_size and _needs_size(cached)):
            return cached
        known = self.cache.last_known(registry_name)
        counted = with_size and known is not None and known.settings.target_fpir > 0
        try:
            found = await self._read(tenant, name, deadline, settings_only=not counted)
        except errors.NotFound:
            if not (create_default and name == self.default_collection):
                raise
            model = await self.model(deadline)
            return await self._create(tenant, name, self._new_settings(NewCollection(name)), model, deadline)
        if with_size and _needs_size(found):  # first read, or its target FPIR was set through another replica
            found = await self._read(tenant, name, deadline, settings_only=False)
        if not check_model:
            return found
        await self._check_model(name, found, deadline)
        self.cache.remember(found)
        return found

    # ------------------------------------------------------------------------------------------ helpers

    async def _read(self, tenant: Tenant, name: str, deadline: Deadline, *, settings_only: bool) -> StoredCollection:
        try:
            return await self.registry.get_collection(
                registry_collection_name(tenant, name), deadline, settings_only=settings_only
            )
        except errors.NotFound:
            raise errors.NotFound(f"collection {name!r} does not exist") from None

    async def _create(
        self,
        tenant: Tenant,
        name: str,
        settings: DecisionSettings,
        model: Model,
        deadline: Deadline,
        *,
        retention_seconds: int = 0,
    ) -> StoredCollection:
        request = StoredCollection(
            name=registry_collection_name(tenant, name),
            tenant=tenant.id,
            model_id=model.model_id,
            dimension=model.dimension,
            settings=settings,
            retention_seconds=retention_seconds,
        )
        created = await self.registry.create_collection(request, deadline)
        self.cache.remember(created)
        return created

    def _new_settings(self, request: NewCollection) -> DecisionSettings:
        threshold = validation.threshold(request.threshold)
        target_fpir = validation.target_fpir(request.target_fpir)
        min_margin = validation.min_margin(request.min_margin)
        if target_fpir is None:
            target_fpir = 0.0 if threshold is not None else DEFAULT_TARGET_FPIR
        return DecisionSettings(
            threshold=threshold or self.default_threshold,
            target_fpir=target_fpir,
            min_margin=DEFAULT_MIN_MARGIN if min_margin is None else min_margin,
        )

    async def _check_model(self, name: str, collection: StoredCollection, deadline: Deadline) -> None:
        model = await self.model(deadline)
        if collection.model_id != model.model_id:
            raise ModelMismatch(
                f"collection {name!r} holds descriptors of model {collection.model_id!r}; "
                f"the embedder serves {model.model_id!r}"
            )

    def _public(self, tenant: Tenant, stored: StoredCollection) -> Collection:
        return Collection(
            name=public_collection_name(tenant, stored.name) or stored.name,
            model_id=stored.model_id,
            dimension=stored.dimension,
            settings=self.settings(stored),
            size=stored.size or GallerySize(people=0, faces=0),
            created_at=stored.created_at,
            retention_seconds=stored.retention_seconds,
        )


def _needs_size(collection: StoredCollection) -> bool:
    """Whether identification needs a size the read did not bring (only a target FPIR makes it need one)."""
    return collection.size is None and collection.settings.target_fpir > 0
