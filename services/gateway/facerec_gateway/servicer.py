"""The public gRPC API: authenticate, take the call's deadline, call the domain. Nothing else.

A unary call without a deadline gets the gateway's downstream timeout; a stream without one has none (it lives
as long as the client keeps it) and the domain bounds each of its messages instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from facerec.runtime.deadlines import Deadline
from facerec.v1 import facerec_pb2, facerec_pb2_grpc
from facerec_gateway.auth import ApiKeys, Tenant
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

    async def CreateCollection(
        self, request: facerec_pb2.CreateCollectionRequest, context: Context
    ) -> facerec_pb2.Collection:
        tenant, deadline = self._caller(context)
        return await self.service.create_collection(tenant, request, deadline)

    async def GetCollection(
        self, request: facerec_pb2.GetCollectionRequest, context: Context
    ) -> facerec_pb2.Collection:
        tenant, deadline = self._caller(context)
        return await self.service.get_collection(tenant, request.name, deadline)

    async def ListCollections(
        self, request: facerec_pb2.ListCollectionsRequest, context: Context
    ) -> facerec_pb2.ListCollectionsResponse:
        tenant, deadline = self._caller(context)
        return await self.service.list_collections(tenant, deadline)

    async def DeleteCollection(
        self, request: facerec_pb2.DeleteCollectionRequest, context: Context
    ) -> facerec_pb2.DeleteCollectionResponse:
        tenant, deadline = self._caller(context)
        deleted = await self.service.delete_collection(tenant, request.name, deadline)
        return facerec_pb2.DeleteCollectionResponse(faces_deleted=deleted)

    async def Enroll(self, request: facerec_pb2.EnrollRequest, context: Context) -> facerec_pb2.EnrollResponse:
        tenant, deadline = self._caller(context)
        return await self.service.enroll(tenant, request, deadline)

    async def BulkEnroll(
        self, request_iterator: AsyncIterator[facerec_pb2.EnrollRequest], context: Context
    ) -> facerec_pb2.BulkEnrollResponse:
        tenant, deadline = self._stream_caller(context)
        return await self.service.bulk_enroll(tenant, request_iterator, deadline)

    async def Identify(self, request: facerec_pb2.IdentifyRequest, context: Context) -> facerec_pb2.IdentifyResponse:
        tenant, deadline = self._caller(context)
        return await self.service.identify(tenant, request, deadline)

    async def IdentifyStream(
        self, request_iterator: AsyncIterator[facerec_pb2.IdentifyRequest], context: Context
    ) -> AsyncIterator[facerec_pb2.IdentifyResponse]:
        tenant, deadline = self._stream_caller(context)
        async for response in self.service.identify_stream(tenant, request_iterator, deadline):
            yield response

    async def Verify(self, request: facerec_pb2.VerifyRequest, context: Context) -> facerec_pb2.VerifyResponse:
        tenant, deadline = self._caller(context)
        return await self.service.verify(tenant, request, deadline)

    async def Detect(self, request: facerec_pb2.DetectRequest, context: Context) -> facerec_pb2.DetectResponse:
        _tenant, deadline = self._caller(context)
        return await self.service.detect(request, deadline)

    async def GetPerson(self, request: facerec_pb2.GetPersonRequest, context: Context) -> facerec_pb2.Person:
        tenant, deadline = self._caller(context)
        return await self.service.get_person(tenant, request, deadline)

    async def ListPeople(
        self, request: facerec_pb2.ListPeopleRequest, context: Context
    ) -> facerec_pb2.ListPeopleResponse:
        tenant, deadline = self._caller(context)
        return await self.service.list_people(tenant, request, deadline)

    async def UpdatePerson(self, request: facerec_pb2.UpdatePersonRequest, context: Context) -> facerec_pb2.Person:
        tenant, deadline = self._caller(context)
        return await self.service.update_person(tenant, request, deadline)

    async def DeletePerson(
        self, request: facerec_pb2.DeletePersonRequest, context: Context
    ) -> facerec_pb2.DeletePersonResponse:
        tenant, deadline = self._caller(context)
        return await self.service.delete_person(tenant, request, deadline)
