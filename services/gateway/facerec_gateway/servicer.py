"""The public gRPC API: authenticate, take the call's deadline, convert, call the domain. Nothing else.

A unary call without a deadline gets the gateway's downstream timeout; a stream without one has none (it lives
as long as the client keeps it) and the domain bounds each of its messages instead. Messages are converted in
``conversions``; domain errors propagate to the shared error interceptor, which maps them to status codes (an
enrollment's rejections are given their ``google.rpc`` details here first).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc

from facerec.runtime.deadlines import Deadline
from facerec.v1 import facerec_pb2, facerec_pb2_grpc
from facerec_gateway import conversions
from facerec_gateway.auth import ApiKeys, Tenant
from facerec_gateway.clustering import ClusterItem
from facerec_gateway.enrollment import EnrollRequest
from facerec_gateway.errors import EnrollmentRejected
from facerec_gateway.identification import IdentifyRequest
from facerec_gateway.recognition import FaceRecognition

Context = grpc.aio.ServicerContext[Any, Any]


class FaceRecognitionServicer(facerec_pb2_grpc.FaceRecognitionServicer):
    def __init__(self, service: FaceRecognition, keys: ApiKeys, default_timeout_s: float) -> None:
        self.service = service
        self.keys = keys
        self.default_timeout_s = default_timeout_s

    def _caller(self, context: Context) -> tuple[Tenant, Deadline]:
        return self._tenant(context), Deadline.of_call(context, self.default_timeout_s)

    def _stream_caller(self, context: Context) -> tuple[Tenant, Deadline]:
        return self._tenant(context), Deadline.of_stream(context)

    def _tenant(self, context: Context) -> Tenant:
        return self.keys.authenticate(context.invocation_metadata() or ())

    # ------------------------------------------------------------------------------------------ collections

    async def CreateCollection(
        self, request: facerec_pb2.CreateCollectionRequest, context: Context
    ) -> facerec_pb2.Collection:
        tenant, deadline = self._caller(context)
        created = await self.service.collections.create(tenant, conversions.new_collection(request), deadline)
        return conversions.collection_message(created)

    async def GetCollection(
        self, request: facerec_pb2.GetCollectionRequest, context: Context
    ) -> facerec_pb2.Collection:
        tenant, deadline = self._caller(context)
        return conversions.collection_message(await self.service.collections.get(tenant, request.name, deadline))

    async def ListCollections(
        self, request: facerec_pb2.ListCollectionsRequest, context: Context
    ) -> facerec_pb2.ListCollectionsResponse:
        tenant, deadline = self._caller(context)
        return conversions.collections_response(await self.service.collections.list_all(tenant, deadline))

    async def UpdateCollection(
        self, request: facerec_pb2.UpdateCollectionRequest, context: Context
    ) -> facerec_pb2.Collection:
        tenant, deadline = self._caller(context)
        update = conversions.settings_update(request)
        return conversions.collection_message(
            await self.service.collections.update(tenant, request.name, update, deadline)
        )

    async def DeleteCollection(
        self, request: facerec_pb2.DeleteCollectionRequest, context: Context
    ) -> facerec_pb2.DeleteCollectionResponse:
        tenant, deadline = self._caller(context)
        deleted = await self.service.collections.delete(tenant, request.name, deadline)
        return facerec_pb2.DeleteCollectionResponse(faces_deleted=deleted)

    async def CalibrateCollection(
        self, request: facerec_pb2.CalibrateCollectionRequest, context: Context
    ) -> facerec_pb2.Calibration:
        tenant, deadline = self._caller(context)
        calibration = await self.service.calibrator.calibrate(
            tenant, conversions.calibration_request(request), deadline
        )
        return conversions.calibration_message(calibration)

    # ------------------------------------------------------------------------------------------ enrollment

    async def Enroll(self, request: facerec_pb2.EnrollRequest, context: Context) -> facerec_pb2.EnrollResponse:
        tenant, deadline = self._caller(context)
        try:
            enrolled = await self.service.enroller.enroll(tenant, conversions.enroll_request(request), deadline)
        except EnrollmentRejected as error:
            error.details = (conversions.rejection_details(error.photos),)
            raise
        return conversions.enroll_response(enrolled)

    async def BulkEnroll(
        self, request_iterator: AsyncIterator[facerec_pb2.EnrollRequest], context: Context
    ) -> facerec_pb2.BulkEnrollResponse:
        tenant, deadline = self._stream_caller(context)
        summary = await self.service.bulk.bulk_enroll(tenant, _enroll_requests(request_iterator), deadline)
        return conversions.bulk_enroll_response(summary)

    # ------------------------------------------------------------------------------------------ identification

    async def Identify(self, request: facerec_pb2.IdentifyRequest, context: Context) -> facerec_pb2.IdentifyResponse:
        tenant, deadline = self._caller(context)
        identification = await self.service.identifier.identify(tenant, conversions.identify_request(request), deadline)
        return conversions.identify_response(identification)

    async def IdentifyStream(
        self, request_iterator: AsyncIterator[facerec_pb2.IdentifyRequest], context: Context
    ) -> AsyncIterator[facerec_pb2.IdentifyResponse]:
        tenant, deadline = self._stream_caller(context)
        frames = self.service.identifier.identify_stream(tenant, _identify_requests(request_iterator), deadline)
        async for identification in frames:
            yield conversions.identify_response(identification)

    async def Verify(self, request: facerec_pb2.VerifyRequest, context: Context) -> facerec_pb2.VerifyResponse:
        tenant, deadline = self._caller(context)
        verification = await self.service.verifier.verify(tenant, conversions.verify_request(request), deadline)
        return conversions.verify_response(verification)

    async def Detect(self, request: facerec_pb2.DetectRequest, context: Context) -> facerec_pb2.DetectResponse:
        _tenant, deadline = self._caller(context)
        photo = await self.service.verifier.detect(
            request.image, deadline, include_embeddings=request.include_embeddings
        )
        return conversions.detect_response(photo)

    # ------------------------------------------------------------------------------------------ people

    async def GetPerson(self, request: facerec_pb2.GetPersonRequest, context: Context) -> facerec_pb2.Person:
        tenant, deadline = self._caller(context)
        person = await self.service.people.get(tenant, request.collection, request.person_id, deadline)
        return conversions.person_message(person)

    async def ListPeople(
        self, request: facerec_pb2.ListPeopleRequest, context: Context
    ) -> facerec_pb2.ListPeopleResponse:
        tenant, deadline = self._caller(context)
        page = await self.service.people.list_page(
            tenant, request.collection, request.page_size, request.page_token, deadline
        )
        return conversions.people_response(page)

    async def UpdatePerson(self, request: facerec_pb2.UpdatePersonRequest, context: Context) -> facerec_pb2.Person:
        tenant, deadline = self._caller(context)
        update = conversions.person_update(request)
        return conversions.person_message(
            await self.service.people.update(tenant, request.collection, update, deadline)
        )

    async def DeletePerson(
        self, request: facerec_pb2.DeletePersonRequest, context: Context
    ) -> facerec_pb2.DeletePersonResponse:
        tenant, deadline = self._caller(context)
        deleted = await self.service.people.delete(tenant, request.collection, request.person_id, deadline)
        return facerec_pb2.DeletePersonResponse(faces_deleted=deleted)

    # ------------------------------------------------------------------------------------------ faces of a person

    async def ListFaces(self, request: facerec_pb2.ListFacesRequest, context: Context) -> facerec_pb2.ListFacesResponse:
        tenant, deadline = self._caller(context)
        page = await self.service.faces.list_page(
            tenant, request.collection, request.person_id, request.page_size, request.page_token, deadline
        )
        return conversions.faces_response(page)

    async def DeleteFace(
        self, request: facerec_pb2.DeleteFaceRequest, context: Context
    ) -> facerec_pb2.DeleteFaceResponse:
        tenant, deadline = self._caller(context)
        deletion = await self.service.faces.delete(tenant, request.collection, request.face_id, deadline)
        return conversions.delete_face_response(deletion)

    async def MoveFace(self, request: facerec_pb2.MoveFaceRequest, context: Context) -> facerec_pb2.MoveFaceResponse:
        tenant, deadline = self._caller(context)
        move = await self.service.faces.move(
            tenant, request.collection, request.face_id, request.to_person_id, deadline
        )
        return conversions.move_face_response(move)

    # ------------------------------------------------------------------------------------------ audit

    async def ListAuditEvents(
        self, request: facerec_pb2.ListAuditEventsRequest, context: Context
    ) -> facerec_pb2.ListAuditEventsResponse:
        tenant, deadline = self._caller(context)
        page = await self.service.audit.list_page(tenant, conversions.audit_query(request), deadline)
        return conversions.audit_response(page)

    # ------------------------------------------------------------------------------------------ clustering

    async def ClusterFaces(
        self, request_iterator: AsyncIterator[facerec_pb2.ClusterRequest], context: Context
    ) -> AsyncIterator[facerec_pb2.ClusterEvent]:
        tenant, deadline = self._stream_caller(context)
        events = self.service.clusterer.cluster(tenant, _cluster_items(request_iterator), deadline)
        # Closed here, whatever ends the call (an error, the caller cancelling): the call's working collection
        # is deleted before the servicer returns.
        async with contextlib.aclosing(events):
            async for event in events:
                yield conversions.cluster_event_message(event)


async def _enroll_requests(messages: AsyncIterator[facerec_pb2.EnrollRequest]) -> AsyncIterator[EnrollRequest]:
    async for message in messages:
        yield conversions.enroll_request(message)


async def _cluster_items(messages: AsyncIterator[facerec_pb2.ClusterRequest]) -> AsyncIterator[ClusterItem]:
    async for message in messages:
        yield conversions.cluster_item(message)


async def _identify_requests(
    messages: AsyncIterator[facerec_pb2.IdentifyRequest],
) -> AsyncIterator[IdentifyRequest]:
    async for message in messages:
        yield conversions.identify_request(message)
