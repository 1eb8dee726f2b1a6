"""The registry's domain service: collections of people's faces over any ``FaceStore``.

Every request is validated in full before anything is written, so a bad request leaves no partial state.
Methods are synchronous (the stores block); the servicer runs them in worker threads. Collection settings are
kept between requests (``collection_cache.py``), so a search costs the store one call.

Every write is recorded in the audit record of its collection's tenant (``audit.py``) after it is applied and
before it returns, with the ``Caller`` that made it. A crash between the two (one fsync's time) leaves that
change applied but unrecorded, and its caller without an answer: a retry of an enrollment or an erasure is
recorded (faces 0 for an erasure already done); a retried face deletion or move finds nothing left to do.
Recording after the change keeps the counts exact (how many faces an erasure removed is known only then) and
never records a change that did not happen. Transient collections are not recorded. ``purge_expired`` and
``compact_erased`` are the registry's own upkeep, run by its process on a timer (``maintenance.py``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np

from facerec_registry.audit import (
    ANONYMOUS,
    RETENTION,
    AuditAction,
    AuditEntry,
    AuditPage,
    AuditQuery,
    Caller,
    decode_audit_token,
    encode_audit_token,
)
from facerec_registry.collection_cache import CollectionCache
from facerec_registry.domain import (
    Collection,
    CollectionStatus,
    CollectionUpdate,
    Counts,
    FacePage,
    FaceRecord,
    Match,
    MovedFace,
    PeoplePage,
    Person,
    PersonAttributes,
    PersonUpdate,
    SearchQuery,
    decode_face_page_token,
    decode_page_token,
    encode_face_page_token,
    encode_page_token,
    page_size_or_default,
    validate_collection_name,
    validate_decision_settings,
    validate_face,
    validate_new_collection,
    validate_person_attributes,
    validate_person_id,
    validate_retention,
    validate_search,
)
from facerec_registry.errors import (
    CollectionExists,
    CollectionNotFound,
    FaceNotFound,
    InvalidFace,
    InvalidPerson,
    PersonNotFound,
)
from facerec_registry.store.base import FaceStore, FaceSummary, ScoredFace, StoredFace, VectorQuery

# One-result-per-person search fetches this many faces per wanted person in its first round, so that a
# few people with several close faces still leave top_k distinct people in one round.
_OVERFETCH = 4
# How long settings are kept over a store other replicas share: a change made elsewhere is seen within this.
DEFAULT_SHARED_SETTINGS_TTL_S = 5.0
# People purged per round of a collection's retention check, and per append of their events.
_PURGE_PER_ROUND = 100_000
_PURGE_BATCH = 100
# Over a store other replicas share, a transient collection is removed at start only once this old: it may be a
# live call's on another replica (a clustering call lasts minutes). One process alone removes them all.
SHARED_TRANSIENT_MAX_AGE = timedelta(hours=6)

log = logging.getLogger(__name__)


class Registry:
    """Collections, faces and people, with the registry API's rules, over a vector store."""

    def __init__(self, store: FaceStore, shared_settings_ttl_s: float = DEFAULT_SHARED_SETTINGS_TTL_S) -> None:
        self._store = store
        self._audit = store.audit
        self._settings = CollectionCache(None if store.exclusive else shared_settings_ttl_s)

    # --- collections ---------------------------------------------------------------------------------

    def create_collection(
        self,
        name: str,
        model_id: str,
        dimension: int,
        default_threshold: float,
        tenant: str = "",
        target_fpir: float = 0.0,
        min_margin: float = 0.0,
        retention_seconds: int = 0,
        transient: bool = False,
        caller: Caller = ANONYMOUS,
    ) -> CollectionStatus:
        """Creates a collection; the same settings again return it, other settings are ``CollectionExists``."""
        wanted = validate_new_collection(
            Collection(
                name=name,
                model_id=model_id,
                dimension=dimension,
                default_threshold=default_threshold,
                tenant=tenant,
                created_at=datetime.now(UTC),
                target_fpir=target_fpir,
                min_margin=min_margin,
                retention_seconds=retention_seconds,
                transient=transient,
            )
        )
        stored = self._store.create_collection(wanted)
        self._settings.put(stored)
        if not stored.same_settings(wanted):
            raise CollectionExists(f"collection {name!r} exists with other settings")
        if stored.created_at == wanted.created_at:  # made by this call, not found already there
            detail = (
                f"model_id={stored.model_id} dimension={stored.dimension} "
                + CollectionUpdate(
                    stored.default_threshold, stored.target_fpir, stored.min_margin, stored.retention_seconds
                ).described()
            )
            self._record(stored, [AuditEntry(AuditAction.COLLECTION_CREATE, name, detail=detail)], caller)
        return self._status(stored)

    def get_collection(self, name: str) -> CollectionStatus:
        """The collection and its counts (settings read from the store: a change made elsewhere shows at once)."""
        return self._status(self._fresh_collection(name))

    def collection_settings(self, name: str) -> Collection:
        """The collection's settings alone, without counting anything (identification and enrollment)."""
        return self._fresh_collection(name)

    def update_collection(self, name: str, update: CollectionUpdate, caller: Caller = ANONYMOUS) -> CollectionStatus:
        """Replaces the settings given in ``update``; returns the collection after, with its counts."""
        changed = update.apply(self._fresh_collection(name))
        validate_decision_settings(changed.default_threshold, changed.target_fpir, changed.min_margin)
        validate_retention(changed.retention_seconds)
        stored = self._store.update_collection(changed)
        if stored is None:
            self._settings.drop(name)
            raise CollectionNotFound(f"collection {name!r} does not exist")
        self._settings.put(stored)
        self._record(stored, [AuditEntry(AuditAction.COLLECTION_UPDATE, name, detail=update.described())], caller)
        return self._status(stored)

    def list_collections(self, tenant: str | None = None) -> list[CollectionStatus]:
        """Collections ordered by name, optionally only one tenant's; transient ones are left out."""
        collections = sorted(self._store.list_collections(), key=lambda c: c.name)
        return [self._status(c) for c in collections if not c.transient and (tenant is None or c.tenant == tenant)]

    def delete_collection(self, name: str, caller: Caller = ANONYMOUS) -> int:
        """Deletes a collection and all its faces; returns how many faces it held."""
        collection = self._fresh_collection(name)
        try:
            faces = self._store.delete_collection(name)
        finally:
            self._settings.drop(name)
        self._record(collection, [AuditEntry(AuditAction.COLLECTION_DELETE, name, faces=faces)], caller)
        return faces

    def remove_transient_collections(self) -> list[str]:
        """Deletes the transient collections a crash left behind (when the registry starts); returns their names.

        Over a store other replicas share, only those older than ``SHARED_TRANSIENT_MAX_AGE``: a younger one may
        be a call's of a replica that is running."""
        cutoff = None if self._store.exclusive else datetime.now(UTC) - SHARED_TRANSIENT_MAX_AGE
        removed = []
        for collection in self._store.list_collections():
            if collection.transient and (cutoff is None or collection.created_at < cutoff):
                self._store.delete_collection(collection.name)
                self._settings.drop(collection.name)
                removed.append(collection.name)
        return sorted(removed)

    def count(self, name: str) -> Counts:
        """Faces and distinct people in the collection."""
        return self._status(self._collection(name)).counts

    # --- faces ---------------------------------------------------------------------------------------

    def upsert_faces(
        self,
        name: str,
        faces: Sequence[FaceRecord],
        people: Sequence[PersonAttributes] = (),
        caller: Caller = ANONYMOUS,
    ) -> int:
        """Inserts or replaces faces by id (idempotent), with optional attributes of their people.

        A person's attributes are kept on each of their faces: new faces of a known person inherit them,
        and attributes given here are written onto all of that person's faces. The settings the faces are
        checked against are read afresh (another replica may have re-made the collection).
        """
        collection = self._fresh_collection(name)
        checked = _validate_faces(faces, collection)
        given = _validate_people(people)
        batch_people = {face.person_id for face in checked}
        known = self._known_attributes(name, sorted(batch_people | given.keys()))
        for person_id in given:
            if person_id not in batch_people and person_id not in known:
                raise InvalidPerson(f"attributes given for person {person_id!r}, who has no face")
        attributes = {**known, **given}
        if checked:
            self._store.upsert_faces(
                name,
                [
                    StoredFace(face=face, person=attributes.get(face.person_id, PersonAttributes(face.person_id)))
                    for face in checked
                ],
            )
        for person_id, person in given.items():
            if person_id in known:
                self._store.set_person_attributes(name, person)
        enrolled = Counter(face.person_id for face in checked)
        entries = [AuditEntry(AuditAction.ENROLL, name, person_id=p, faces=n) for p, n in sorted(enrolled.items())]
        entries += [
            AuditEntry(AuditAction.PERSON_UPDATE, name, person_id=p, detail="attributes")
            for p in sorted(given.keys() - enrolled.keys())
        ]
        self._record(collection, entries, caller)
        return len(checked)

    def delete_face(self, name: str, face_id: str, caller: Caller = ANONYMOUS) -> str | None:
        """Deletes one face; returns the person it belonged to, ``None`` when no face had that id."""
        collection = self._collection(name)
        if not face_id:
            raise InvalidFace("face_id must not be empty")
        owner = self._store.delete_face(name, face_id)
        if owner is not None:
            entry = AuditEntry(AuditAction.FACE_DELETE, name, person_id=owner, face_id=face_id, faces=1)
            self._record(collection, [entry], caller)
        return owner

    def move_face(self, name: str, face_id: str, to_person_id: str, caller: Caller = ANONYMOUS) -> MovedFace:
        """Moves a face to another person: it keeps its id, descriptor, metadata and enrollment time, and takes
        the person's attributes. Moving a face to its own person changes nothing (and records nothing)."""
        collection = self._fresh_collection(name)
        if not face_id:
            raise InvalidFace("face_id must not be empty")
        validate_person_id(to_person_id)
        face = self._store.face(name, face_id)
        if face is None:
            raise FaceNotFound(f"collection {name!r} holds no face {face_id!r}")
        before = face.person_id
        if before != to_person_id:
            target = self._known_attributes(name, [to_person_id]).get(to_person_id, PersonAttributes(to_person_id))
            face = replace(face, person_id=to_person_id)
            self._store.upsert_faces(name, [StoredFace(face=face, person=target)])
            detail = f"from person {before!r} to person {to_person_id!r}"
            entry = AuditEntry(AuditAction.FACE_MOVE, name, person_id=before, face_id=face_id, faces=1, detail=detail)
            self._record(collection, [entry], caller)
        return MovedFace(face=replace(face, embedding=np.zeros(0, dtype=np.float32)), from_person_id=before)

    # --- search --------------------------------------------------------------------------------------

    def search(self, name: str, query: SearchQuery) -> list[list[Match]]:
        """For each query vector, the nearest matches (nearest first), in request order.

        Unless ``all_faces``, each person appears once, with their nearest face: faces are fetched in
        rounds, each round excluding the people already found, until ``top_k`` people are found or no
        face is left.
        """
        collection = self._collection(name)
        checked = validate_search(query, collection)
        per_face = [
            VectorQuery(
                vector=vector,
                limit=checked.top_k if checked.all_faces else checked.top_k * _OVERFETCH,
                max_distance=checked.max_distance,
                metadata_filter=checked.metadata_filter,
                person_id=checked.person_id,
                distinct_people=not checked.all_faces,
            )
            for vector in checked.vectors
        ]
        results = self._searched(name, per_face)
        if checked.all_faces:
            return [[_match(face) for face in result] for result in results]
        return [
            self._distinct_people(name, request, result, checked.top_k)
            for request, result in zip(per_face, results, strict=True)
        ]

    def _distinct_people(
        self, name: str, request: VectorQuery, first_round: list[ScoredFace], top_k: int
    ) -> list[Match]:
        found: dict[str, ScoredFace] = {}
        result, limit = first_round, request.limit
        while True:
            before = len(found)
            for face in result:
                # Results come nearest first, so a person's first face is their nearest.
                found.setdefault(face.person_id, face)
            # Stop when enough people are found, when no face is left, or when a round brought nobody new
            # (which excluding the people found should make impossible; never loop on it).
            if len(found) >= top_k or len(result) < limit or len(found) == before:
                break
            missing = top_k - len(found)
            limit = missing * _OVERFETCH
            next_request = replace(request, limit=limit, exclude_people=frozenset(found))
            result = self._searched(name, [next_request])[0]
        nearest = sorted(found.values(), key=lambda face: face.distance)[:top_k]
        return [_match(face) for face in nearest]

    # --- people --------------------------------------------------------------------------------------

    def get_person(self, name: str, person_id: str) -> Person:
        """The person with their attributes and face ids; ``PersonNotFound`` when they have no face."""
        self._collection(name)
        validate_person_id(person_id)
        people = _people(self._store.faces_of(name, [person_id]))
        if not people:
            raise PersonNotFound(f"collection {name!r} holds no face of person {person_id!r}")
        return people[0]

    def list_people(self, name: str, page_size: int = 0, page_token: str = "") -> PeoplePage:
        """One page of people ordered by person id; the token resumes after the last one listed."""
        self._collection(name)
        size = page_size_or_default(page_size)
        after = decode_page_token(page_token)
        # Keyset paging on the person id: people added or removed meanwhile never make a listing repeat
        # or skip anyone else. One id more than the page says whether another page follows.
        person_ids = self._store.people_after(name, after, size + 1)
        page_ids = person_ids[:size]
        people = _people(self._store.faces_of(name, page_ids))
        more = len(person_ids) > size
        return PeoplePage(people=tuple(people), next_page_token=encode_page_token(page_ids[-1]) if more else "")

    def list_faces(
        self, name: str, page_size: int = 0, page_token: str = "", person_id: str = "", include_embeddings: bool = False
    ) -> FacePage:
        """One page of stored faces, ordered by person id then face id; optionally one person's only.

        Keyset paging over the people directory: a page reads the faces of at most ``page_size + 1`` people (each
        has at least one face), never the whole collection.
        """
        self._collection(name)
        size = page_size_or_default(page_size)
        after = decode_face_page_token(page_token)
        if person_id:
            validate_person_id(person_id)
        faces = self._faces_after(name, after, size + 1, person_id, include_embeddings)
        page = faces[:size]
        more = len(faces) > size
        token = encode_face_page_token(page[-1].person_id, page[-1].face_id) if more else ""
        return FacePage(faces=tuple(page), next_page_token=token)

    def _faces_after(
        self, name: str, after: tuple[str, str] | None, wanted: int, person_id: str, with_embeddings: bool
    ) -> list[FaceRecord]:
        """Up to ``wanted`` faces after ``after`` in (person id, face id) order, of ``person_id`` when given."""
        if person_id:
            faces = self._faces_of_people(name, [person_id], with_embeddings)
            return [face for face in faces if after is None or (face.person_id, face.face_id) > after][:wanted]
        faces = []
        if after is not None:
            # The rest of the person the previous page ended in.
            faces = [f for f in self._faces_of_people(name, [after[0]], with_embeddings) if f.face_id > after[1]]
        cursor = None if after is None else after[0]
        while len(faces) < wanted:
            # Every person listed has a face, so this many people fill the page (in one round but for races).
            people = self._store.people_after(name, cursor, wanted - len(faces))
            if not people:
                break
            faces.extend(self._faces_of_people(name, people, with_embeddings))
            cursor = people[-1]
        return faces[:wanted]

    def _faces_of_people(self, name: str, person_ids: Sequence[str], with_embeddings: bool) -> list[FaceRecord]:
        records = self._store.face_records(name, person_ids, with_embeddings)
        return sorted(records, key=lambda face: (face.person_id, face.face_id))

    def update_person(self, name: str, update: PersonUpdate, caller: Caller = ANONYMOUS) -> Person:
        """Changes a person's display name and metadata on all their faces; returns the person after."""
        current = self.get_person(name, update.person_id)
        changed = update.apply(PersonAttributes(current.person_id, current.display_name, dict(current.metadata)))
        self._store.set_person_attributes(name, changed)
        entry = AuditEntry(AuditAction.PERSON_UPDATE, name, person_id=update.person_id, detail=update.described())
        self._record(self._collection(name), [entry], caller)
        return Person(
            person_id=changed.person_id,
            display_name=changed.display_name,
            metadata=changed.metadata,
            face_ids=current.face_ids,
        )

    def delete_person(self, name: str, person_id: str, caller: Caller = ANONYMOUS) -> int:
        """Erasure: deletes every face of the person; returns how many (0 when none).

        Recorded even when the person had no face: the request to erase them was carried out."""
        collection = self._collection(name)
        validate_person_id(person_id)
        faces = self._store.delete_person(name, person_id)
        self._record(
            collection, [AuditEntry(AuditAction.PERSON_DELETE, name, person_id=person_id, faces=faces)], caller
        )
        return faces

    # --- audit, retention, compaction ------------------------------------------------------------------

    def list_audit_events(
        self,
        tenant: str,
        since: datetime | None = None,
        collection: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> AuditPage:
        """One page of a tenant's audit record, oldest first; only one collection's events when given."""
        if collection:
            validate_collection_name(collection)
        query = AuditQuery(
            tenant=tenant,
            since=since,
            collection=collection,
            limit=page_size_or_default(page_size),
            after=decode_audit_token(page_token),
        )
        found = self._audit.read(query)
        token = encode_audit_token(found.next) if found.next is not None else ""
        return AuditPage(events=found.events, next_page_token=token)

    def purge_expired(self, now: datetime | None = None) -> int:
        """Deletes the faces of every person whose newest face is older than their collection's retention period,
        recording one event per person; returns how many faces. Purging again deletes and records nothing."""
        moment = datetime.now(UTC) if now is None else now
        purged = 0
        for collection in self._store.list_collections():
            if collection.retention_seconds > 0:
                cutoff = moment - timedelta(seconds=collection.retention_seconds)
                try:
                    purged += self._purge_collection(collection, cutoff)
                except CollectionNotFound:  # deleted meanwhile (through another replica)
                    continue
        return purged

    def _purge_collection(self, collection: Collection, cutoff: datetime) -> int:
        """Purges the collection's expired people (at most ``_PURGE_PER_ROUND``; the next round takes the rest),
        recording them ``_PURGE_BATCH`` at a time."""
        name = collection.name
        detail = f"retention_seconds={collection.retention_seconds}"
        people = self._store.expired_people(name, cutoff, _PURGE_PER_ROUND)
        purged = 0
        for start in range(0, len(people), _PURGE_BATCH):
            entries = []
            for person_id in people[start : start + _PURGE_BATCH]:
                # 0 when enrolled again since they were found, or purged by another replica.
                faces = self._store.purge_person(name, person_id, cutoff)
                if faces:
                    purged += faces
                    entries.append(
                        AuditEntry(AuditAction.RETENTION_PURGE, name, person_id=person_id, faces=faces, detail=detail)
                    )
            self._record(collection, entries, RETENTION)
        if people:
            log.info("retention: purged %d faces of %d people from %s", purged, len(people), name)
        return purged

    def compact_erased(self) -> list[str]:
        """Starts rewriting the files of each collection with faces erased since its last rewrite, where the store
        needs it (so that erased descriptors leave the disk); returns the collections whose rewrite started."""
        started = []
        for collection in self._store.list_collections():
            try:
                if self._store.compact(collection.name):
                    started.append(collection.name)
            except CollectionNotFound:  # deleted meanwhile
                continue
        return started

    # --- helpers -------------------------------------------------------------------------------------

    def _collection(self, name: str) -> Collection:
        """The collection's settings as kept by this registry (reads, searches); ``CollectionNotFound`` when absent."""
        validate_collection_name(name)
        collection = self._settings.get(name, self._store.get_collection)
        if collection is None:
            raise CollectionNotFound(f"collection {name!r} does not exist")
        return collection

    def _fresh_collection(self, name: str) -> Collection:
        """The collection's settings read from the store (and kept); ``CollectionNotFound`` when absent."""
        validate_collection_name(name)
        collection = self._settings.refresh(name, self._store.get_collection)
        if collection is None:
            raise CollectionNotFound(f"collection {name!r} does not exist")
        return collection

    def _searched(self, name: str, queries: Sequence[VectorQuery]) -> list[list[ScoredFace]]:
        try:
            return self._store.search(name, queries)
        except CollectionNotFound:
            # Deleted elsewhere (another replica) since its settings were kept here.
            self._settings.drop(name)
            raise

    def _status(self, collection: Collection) -> CollectionStatus:
        counts = Counts(
            faces=self._store.count_faces(collection.name), people=self._store.count_people(collection.name)
        )
        return CollectionStatus(collection=collection, counts=counts)

    def _record(self, collection: Collection, entries: Sequence[AuditEntry], caller: Caller) -> None:
        """Appends the entries to the collection's tenant's record (durable when it returns), with the caller;
        transient collections are not recorded."""
        if collection.transient or not entries:
            return
        self._audit.append(
            collection.tenant, [replace(e, actor=caller.actor, request_id=caller.request_id) for e in entries]
        )

    def _known_attributes(self, name: str, person_ids: Sequence[str]) -> dict[str, PersonAttributes]:
        people = _people(self._store.faces_of(name, person_ids))
        return {p.person_id: PersonAttributes(p.person_id, p.display_name, dict(p.metadata)) for p in people}


def _validate_faces(faces: Sequence[FaceRecord], collection: Collection) -> list[FaceRecord]:
    checked = [validate_face(face, collection) for face in faces]
    seen: set[str] = set()
    for face in checked:
        if face.face_id in seen:
            raise InvalidFace(f"face_id {face.face_id!r} appears twice in one request")
        seen.add(face.face_id)
    return checked


def _validate_people(people: Sequence[PersonAttributes]) -> dict[str, PersonAttributes]:
    given: dict[str, PersonAttributes] = {}
    for person in people:
        validate_person_attributes(person)
        if person.person_id in given:
            raise InvalidPerson(f"attributes for person {person.person_id!r} appear twice in one request")
        metadata = {key: value for key, value in person.metadata.items() if value != ""}
        given[person.person_id] = PersonAttributes(person.person_id, person.display_name, metadata)
    return given


def _people(faces: Sequence[FaceSummary]) -> list[Person]:
    """People (ordered by id) from their faces; face ids ordered; attributes as on any face of theirs."""
    by_person: dict[str, list[FaceSummary]] = {}
    for face in faces:
        by_person.setdefault(face.person.person_id, []).append(face)
    people = []
    for person_id in sorted(by_person):
        person_faces = sorted(by_person[person_id], key=lambda f: f.face_id)
        attributes = person_faces[0].person
        people.append(
            Person(
                person_id=person_id,
                display_name=attributes.display_name,
                metadata=dict(attributes.metadata),
                face_ids=tuple(face.face_id for face in person_faces),
            )
        )
    return people


def _match(face: ScoredFace) -> Match:
    return Match(person_id=face.person_id, face_id=face.face_id, distance=face.distance, display_name=face.display_name)
