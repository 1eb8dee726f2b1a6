"""The audit record, read back: who enrolled, corrected, erased or purged what in the tenant's collections, and
when.

The registry writes the record (every write it makes, and its own retention purges, per tenant, before the write
is acknowledged); the gateway names the key behind each call (``auth``: its fingerprint as the call's actor) and
reads the record here. A tenant reads only its own record, under its own names for its collections: the filter
names a collection as the tenant does (it need not exist any more: a deleted collection's history stays
readable), and each event's collection is mapped back from the registry's name. A key limited to some
collections sees only their events.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

from facerec.runtime.deadlines import Deadline
from facerec_gateway import validation
from facerec_gateway.auth import Tenant, public_collection_name, registry_collection_name
from facerec_gateway.clients import Registry
from facerec_gateway.collections import Collections
from facerec_gateway.domain import AuditEvent, AuditPage


@dataclass(frozen=True)
class AuditQuery:
    """Which part of the record to read: events at or after ``since`` (None: from the first), of one collection
    (the tenant's name; "": all), one page."""

    since: datetime | None = None
    collection: str = ""
    page_size: int = 0
    page_token: str = ""


class Audit:
    """The tenant's audit record, over the registry's."""

    def __init__(self, registry: Registry, collections: Collections) -> None:
        self.registry = registry
        self.collections = collections

    async def list_page(self, tenant: Tenant, query: AuditQuery, deadline: Deadline) -> AuditPage:
        """One page of the tenant's events, oldest first, each naming its collection as the tenant does.

        A page may hold fewer events than asked when some belong to collections the key may not use; the token
        still leads on.
        """
        size, token = validation.page_size(query.page_size), validation.page_token(query.page_token)
        stored = ""
        if query.collection:
            stored = registry_collection_name(tenant, self.collections.authorize(tenant, query.collection))
        page = await self.registry.list_audit_events(
            tenant.id, deadline, since=query.since, collection=stored, page_size=size, page_token=token
        )
        return AuditPage(tuple(self._visible(tenant, page.events)), page.next_page_token)

    @staticmethod
    def _visible(tenant: Tenant, events: tuple[AuditEvent, ...]) -> list[AuditEvent]:
        visible = []
        for event in events:
            public = public_collection_name(tenant, event.collection)
            if public is not None and tenant.allows(public):
                visible.append(dataclasses.replace(event, collection=public))
        return visible
