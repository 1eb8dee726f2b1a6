"""People: a collection's enrolled people, read, listed, changed and erased (the registry keeps them)."""

from __future__ import annotations

import dataclasses

from facerec.runtime.deadlines import Deadline
from facerec_gateway import validation
from facerec_gateway.auth import Tenant
from facerec_gateway.clients import Registry
from facerec_gateway.collections import Collections
from facerec_gateway.domain import PeoplePage, Person, PersonUpdate


class People:
    """The people of the tenant's collections; each answer names the collection as the tenant does."""

    def __init__(self, registry: Registry, collections: Collections) -> None:
        self.registry = registry
        self.collections = collections

    async def get(self, tenant: Tenant, collection: str, person_id: str, deadline: Deadline) -> Person:
        """The person (NOT_FOUND when the collection holds no face of theirs)."""
        stored = await self.collections.resolve(tenant, collection, deadline, create_default=False, check_model=False)
        found = await self.registry.get_person(stored.name, validation.person_id(person_id), deadline)
        return self._named(found, collection)

    async def list_page(
        self, tenant: Tenant, collection: str, page_size: int, page_token: str, deadline: Deadline
    ) -> PeoplePage:
        """One page of the collection's people, ordered by id (the default collection is created if need be)."""
        size, token = validation.page_size(page_size), validation.page_token(page_token)
        stored = await self.collections.resolve(tenant, collection, deadline, create_default=True, check_model=False)
        page = await self.registry.list_people(stored.name, size, token, deadline)
        return PeoplePage(tuple(self._named(p, collection) for p in page.people), page.next_page_token)

    async def update(self, tenant: Tenant, collection: str, update: PersonUpdate, deadline: Deadline) -> Person:
        """The person after changing their display name and metadata (an empty value deletes its key)."""
        checked = dataclasses.replace(
            update,
            person_id=validation.person_id(update.person_id),
            display_name=validation.display_name(update.display_name),
            metadata=validation.metadata(update.metadata),
        )
        stored = await self.collections.resolve(tenant, collection, deadline, create_default=False, check_model=False)
        return self._named(await self.registry.update_person(stored.name, checked, deadline), collection)

    async def delete(self, tenant: Tenant, collection: str, person_id: str, deadline: Deadline) -> int:
        """Erase every face of the person; how many were erased."""
        stored = await self.collections.resolve(tenant, collection, deadline, create_default=False, check_model=False)
        deleted = await self.registry.delete_person(stored.name, validation.person_id(person_id), deadline)
        self.collections.cache.size_changed(stored.name)
        return deleted

    def _named(self, person: Person, collection: str) -> Person:
        return dataclasses.replace(person, collection=self.collections.named(collection))
