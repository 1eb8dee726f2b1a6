"""Fakes of the gateway's two seams (``clients.Embedder`` and ``clients.Registry``), for unit tests of its domain.

Both real paths are tested end to end (tests/e2e, tests/registry_service); these stand in for them where a
test needs a photo to show given faces, a slow embedder, or to count what the domain asks the registry.
The fake registry keeps faces in memory and answers searches by exact distance, one result per person.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import SupportsIndex

import numpy as np
from google.rpc import error_details_pb2

from facerec.runtime import context, errors
from facerec.runtime.deadlines import Deadline
from facerec_gateway.auth import ANY_COLLECTION, Tenant
from facerec_gateway.collections import CollectionCache
from facerec_gateway.decisions import DecisionSettings, GallerySize
from facerec_gateway.domain import (
    AuditEvent,
    AuditPage,
    Box,
    EmbeddedPhoto,
    Embedding,
    Face,
    FaceQuality,
    FaceRecord,
    FacesPage,
    ImageSize,
    Match,
    Model,
    MovedFace,
    PeoplePage,
    Person,
    PersonUpdate,
    SearchQuery,
    SettingsUpdate,
    StoredCollection,
    Vector,
)
from facerec_gateway.enrollment import QualityPolicy
from facerec_gateway.policy import RecognitionPolicy
from facerec_gateway.recognition import FaceRecognition

MODEL = Model(model_id="dlib_resnet_v1", dimension=4)
GOOD = FaceQuality(face_size_px=120, interocular_px=60, sharpness=2.5, frontality=0.9)


def vector(*values: float) -> Vector:
    """A descriptor of the fake model (4 values; unit length not required)."""
    return np.asarray(values, dtype=np.float32)


def face(descriptor: Vector | None, *, x: int = 0, size: int = 120, quality: FaceQuality = GOOD) -> Face:
    """A face at ``x`` with ``descriptor`` (None: detection only)."""
    embedding = None if descriptor is None else Embedding(descriptor, MODEL.model_id)
    return Face(Box(x, 0, size, size), None, 0.99, quality, embedding, index=0)


class FakeEmbedder:
    """Photos are their bytes: ``photos[image]`` are the faces that photo shows (unknown bytes: INVALID_ARGUMENT).

    ``delay_s[image]`` makes a photo take that long, within the caller's deadline. ``in_flight_limit`` refuses
    calls past that many at once as the real embedder does (RESOURCE_EXHAUSTED advising ``retry_after_s``);
    ``too_large`` photos are refused as over a limit (RESOURCE_EXHAUSTED advising nothing).
    """

    def __init__(self) -> None:
        self.photos: dict[bytes, tuple[Face, ...]] = {}
        self.delay_s: dict[bytes, float] = {}
        self.calls = 0
        self.in_flight_limit: int | None = None
        self.retry_after_s = 0.01
        self.refused = 0
        self.too_large: set[bytes] = set()
        self._in_flight = 0

    def shows(self, image: bytes, *faces: Face) -> bytes:
        """Make ``image`` a photo of ``faces`` (largest first, as the embedder orders them)."""
        self.photos[image] = tuple(dataclasses.replace(f, index=i) for i, f in enumerate(faces))
        return image

    async def embed_photo(self, image: bytes, deadline: Deadline, *, detect_only: bool = False) -> EmbeddedPhoto:
        self.calls += 1
        if image in self.too_large:
            raise errors.ResourceExhausted("the photo is 40 MB; the limit is 20 MB")
        if self.in_flight_limit is not None and self._in_flight >= self.in_flight_limit:
            self.refused += 1
            advice = error_details_pb2.RetryInfo()
            advice.retry_delay.FromTimedelta(timedelta(seconds=self.retry_after_s))
            raise errors.ResourceExhausted("the embedder is overloaded; may be retried", [advice])
        self._in_flight += 1
        try:
            return await self._embedded(image, deadline, detect_only)
        finally:
            self._in_flight -= 1

    async def _embedded(self, image: bytes, deadline: Deadline, detect_only: bool) -> EmbeddedPhoto:
        delay = self.delay_s.get(image, 0.0)
        if delay:
            remaining = deadline.remaining()
            await asyncio.sleep(min(delay, remaining))
            if delay >= remaining:
                raise errors.DeadlineExceeded("deadline exceeded waiting for the embedder")
        if image not in self.photos:
            raise errors.InvalidArgument("cannot identify image file")
        faces = self.photos[image]
        if detect_only:
            faces = tuple(f.without_embedding() for f in faces)
        return EmbeddedPhoto(ImageSize(640, 480), faces, MODEL.model_id)

    async def model(self, deadline: Deadline) -> Model:
        return MODEL

    async def serving(self) -> bool:
        return True


@dataclasses.dataclass
class _Stored:
    collection: StoredCollection
    faces: dict[str, FaceRecord] = dataclasses.field(default_factory=dict)
    people: dict[str, Person] = dataclasses.field(default_factory=dict)


class _CallLog(list[str]):
    """The names of the calls made, recording beside each the actor the call was made for."""

    def __init__(self, actors: list[str]) -> None:
        super().__init__()
        self._actors = actors

    def append(self, name: str) -> None:
        super().append(name)
        self._actors.append(context.actor.get())

    def pop(self, index: SupportsIndex = -1) -> str:
        self._actors.pop(index)
        return super().pop(index)


class FakeRegistry:
    """The registry in memory; ``calls`` names every call made, in order (``GetCollection`` with its mode), and
    ``actors`` the actor each call was made for (``facerec.runtime.context.actor``, as the real client sends it).

    ``audit`` is the record ``list_audit_events`` reads (events added by tests, in registry names), paged by index.
    """

    def __init__(self) -> None:
        self.stored: dict[str, _Stored] = {}
        self.actors: list[str] = []
        self.calls: list[str] = _CallLog(self.actors)
        self.searches: list[SearchQuery] = []
        self.audit: list[AuditEvent] = []
        self.audit_queries: list[dict[str, object]] = []

    # ------------------------------------------------------------------------------------------ test helpers

    def add_collection(
        self, name: str, *, threshold: float = 0.6, target_fpir: float = 0.0, min_margin: float = 0.0
    ) -> None:
        """A collection of the fake model under registry name ``name`` (``tenant__collection``)."""
        settings = DecisionSettings(threshold, target_fpir, min_margin)
        self.stored[name] = _Stored(
            StoredCollection(name, name.split("__")[0], MODEL.model_id, MODEL.dimension, settings, datetime.now(UTC))
        )

    def add_face(self, collection: str, person_id: str, descriptor: Vector, face_id: str = "") -> None:
        """Store a face of ``person_id`` directly."""
        face_id = face_id or f"{person_id}-{len(self.stored[collection].faces)}"
        self._store(collection, [FaceRecord(face_id, person_id, descriptor, MODEL.model_id)])

    # ------------------------------------------------------------------------------------------ the seam

    async def create_collection(self, collection: StoredCollection, deadline: Deadline) -> StoredCollection:
        self.calls.append("CreateCollection")
        if collection.name not in self.stored:
            self.stored[collection.name] = _Stored(dataclasses.replace(collection, created_at=datetime.now(UTC)))
        return self._counted(collection.name)

    async def get_collection(self, name: str, deadline: Deadline, *, settings_only: bool = False) -> StoredCollection:
        self.calls.append("GetCollection(settings)" if settings_only else "GetCollection(counts)")
        found = self._collection(name)
        return found.collection if settings_only else self._counted(name)

    async def list_collections(self, tenant: str, deadline: Deadline) -> list[StoredCollection]:
        self.calls.append("ListCollections")
        # As the registry: transient (working) collections are in no listing.
        return [
            self._counted(n)
            for n, s in sorted(self.stored.items())
            if s.collection.tenant == tenant and not s.collection.transient
        ]

    async def update_collection(self, name: str, update: SettingsUpdate, deadline: Deadline) -> StoredCollection:
        self.calls.append("UpdateCollection")
        stored = self._collection(name)
        old = stored.collection.settings
        settings = DecisionSettings(
            old.threshold if update.threshold is None else update.threshold,
            old.target_fpir if update.target_fpir is None else update.target_fpir,
            old.min_margin if update.min_margin is None else update.min_margin,
        )
        retention = update.retention_seconds
        retention = stored.collection.retention_seconds if retention is None else retention
        stored.collection = dataclasses.replace(stored.collection, settings=settings, retention_seconds=retention)
        return self._counted(name)

    async def delete_collection(self, name: str, deadline: Deadline) -> int:
        self.calls.append("DeleteCollection")
        return len(self.stored.pop(name).faces) if name in self.stored else 0

    async def upsert_faces(self, collection: str, faces: Sequence[FaceRecord], deadline: Deadline) -> int:
        self.calls.append("UpsertFaces")
        self._store(collection, faces)
        return len(faces)

    async def search(self, collection: str, query: SearchQuery, deadline: Deadline) -> list[list[Match]]:
        self.calls.append("Search")
        self.searches.append(query)
        stored = self._collection(collection)
        faces = [f for f in stored.faces.values() if not query.person_id or f.person_id == query.person_id]
        results = []
        for vector_ in query.vectors:
            scored = sorted(((float(np.linalg.norm(f.embedding - vector_)), f) for f in faces), key=lambda s: s[0])
            matches: list[Match] = []
            seen: set[str] = set()
            for distance, f in scored:
                if query.max_distance is not None and distance > query.max_distance:
                    break
                if query.all_faces or f.person_id not in seen:
                    seen.add(f.person_id)
                    name = stored.people[f.person_id].display_name
                    matches.append(Match(f.person_id, f.face_id, distance, name))
            results.append(matches[: query.top_k])
        return results

    async def list_faces(
        self,
        collection: str,
        deadline: Deadline,
        *,
        page_size: int,
        page_token: str,
        include_embeddings: bool,
        person_id: str = "",
    ) -> FacesPage:
        self.calls.append("ListFaces")
        faces = sorted(self._collection(collection).faces.values(), key=lambda f: (f.person_id, f.face_id))
        faces = [f for f in faces if not person_id or f.person_id == person_id]
        start = int(page_token or 0)
        page = faces[start : start + page_size]
        if not include_embeddings:
            page = [dataclasses.replace(f, embedding=np.zeros(0, dtype=np.float32)) for f in page]
        following = start + page_size
        return FacesPage(tuple(page), str(following) if following < len(faces) else "")

    async def get_person(self, collection: str, person_id: str, deadline: Deadline) -> Person:
        self.calls.append("GetPerson")
        person = self._collection(collection).people.get(person_id)
        if person is None:
            raise errors.NotFound(f"no person {person_id!r}")
        return person

    async def list_people(self, collection: str, page_size: int, page_token: str, deadline: Deadline) -> PeoplePage:
        self.calls.append("ListPeople")
        people = sorted(self._collection(collection).people.values(), key=lambda p: p.person_id)
        return PeoplePage(tuple(people[:page_size]), "")

    async def update_person(self, collection: str, update: PersonUpdate, deadline: Deadline) -> Person:
        self.calls.append("UpdatePerson")
        person = await self.get_person(collection, update.person_id, deadline)
        self.calls.pop()
        metadata = {} if update.replace_metadata else dict(person.metadata)
        metadata.update(update.metadata)
        name = person.display_name if update.display_name is None else update.display_name
        changed = dataclasses.replace(person, display_name=name, metadata=metadata)
        self._collection(collection).people[update.person_id] = changed
        return changed

    async def delete_person(self, collection: str, person_id: str, deadline: Deadline) -> int:
        self.calls.append("DeletePerson")
        stored = self._collection(collection)
        doomed = [i for i, f in stored.faces.items() if f.person_id == person_id]
        for face_id in doomed:
            del stored.faces[face_id]
        stored.people.pop(person_id, None)
        return len(doomed)

    async def delete_face(self, collection: str, face_id: str, deadline: Deadline) -> str | None:
        self.calls.append("DeleteFace")
        stored = self._collection(collection)
        record = stored.faces.pop(face_id, None)
        if record is None:
            return None
        self._forget_face(stored, record)
        return record.person_id

    async def move_face(self, collection: str, face_id: str, to_person_id: str, deadline: Deadline) -> MovedFace:
        self.calls.append("MoveFace")
        stored = self._collection(collection)
        record = stored.faces.get(face_id)
        if record is None:
            raise errors.NotFound(f"no face {face_id!r} in collection {collection!r}")
        if record.person_id != to_person_id:
            self._forget_face(stored, stored.faces.pop(face_id))
            self._store(collection, [dataclasses.replace(record, person_id=to_person_id)])
        moved = dataclasses.replace(stored.faces[face_id], embedding=np.zeros(0, dtype=np.float32))
        return MovedFace(face=moved, from_person_id=record.person_id)

    async def list_audit_events(
        self,
        tenant: str,
        deadline: Deadline,
        *,
        since: datetime | None = None,
        collection: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> AuditPage:
        self.calls.append("ListAuditEvents")
        self.audit_queries.append(
            {"tenant": tenant, "since": since, "collection": collection, "page_size": page_size, "token": page_token}
        )
        events = [
            e
            for e in self.audit
            if e.collection.startswith(f"{tenant}__")
            and (not collection or e.collection == collection)
            and (since is None or (e.time is not None and e.time >= since))
        ]
        start = int(page_token or 0)
        following = start + (page_size or 100)
        return AuditPage(tuple(events[start:following]), str(following) if following < len(events) else "")

    async def serving(self) -> bool:
        return True

    # ------------------------------------------------------------------------------------------ helpers

    def _forget_face(self, stored: _Stored, record: FaceRecord) -> None:
        person = stored.people[record.person_id]
        ids = tuple(i for i in person.face_ids if i != record.face_id)
        if ids:
            stored.people[record.person_id] = dataclasses.replace(person, face_ids=ids, face_count=len(ids))
        else:
            del stored.people[record.person_id]

    def _collection(self, name: str) -> _Stored:
        if name not in self.stored:
            raise errors.NotFound(f"collection {name!r} does not exist")
        return self.stored[name]

    def _counted(self, name: str) -> StoredCollection:
        stored = self.stored[name]
        size = GallerySize(people=len(stored.people), faces=len(stored.faces))
        return dataclasses.replace(stored.collection, size=size)

    def _store(self, collection: str, faces: Sequence[FaceRecord]) -> None:
        stored = self._collection(collection)
        for record in faces:
            if record.enrolled_at is None:  # the registry dates each face it stores
                record = dataclasses.replace(record, enrolled_at=datetime.now(UTC))
            stored.faces[record.face_id] = record
            person = stored.people.get(record.person_id, Person(record.person_id))
            ids = tuple(sorted({*person.face_ids, record.face_id}))
            stored.people[record.person_id] = dataclasses.replace(person, face_ids=ids, face_count=len(ids))


# ------------------------------------------------------------------------------------------ the domain over the fakes

TENANT = Tenant("acme", frozenset({ANY_COLLECTION}))
POLICY = RecognitionPolicy(
    default_threshold=0.6,
    default_collection="default",
    quality=QualityPolicy(min_face_size_px=20, min_sharpness=0.6, min_frontality=0.3),
    stream_message_timeout_s=60.0,
)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def recognition(
    embedder: FakeEmbedder, registry: FakeRegistry, *, clock: Clock | None = None, policy: RecognitionPolicy = POLICY
) -> FaceRecognition:
    """The gateway's domain over the two fakes, its collection cache on ``clock`` (default: the real one)."""
    cache = CollectionCache(clock=clock) if clock is not None else None
    return FaceRecognition(embedder, registry, policy, cache=cache)
