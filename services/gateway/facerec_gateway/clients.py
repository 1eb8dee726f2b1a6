"""The gateway's clients of the embedder and the registry, behind small Protocols.

gRPC errors of a dependency are translated where they enter: UNAVAILABLE -> :class:`DependencyUnavailable`
naming the dependency, DEADLINE_EXCEEDED -> :class:`DependencyDeadline`, and the caller-caused codes
(INVALID_ARGUMENT, NOT_FOUND, ...) -> the same category with the dependency's message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from facerec.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from facerec.registry.v1 import registry_pb2, registry_pb2_grpc
from facerec.runtime import errors
from facerec.runtime.channels import open_channel
from facerec.runtime.deadlines import Deadline
from facerec_gateway.errors import DependencyDeadline, DependencyUnavailable

R = TypeVar("R")

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
            raise category(message) from error
        raise DependencyUnavailable(f"{dependency} failed ({code.name}): {message}") from error


async def _serving(channel: grpc.aio.Channel, timeout_s: float) -> bool:
    try:
        response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout_s)
    except grpc.aio.AioRpcError:
        return False
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)


class Embedder(Protocol):
    """What the gateway asks of the embedder."""

    async def embed_photo(
        self, image: bytes, deadline: Deadline, *, detect_only: bool = False
    ) -> embedder_pb2.EmbedPhotoResponse: ...

    async def model(self, deadline: Deadline) -> embedder_pb2.ModelInfo: ...

    async def serving(self) -> bool: ...


class Registry(Protocol):
    """What the gateway asks of the registry: the registry's own API, one method per RPC."""

    async def create_collection(
        self, request: registry_pb2.CreateCollectionRequest, deadline: Deadline
    ) -> registry_pb2.Collection: ...
    async def get_collection(
        self, name: str, deadline: Deadline, *, settings_only: bool = False
    ) -> registry_pb2.Collection: ...
    async def list_collections(self, tenant: str, deadline: Deadline) -> list[registry_pb2.Collection]: ...
    async def delete_collection(self, name: str, deadline: Deadline) -> int: ...
    async def upsert_faces(self, request: registry_pb2.UpsertFacesRequest, deadline: Deadline) -> int: ...
    async def search(self, request: registry_pb2.SearchRequest, deadline: Deadline) -> registry_pb2.SearchResponse: ...
    async def get_person(self, collection: str, person_id: str, deadline: Deadline) -> registry_pb2.Person: ...
    async def list_people(
        self, request: registry_pb2.ListPeopleRequest, deadline: Deadline
    ) -> registry_pb2.ListPeopleResponse: ...
    async def update_person(
        self, request: registry_pb2.UpdatePersonRequest, deadline: Deadline
    ) -> registry_pb2.Person: ...
    async def delete_person(self, collection: str, person_id: str, deadline: Deadline) -> int: ...
    async def serving(self) -> bool: ...


class EmbedderClient:
    """The embedder over gRPC. Its calls are idempotent: UNAVAILABLE is retried by the channel."""

    name = "embedder"

    def __init__(self, address: str, max_message_bytes: int) -> None:
        self.address = address
        self._channel = open_channel(address, max_message_bytes=max_message_bytes, retry=True)
        self._stub = embedder_pb2_grpc.EmbedderStub(self._channel)

    async def embed_photo(
        self, image: bytes, deadline: Deadline, *, detect_only: bool = False
    ) -> embedder_pb2.EmbedPhotoResponse:
        request = embedder_pb2.EmbedPhotoRequest(image=image, detect_only=detect_only)
        return await _call(self.name, lambda: self._stub.EmbedPhoto(request, timeout=deadline.remaining()))

    async def model(self, deadline: Deadline) -> embedder_pb2.ModelInfo:
        return await _call(
            self.name, lambda: self._stub.GetModel(embedder_pb2.GetModelRequest(), timeout=deadline.remaining())
        )

    async def serving(self) -> bool:
        return await _serving(self._channel, timeout_s=1.0)

    async def close(self) -> None:
        await self._channel.close()


class RegistryClient:
    """The registry over gRPC. Every registry write is idempotent (caller-chosen face ids), so UNAVAILABLE is
    retried by the channel for all calls."""

    name = "registry"

    def __init__(self, address: str, max_message_bytes: int) -> None:
        self.address = address
        self._channel = open_channel(address, max_message_bytes=max_message_bytes, retry=True)
        self._stub = registry_pb2_grpc.RegistryStub(self._channel)

    async def create_collection(
        self, request: registry_pb2.CreateCollectionRequest, deadline: Deadline
    ) -> registry_pb2.Collection:
        return await _call(self.name, lambda: self._stub.CreateCollection(request, timeout=deadline.remaining()))

    async def get_collection(
        self, name: str, deadline: Deadline, *, settings_only: bool = False
    ) -> registry_pb2.Collection:
        """The collection; with ``settings_only`` its counts are left out (0), which costs the registry nothing."""
        request = registry_pb2.GetCollectionRequest(name=name, settings_only=settings_only)
        return await _call(self.name, lambda: self._stub.GetCollection(request, timeout=deadline.remaining()))

    async def list_collections(self, tenant: str, deadline: Deadline) -> list[registry_pb2.Collection]:
        request = registry_pb2.ListCollectionsRequest(tenant=tenant)
        response = await _call(self.name, lambda: self._stub.ListCollections(request, timeout=deadline.remaining()))
        return list(response.collections)

    async def delete_collection(self, name: str, deadline: Deadline) -> int:
        request = registry_pb2.DeleteCollectionRequest(name=name)
        response = await _call(self.name, lambda: self._stub.DeleteCollection(request, timeout=deadline.remaining()))
        return int(response.faces_deleted)

    async def upsert_faces(self, request: registry_pb2.UpsertFacesRequest, deadline: Deadline) -> int:
        response = await _call(self.name, lambda: self._stub.UpsertFaces(request, timeout=deadline.remaining()))
        return int(response.upserted)

    async def search(self, request: registry_pb2.SearchRequest, deadline: Deadline) -> registry_pb2.SearchResponse:
        return await _call(self.name, lambda: self._stub.Search(request, timeout=deadline.remaining()))

    async def get_person(self, collection: str, person_id: str, deadline: Deadline) -> registry_pb2.Person:
        request = registry_pb2.GetPersonRequest(collection=collection, person_id=person_id)
        return await _call(self.name, lambda: self._stub.GetPerson(request, timeout=deadline.remaining()))

    async def list_people(
        self, request: registry_pb2.ListPeopleRequest, deadline: Deadline
    ) -> registry_pb2.ListPeopleResponse:
        return await _call(self.name, lambda: self._stub.ListPeople(request, timeout=deadline.remaining()))

    async def update_person(self, request: registry_pb2.UpdatePersonRequest, deadline: Deadline) -> registry_pb2.Person:
        return await _call(self.name, lambda: self._stub.UpdatePerson(request, timeout=deadline.remaining()))

    async def delete_person(self, collection: str, person_id: str, deadline: Deadline) -> int:
        request = registry_pb2.DeletePersonRequest(collection=collection, person_id=person_id)
        response = await _call(self.name, lambda: self._stub.DeletePerson(request, timeout=deadline.remaining()))
        return int(response.faces_deleted)

    async def serving(self) -> bool:
        return await _serving(self._channel, timeout_s=1.0)

    async def close(self) -> None:
        await self._channel.close()
