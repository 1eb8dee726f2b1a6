"""The gateway's clients of the embedder and the registry, behind small Protocols that speak domain values.

The Protocols are the domain's seams (unit tests put fakes behind them); the gRPC clients convert domain values
to the internal protos and back, here and nowhere else.

gRPC errors of a dependency are translated where they enter: UNAVAILABLE -> :class:`DependencyUnavailable`
naming the dependency, DEADLINE_EXCEEDED -> :class:`DependencyDeadline`, and the caller-caused codes
(INVALID_ARGUMENT, NOT_FOUND, ...) -> the same category with the dependency's message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from facerec.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from facerec.registry.v1 import registry_pb2, registry_pb2_grpc
from facerec.runtime import errors
from facerec.runtime.channels import open_channel
from facerec.runtime.deadlines import Deadline
from facerec.v1 import audit_pb2
from facerec_gateway.decisions import DecisionSettings, GallerySize
from facerec_gateway.domain import (
    AuditAction,
    AuditEvent,
    AuditPage,
    EmbeddedPhoto,
    FaceRecord,
    FacesPage,
    Match,
    Model,
    MovedFace,
    PeoplePage,
    Person,
    PersonUpdate,
    SearchQuery,
    SettingsUpdate,
    StoredCollection,
)
from facerec_gateway.errors import DependencyDeadline, DependencyUnavailable, retry_advice
from facerec_gateway.face_messages import face_from_message, image_size_from_message

R = TypeVar("R")
A = TypeVar("A")
B = TypeVar("B")

_PASSED_THROUGH: dict[grpc.StatusCode, type[errors.FacerecError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: errors.InvalidArgument,
    grpc.StatusCode.NOT_FOUND: errors.NotFound,
    grpc.StatusCode.ALREADY_EXISTS: errors.AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: errors.FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: errors.ResourceExhausted,
    grpc.StatusCode.OUT_OF_RANGE: errors.InvalidArgument,
}


async def _call(dependency: str, call: Callable[[], Awaitable[R]]) -> R:
    try:
        return await call()
    except grpc.aio.AioRpcError as error:
        code, message = error.code(), error.details() or ""
        if code == grpc.StatusCode.UNAVAILABLE:
            raise DependencyUnavailable(f"{dependency} is unavailable: {message}") from error
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            raise DependencyDeadline(f"deadline exceeded waiting for the {dependency}") from error
        category = _PASSED_THROUGH.get(code)
        if category is not None:
            raise category(message, retry_advice(error)) from error
        raise DependencyUnavailable(f"{dependency} failed ({code.name}): {message}") from error


async def concurrently(first: Awaitable[A], second: Awaitable[B]) -> tuple[A, B]:
    """Both results of two calls made at once; when one fails, the other is cancelled and the failure raised as is.

    Unlike ``asyncio.gather``, a call to one dependency does not go on for nobody after the other failed (with
    the registry down, every retried Identify would otherwise leave an embedding running and fill the
    embedder's places); unlike a ``TaskGroup``, the error is not wrapped in an ``ExceptionGroup``.
    """
    tasks = (asyncio.ensure_future(first), asyncio.ensure_future(second))
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in tasks:
            error = task.exception() if task.done() else None
            if error is not None:
                raise error
        return tasks[0].result(), tasks[1].result()
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
                task.add_done_callback(_drop_result)


def _drop_result(task: asyncio.Future[Any]) -> None:
    """Retrieve a cancelled call's outcome, so that asyncio does not log it as never retrieved."""
    if not task.cancelled():
        task.exception()


def _status_channel(address: str, credentials: grpc.ChannelCredentials | None) -> grpc.aio.Channel:
    """A channel for a dependency's health alone: it picks only replicas whose health says SERVING, so its check
    answers SERVING while any replica can serve (round-robin over the calls' own channel would ask one replica
    in turn, and report a mixed set of replicas as flapping)."""
    return open_channel(address, max_message_bytes=1 << 20, retry=False, credentials=credentials, health_checked=True)


async def _serving(channel: grpc.aio.Channel, timeout_s: float) -> bool:
    try:
        response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout_s)
    except grpc.aio.AioRpcError:
        return False
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)


class Embedder(Protocol):
    """What the gateway asks of the embedder."""

    async def embed_photo(self, image: bytes, deadline: Deadline, *, detect_only: bool = False) -> EmbeddedPhoto:
        """Every face of the photo, largest first (descriptors left out with ``detect_only``)."""
        ...

    async def model(self, deadline: Deadline) -> Model:
        """The model the embedder serves."""
        ...

    async def serving(self) -> bool:
        """Whether an embedder replica answers its health check as SERVING (the embedder can serve)."""
        ...


class Registry(Protocol):
    """What the gateway asks of the registry: one method per registry RPC it uses, in domain values.

    Collections are named by their registry names (``StoredCollection.name``).
    """

    async def create_collection(self, collection: StoredCollection, deadline: Deadline) -> StoredCollection:
        """Create it (identical settings: the existing one); the answer has its size."""
        ...

    async def get_collection(self, name: str, deadline: Deadline, *, settings_only: bool = False) -> StoredCollection:
        """The collection; with ``settings_only`` without its size (the registry then counts nothing)."""
        ...

    async def list_collections(self, tenant: str, deadline: Deadline) -> list[StoredCollection]:
        """The tenant's collections, with their sizes."""
        ...

    async def update_collection(self, name: str, update: SettingsUpdate, deadline: Deadline) -> StoredCollection:
        """Change its decision settings; the answer has its size."""
        ...

    async def delete_collection(self, name: str, deadline: Deadline) -> int:
        """Delete it; how many faces were deleted."""
        ...

    async def upsert_faces(self, collection: str, faces: Sequence[FaceRecord], deadline: Deadline) -> int:
        """Insert or replace faces by id; how many were written."""
        ...

    async def search(self, collection: str, query: SearchQuery, deadline: Deadline) -> list[list[Match]]:
        """Nearest faces of each query descriptor, nearest first, in query order."""
        ...

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
        """One page of the collection's faces (only ``person_id``'s when given), ordered by person then face id."""
        ...

    async def delete_face(self, collection: str, face_id: str, deadline: Deadline) -> str | None:
        """Delete one face; the person it belonged to, None when no face had that id."""
        ...

    async def move_face(self, collection: str, face_id: str, to_person_id: str, deadline: Deadline) -> MovedFace:
        """Give one face to another person (NOT_FOUND when no face has that id); the face as stored now."""
        ...

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
        """One page of the tenant's audit record, oldest first; only one (registry) collection's when given."""
        ...

    async def get_person(self, collection: str, person_id: str, deadline: Deadline) -> Person:
        """The person (NOT_FOUND when no face of theirs is stored)."""
        ...

    async def list_people(self, collection: str, page_size: int, page_token: str, deadline: Deadline) -> PeoplePage:
        """One page of people, ordered by id."""
        ...

    async def update_person(self, collection: str, update: PersonUpdate, deadline: Deadline) -> Person:
        """Change the person's attributes; the person after the change."""
        ...

    async def delete_person(self, collection: str, person_id: str, deadline: Deadline) -> int:
        """Erase every face of the person; how many were erased."""
        ...

    async def serving(self) -> bool:
        """Whether a registry replica answers its health check as SERVING (the registry can serve)."""
        ...


class EmbedderClient:
    """The embedder over gRPC. Its calls are idempotent: UNAVAILABLE is retried by the channel."""

    name = "embedder"

    def __init__(
        self, address: str, max_message_bytes: int, credentials: grpc.ChannelCredentials | None = None
    ) -> None:
        self.address = address
        self._channel = open_channel(address, max_message_bytes=max_message_bytes, retry=True, credentials=credentials)
        self._status = _status_channel(address, credentials)
        self._stub = embedder_pb2_grpc.EmbedderStub(self._channel)

    async def embed_photo(self, image: bytes, deadline: Deadline, *, detect_only: bool = False) -> EmbeddedPhoto:
        request = embedder_pb2.EmbedPhotoRequest(image=image, detect_only=detect_only)
        response = await _call(self.name, lambda: self._stub.EmbedPhoto(request, timeout=deadline.remaining()))
        return EmbeddedPhoto(
            image_size=image_size_from_message(response.image_size),
            faces=tuple(face_from_message(face) for face in response.faces),
            model_id=response.model_id,
        )

    async def model(self, deadline: Deadline) -> Model:
        request = embedder_pb2.GetModelRequest()
        info = await _call(self.name, lambda: self._stub.GetModel(request, timeout=deadline.remaining()))
        return Model(model_id=info.model_id, dimension=info.dimension)

    async def serving(self) -> bool:
        return await _serving(self._status, timeout_s=1.0)

    async def close(self) -> None:
        await self._channel.close()
        await self._status.close()


class RegistryClient:
    """The registry over gRPC. Every registry write is idempotent (caller-chosen face ids), so UNAVAILABLE is
    retried by the channel for all calls."""

    name = "registry"

    def __init__(
        self, address: str, max_message_bytes: int, credentials: grpc.ChannelCredentials | None = None
    ) -> None:
        self.address = address
        self._channel = open_channel(address, max_message_bytes=max_message_bytes, retry=True, credentials=credentials)
        self._status = _status_channel(address, credentials)
        self._stub = registry_pb2_grpc.RegistryStub(self._channel)

    async def create_collection(self, collection: StoredCollection, deadline: Deadline) -> StoredCollection:
        settings = collection.settings
        request = registry_pb2.CreateCollectionRequest(
            name=collection.name,
            model_id=collection.model_id,
            dimension=collection.dimension,
            default_threshold=settings.threshold,
            tenant=collection.tenant,
            target_fpir=settings.target_fpir,
            min_margin=settings.min_margin,
            retention_seconds=collection.retention_seconds,
            transient=collection.transient,
        )
        created = await _call(self.name, lambda: self._stub.CreateCollection(request, timeout=deadline.remaining()))
        return _stored_collection(created, counted=True)

    async def get_collection(self, name: str, deadline: Deadline, *, settings_only: bool = False) -> StoredCollection:
        request = registry_pb2.GetCollectionRequest(name=name, settings_only=settings_only)
        found = await _call(self.name, lambda: self._stub.GetCollection(request, timeout=deadline.remaining()))
        return _stored_collection(found, counted=not settings_only)

    async def list_collections(self, tenant: str, deadline: Deadline) -> list[StoredCollection]:
        request = registry_pb2.ListCollectionsRequest(tenant=tenant)
        response = await _call(self.name, lambda: self._stub.ListCollections(request, timeout=deadline.remaining()))
        return [_stored_collection(c, counted=True) for c in response.collections]

    async def update_collection(self, name: str, update: SettingsUpdate, deadline: Deadline) -> StoredCollection:
        request = registry_pb2.UpdateCollectionRequest(name=name)
        if update.threshold is not None:
            request.default_threshold = update.threshold
        if update.target_fpir is not None:
            request.target_fpir = update.target_fpir
        if update.min_margin is not None:
            request.min_margin = update.min_margin
        if update.retention_seconds is not None:
            request.retention_seconds = update.retention_seconds
        updated = await _call(self.name, lambda: self._stub.UpdateCollection(request, timeout=deadline.remaining()))
        return _stored_collection(updated, counted=True)

    async def delete_collection(self, name: str, deadline: Deadline) -> int:
        request = registry_pb2.DeleteCollectionRequest(name=name)
        response = await _call(self.name, lambda: self._stub.DeleteCollection(request, timeout=deadline.remaining()))
        return int(response.faces_deleted)

    async def upsert_faces(self, collection: str, faces: Sequence[FaceRecord], deadline: Deadline) -> int:
        request = registry_pb2.UpsertFacesRequest(collection=collection, faces=[_face_record(f) for f in faces])
        response = await _call(self.name, lambda: self._stub.UpsertFaces(request, timeout=deadline.remaining()))
        return int(response.upserted)

    async def search(self, collection: str, query: SearchQuery, deadline: Deadline) -> list[list[Match]]:
        request = registry_pb2.SearchRequest(
            collection=collection,
            queries=[registry_pb2.QueryVector(values=v.tolist()) for v in query.vectors],
            top_k=query.top_k,
            all_faces=query.all_faces,
            person_id=query.person_id,
        )
        if query.max_distance is not None:
            request.max_distance = query.max_distance
        response = await _call(self.name, lambda: self._stub.Search(request, timeout=deadline.remaining()))
        return [
            [Match(m.person_id, m.face_id, m.distance, m.display_name) for m in result.matches]
            for result in response.results
        ]

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
        request = registry_pb2.ListFacesRequest(
            collection=collection,
            page_size=page_size,
            page_token=page_token,
            include_embeddings=include_embeddings,
            person_id=person_id,
        )
        response = await _call(self.name, lambda: self._stub.ListFaces(request, timeout=deadline.remaining()))
        return FacesPage(faces=tuple(_stored_face(f) for f in response.faces), next_page_token=response.next_page_token)

    async def delete_face(self, collection: str, face_id: str, deadline: Deadline) -> str | None:
        request = registry_pb2.DeleteFaceRequest(collection=collection, face_id=face_id)
        response = await _call(self.name, lambda: self._stub.DeleteFace(request, timeout=deadline.remaining()))
        return response.person_id if response.deleted else None

    async def move_face(self, collection: str, face_id: str, to_person_id: str, deadline: Deadline) -> MovedFace:
        request = registry_pb2.MoveFaceRequest(collection=collection, face_id=face_id, to_person_id=to_person_id)
        response = await _call(self.name, lambda: self._stub.MoveFace(request, timeout=deadline.remaining()))
        return MovedFace(face=_stored_face(response.face), from_person_id=response.from_person_id)

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
        request = registry_pb2.ListAuditEventsRequest(
            tenant=tenant, collection=collection, page_size=page_size, page_token=page_token
        )
        if since is not None:
            request.since.FromDatetime(since.astimezone(UTC))
        response = await _call(self.name, lambda: self._stub.ListAuditEvents(request, timeout=deadline.remaining()))
        return AuditPage(
            events=tuple(_audit_event(e) for e in response.events), next_page_token=response.next_page_token
        )

    async def get_person(self, collection: str, person_id: str, deadline: Deadline) -> Person:
        request = registry_pb2.GetPersonRequest(collection=collection, person_id=person_id)
        return _person(await _call(self.name, lambda: self._stub.GetPerson(request, timeout=deadline.remaining())))

    async def list_people(self, collection: str, page_size: int, page_token: str, deadline: Deadline) -> PeoplePage:
        request = registry_pb2.ListPeopleRequest(collection=collection, page_size=page_size, page_token=page_token)
        page = await _call(self.name, lambda: self._stub.ListPeople(request, timeout=deadline.remaining()))
        return PeoplePage(people=tuple(_person(p) for p in page.people), next_page_token=page.next_page_token)

    async def update_person(self, collection: str, update: PersonUpdate, deadline: Deadline) -> Person:
        request = registry_pb2.UpdatePersonRequest(
            collection=collection,
            person_id=update.person_id,
            metadata=dict(update.metadata),
            replace_metadata=update.replace_metadata,
        )
        if update.display_name is not None:
            request.display_name = update.display_name
        return _person(await _call(self.name, lambda: self._stub.UpdatePerson(request, timeout=deadline.remaining())))

    async def delete_person(self, collection: str, person_id: str, deadline: Deadline) -> int:
        request = registry_pb2.DeletePersonRequest(collection=collection, person_id=person_id)
        response = await _call(self.name, lambda: self._stub.DeletePerson(request, timeout=deadline.remaining()))
        return int(response.faces_deleted)

    async def serving(self) -> bool:
        return await _serving(self._status, timeout_s=1.0)

    async def close(self) -> None:
        await self._channel.close()
        await self._status.close()


def _stored_collection(message: registry_pb2.Collection, *, counted: bool) -> StoredCollection:
    """The domain collection of a registry message; its size only when the registry counted."""
    return StoredCollection(
        name=message.name,
        tenant=message.tenant,
        model_id=message.model_id,
        dimension=message.dimension,
        settings=DecisionSettings(
            threshold=message.default_threshold, target_fpir=message.target_fpir, min_margin=message.min_margin
        ),
        created_at=message.created_at.ToDatetime(tzinfo=UTC) if message.HasField("created_at") else None,
        size=GallerySize(people=message.person_count, faces=message.face_count) if counted else None,
        retention_seconds=message.retention_seconds,
        transient=message.transient,
    )


def _stored_face(message: registry_pb2.FaceRecord) -> FaceRecord:
    """The domain face of a registry record (its descriptor empty unless it was asked for)."""
    return FaceRecord(
        face_id=message.face_id,
        person_id=message.person_id,
        embedding=np.asarray(message.embedding, dtype=np.float32),
        model_id=message.model_id,
        metadata=dict(message.metadata),
        enrolled_at=message.enrolled_at.ToDatetime(tzinfo=UTC) if message.HasField("enrolled_at") else None,
    )


def _audit_event(message: audit_pb2.AuditEvent) -> AuditEvent:
    """The domain event of a record the registry kept (an action this gateway does not know reads as unspecified)."""
    action = message.action
    return AuditEvent(
        sequence=message.sequence,
        time=message.time.ToDatetime(tzinfo=UTC) if message.HasField("time") else None,
        action=AuditAction(action) if action in AuditAction._value2member_map_ else AuditAction.UNSPECIFIED,
        collection=message.collection,
        person_id=message.person_id,
        face_id=message.face_id,
        faces=message.faces,
        request_id=message.request_id,
        actor=message.actor,
        detail=message.detail,
    )


def _face_record(face: FaceRecord) -> registry_pb2.FaceRecord:
    return registry_pb2.FaceRecord(
        face_id=face.face_id,
        person_id=face.person_id,
        embedding=face.embedding.tolist(),
        model_id=face.model_id,
        metadata=dict(face.metadata),
    )


def _person(message: registry_pb2.Person) -> Person:
    return Person(
        person_id=message.person_id,
        display_name=message.display_name,
        metadata=dict(message.metadata),
        face_count=message.face_count,
        face_ids=tuple(message.face_ids),
    )
