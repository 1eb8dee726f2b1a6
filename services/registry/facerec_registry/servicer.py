"""The registry's gRPC servicer: converts protos to domain values and back, and calls the ``Registry``.

Thin on purpose: no rules live here. Domain errors propagate; the shared error interceptor maps them to
status codes. The ``Registry`` blocks (the stores do), so each call runs in a worker thread and searches
proceed while writes are in flight. Writes name their ``Caller`` for the audit record: the ``x-facerec-actor``
metadata and the request id the shared interceptor took from ``x-request-id``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import grpc
import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp
from typing_extensions import override

from facerec import limits
from facerec.registry.v1 import registry_pb2 as pb
from facerec.registry.v1 import registry_pb2_grpc as pb_grpc
from facerec.runtime import context as call_context
from facerec.runtime.stages import StageTimer
from facerec.v1 import audit_pb2
from facerec_registry.audit import AuditEvent, Caller
from facerec_registry.domain import (
    Collection,
    CollectionStatus,
    CollectionUpdate,
    FaceRecord,
    Match,
    Person,
    PersonAttributes,
    PersonUpdate,
    SearchQuery,
)
from facerec_registry.errors import InvalidPageRequest
from facerec_registry.registry import Registry

Context = grpc.aio.ServicerContext[object, object]

STAGES = StageTimer("registry")


def caller_of(context: Context) -> Caller:
    """Who the call acts for (``x-facerec-actor``) and its request id, as the audit record names them."""
    actor = ""
    for key, value in context.invocation_metadata() or ():
        if key == call_context.ACTOR_HEADER and isinstance(value, str):
            actor = value
    return Caller.named(actor, call_context.request_id.get())


class RegistryServicer(pb_grpc.RegistryServicer):
    """``facerec.registry.v1.Registry`` over a ``Registry``."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    @override
    async def CreateCollection(self, request: pb.CreateCollectionRequest, context: Context) -> pb.Collection:
        status = await asyncio.to_thread(
            self._registry.create_collection,
            request.name,
            request.model_id,
            request.dimension,
            request.default_threshold,
            request.tenant,
            request.target_fpir,
            request.min_margin,
            request.retention_seconds,
            request.transient,
            caller_of(context),
        )
        return collection_to_proto(status)

    @override
    async def GetCollection(self, request: pb.GetCollectionRequest, context: Context) -> pb.Collection:
        if request.settings_only:
            return settings_to_proto(await asyncio.to_thread(self._registry.collection_settings, request.name))
        return collection_to_proto(await asyncio.to_thread(self._registry.get_collection, request.name))

    @override
    async def ListCollections(self, request: pb.ListCollectionsRequest, context: Context) -> pb.ListCollectionsResponse:
        tenant = request.tenant if request.HasField("tenant") else None
        collections = await asyncio.to_thread(self._registry.list_collections, tenant)
        return pb.ListCollectionsResponse(collections=[collection_to_proto(c) for c in collections])

    @override
    async def UpdateCollection(self, request: pb.UpdateCollectionRequest, context: Context) -> pb.Collection:
        update = CollectionUpdate(
            default_threshold=request.default_threshold if request.HasField("default_threshold") else None,
            target_fpir=request.target_fpir if request.HasField("target_fpir") else None,
            min_margin=request.min_margin if request.HasField("min_margin") else None,
            retention_seconds=request.retention_seconds if request.HasField("retention_seconds") else None,
        )
        status = await asyncio.to_thread(self._registry.update_collection, request.name, update, caller_of(context))
        return collection_to_proto(status)

    @override
    async def DeleteCollection(
        self, request: pb.DeleteCollectionRequest, context: Context
    ) -> pb.DeleteCollectionResponse:
        deleted = await asyncio.to_thread(self._registry.delete_collection, request.name, caller_of(context))
        return pb.DeleteCollectionResponse(faces_deleted=deleted)

    @override
    async def UpsertFaces(self, request: pb.UpsertFacesRequest, context: Context) -> pb.UpsertFacesResponse:
        faces = [face_from_proto(face) for face in request.faces]
        people = [PersonAttributes(p.person_id, p.display_name, dict(p.metadata)) for p in request.people]
        upserted = await asyncio.to_thread(
            self._registry.upsert_faces, request.collection, faces, people, caller_of(context)
        )
        return pb.UpsertFacesResponse(upserted=upserted)

    @override
    async def Search(self, request: pb.SearchRequest, context: Context) -> pb.SearchResponse:
        query = SearchQuery(
            vectors=[np.asarray(q.values, dtype=np.float32) for q in request.queries],
            top_k=request.top_k,
            max_distance=request.max_distance if request.HasField("max_distance") else None,
            all_faces=request.all_faces,
            metadata_filter=dict(request.metadata_filter),
            person_id=request.person_id,
        )
        with STAGES.time("search"):
            results = await asyncio.to_thread(self._registry.search, request.collection, query)
        return pb.SearchResponse(
            results=[pb.SearchResult(matches=[match_to_proto(m) for m in result]) for result in results]
        )

    @override
    async def DeleteFace(self, request: pb.DeleteFaceRequest, context: Context) -> pb.DeleteFaceResponse:
        owner = await asyncio.to_thread(
            self._registry.delete_face, request.collection, request.face_id, caller_of(context)
        )
        return pb.DeleteFaceResponse(deleted=owner is not None, person_id=owner or "")

    @override
    async def ListFaces(self, request: pb.ListFacesRequest, context: Context) -> pb.ListFacesResponse:
        page = await asyncio.to_thread(
            self._registry.list_faces,
            request.collection,
            request.page_size,
            request.page_token,
            request.person_id,
            request.include_embeddings,
        )
        return pb.ListFacesResponse(
            faces=[face_to_proto(face) for face in page.faces], next_page_token=page.next_page_token
        )

    @override
    async def GetPerson(self, request: pb.GetPersonRequest, context: Context) -> pb.Person:
        person = await asyncio.to_thread(self._registry.get_person, request.collection, request.person_id)
        return person_to_proto(person)

    @override
    async def ListPeople(self, request: pb.ListPeopleRequest, context: Context) -> pb.ListPeopleResponse:
        page = await asyncio.to_thread(
            self._registry.list_people, request.collection, request.page_size, request.page_token
        )
        return pb.ListPeopleResponse(
            people=[person_to_proto(p) for p in page.people], next_page_token=page.next_page_token
        )

    @override
    async def UpdatePerson(self, request: pb.UpdatePersonRequest, context: Context) -> pb.Person:
        update = PersonUpdate(
            person_id=request.person_id,
            display_name=request.display_name if request.HasField("display_name") else None,
            metadata=dict(request.metadata),
            replace_metadata=request.replace_metadata,
        )
        person = await asyncio.to_thread(self._registry.update_person, request.collection, update, caller_of(context))
        return person_to_proto(person)

    @override
    async def DeletePerson(self, request: pb.DeletePersonRequest, context: Context) -> pb.DeletePersonResponse:
        deleted = await asyncio.to_thread(
            self._registry.delete_person, request.collection, request.person_id, caller_of(context)
        )
        return pb.DeletePersonResponse(faces_deleted=deleted)

    @override
    async def Count(self, request: pb.CountRequest, context: Context) -> pb.CountResponse:
        counts = await asyncio.to_thread(self._registry.count, request.collection)
        return pb.CountResponse(faces=counts.faces, people=counts.people)

    @override
    async def MoveFace(self, request: pb.MoveFaceRequest, context: Context) -> pb.MoveFaceResponse:
        moved = await asyncio.to_thread(
            self._registry.move_face, request.collection, request.face_id, request.to_person_id, caller_of(context)
        )
        return pb.MoveFaceResponse(face=face_to_proto(moved.face), from_person_id=moved.from_person_id)

    @override
    async def ListAuditEvents(self, request: pb.ListAuditEventsRequest, context: Context) -> pb.ListAuditEventsResponse:
        since = None
        if request.HasField("since"):
            try:
                since = limits.check_timestamp(request.since.seconds, request.since.nanos, "since")
            except ValueError as error:
                raise InvalidPageRequest(str(error)) from None
        page = await asyncio.to_thread(
            self._registry.list_audit_events,
            request.tenant,
            since,
            request.collection,
            request.page_size,
            request.page_token,
        )
        return pb.ListAuditEventsResponse(
            events=[audit_event_to_proto(event) for event in page.events], next_page_token=page.next_page_token
        )


# --- conversions ------------------------------------------------------------------------------------------


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp


def settings_to_proto(collection: Collection) -> pb.Collection:
    """The proto of a collection's settings (counts left 0)."""
    return pb.Collection(
        name=collection.name,
        model_id=collection.model_id,
        dimension=collection.dimension,
        default_threshold=collection.default_threshold,
        tenant=collection.tenant,
        created_at=_timestamp(collection.created_at),
        target_fpir=collection.target_fpir,
        min_margin=collection.min_margin,
        retention_seconds=collection.retention_seconds,
        transient=collection.transient,
    )


def collection_to_proto(status: CollectionStatus) -> pb.Collection:
    """The proto of a collection with its counts."""
    proto = settings_to_proto(status.collection)
    proto.face_count = status.counts.faces
    proto.person_count = status.counts.people
    return proto


def face_from_proto(face: pb.FaceRecord) -> FaceRecord:
    """The domain face of a proto (the embedding is checked later, by the registry)."""
    enrolled_at = face.enrolled_at.ToDatetime(tzinfo=UTC) if face.HasField("enrolled_at") else None
    return FaceRecord(
        face_id=face.face_id,
        person_id=face.person_id,
        embedding=np.asarray(face.embedding, dtype=np.float32),
        model_id=face.model_id,
        metadata=dict(face.metadata),
        enrolled_at=enrolled_at,
    )


def face_to_proto(face: FaceRecord) -> pb.FaceRecord:
    """The proto of a stored face (its embedding empty unless it was read)."""
    proto = pb.FaceRecord(
        face_id=face.face_id,
        person_id=face.person_id,
        embedding=face.embedding.tolist(),
        model_id=face.model_id,
        metadata=dict(face.metadata),
    )
    if face.enrolled_at is not None:
        proto.enrolled_at.CopyFrom(_timestamp(face.enrolled_at))
    return proto


def match_to_proto(match: Match) -> pb.Match:
    """The proto of a search match."""
    return pb.Match(
        person_id=match.person_id, face_id=match.face_id, distance=match.distance, display_name=match.display_name
    )


def person_to_proto(person: Person) -> pb.Person:
    """The proto of a person."""
    return pb.Person(
        person_id=person.person_id,
        display_name=person.display_name,
        metadata=dict(person.metadata),
        face_count=person.face_count,
        face_ids=list(person.face_ids),
    )


def audit_event_to_proto(event: AuditEvent) -> audit_pb2.AuditEvent:
    """The proto of an audit event (the action numbers are the proto's own)."""
    entry = event.entry
    return audit_pb2.AuditEvent(
        sequence=event.sequence,
        time=_timestamp(event.time),
        action=audit_pb2.AuditAction.ValueType(int(entry.action)),
        collection=entry.collection,
        person_id=entry.person_id,
        face_id=entry.face_id,
        faces=entry.faces,
        request_id=entry.request_id,
        actor=entry.actor,
        detail=entry.detail,
    )
