"""The asyncio client of the facerec public API (``facerec.v1.FaceRecognition``), on ``grpc.aio``."""

# ``timeout`` parameters here are gRPC deadlines sent with the call (so the server knows them too), as in
# grpc.aio's own API; ``asyncio.timeout`` would only cancel the caller's side.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc
import grpc.aio

from facerec.sdk import convert, messages
from facerec.sdk.channel import (
    DEFAULT_ADDRESS,
    DEFAULT_TIMEOUT_S,
    auth_metadata,
    call_retrying_overload_async,
    channel_options,
)
from facerec.sdk.errors import error_from_rpc
from facerec.sdk.images import image_bytes
from facerec.sdk.types import (
    DEFAULT_COLLECTION,
    BulkEnrollResult,
    Calibration,
    Collection,
    DetectResult,
    EnrollResult,
    FaceSelection,
    Frame,
    IdentifyResult,
    ImageInput,
    Page,
    Person,
    PhotosInput,
    VerifyResult,
)
from facerec.v1 import facerec_pb2, facerec_pb2_grpc

R = TypeVar("R")
T = TypeVar("T")


class _AsyncRequestStream(AsyncIterator[T]):
    """Requests of a client stream built off the event loop; keeps the first error raised building them
    (``grpc.aio`` answers it with a bare cancellation, the client re-raises the kept error instead)."""

    def __init__(self, source: Iterable[Any] | AsyncIterable[Any], build: Callable[[Any, int], T]) -> None:
        self._source = source
        self._build = build
        self._iterator: AsyncIterator[T] | None = None
        self.error: BaseException | None = None

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        if self._iterator is None:
            self._iterator = self._requests()
        return await anext(self._iterator)

    async def _requests(self) -> AsyncIterator[T]:
        try:
            index = 0
            async for item in _aiter(self._source):
                # Reading files and encoding arrays blocks: keep it off the event loop.
                yield await asyncio.to_thread(self._build, item, index)
                index += 1
        except Exception as e:
            self.error = e
            raise


async def _aiter(source: Iterable[T] | AsyncIterable[T]) -> AsyncIterator[T]:
    if isinstance(source, AsyncIterable):
        async for item in source:
            yield item
    else:
        for item in source:
            yield item


class AsyncClient:
    """An asyncio connection to the facerec gateway; use it as ``async with``, or await :meth:`close`.

    Same methods and arguments as :class:`facerec.sdk.Client`, as coroutines; streams accept sync or async
    iterables. Failures raise :class:`facerec.sdk.errors.FacerecError` subclasses.
    """

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        api_key: str | None = None,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        timeout: float | None = DEFAULT_TIMEOUT_S,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        opts = channel_options(dict(options or {}))
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(address, options=opts)
        else:
            self._channel = grpc.aio.secure_channel(address, credentials, options=opts)
        self._stub = facerec_pb2_grpc.FaceRecognitionStub(self._channel)
        self._metadata = auth_metadata(api_key)
        self._timeout = timeout

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        await self._channel.close()

    async def _call(self, method: Callable[..., Awaitable[R]], request: Any, timeout: float | None) -> R:
        async def attempt(timeout_s: float | None) -> R:
            try:
                return await method(request, timeout=timeout_s, metadata=self._metadata)
            except grpc.aio.AioRpcError as e:
                raise error_from_rpc(e) from e

        return await call_retrying_overload_async(attempt, self._timeout if timeout is None else timeout)

    # ------------------------------------------------------------------------------------------ collections

    async def create_collection(
        self,
        name: str,
        *,
        threshold: float | None = None,
        target_fpir: float | None = None,
        min_margin: float | None = None,
        model_id: str = "",
        timeout: float | None = None,
    ) -> Collection:
        """Creates a collection.

        ``threshold``: the largest distance ever accepted (None: the model's usual one, 0.6). ``target_fpir``: the
        share of strangers that may be matched, the threshold then following the collection's size (None: the
        service's default, unless ``threshold`` is given, which then applies fixed; 0: a fixed threshold).
        ``min_margin``: the least distance between the nearest and second-nearest person for a match (None: the
        service's default; 0: no margin rule).
        """
        request = messages.create_collection_request(
            name, threshold=threshold, model_id=model_id, target_fpir=target_fpir, min_margin=min_margin
        )
        return convert.collection_from_proto(await self._call(self._stub.CreateCollection, request, timeout))

    async def update_collection(
        self,
        name: str = DEFAULT_COLLECTION,
        *,
        threshold: float | None = None,
        target_fpir: float | None = None,
        min_margin: float | None = None,
        timeout: float | None = None,
    ) -> Collection:
        """Changes a collection's decision settings; those left None keep their values (at least one is needed)."""
        request = messages.update_collection_request(
            name, threshold=threshold, target_fpir=target_fpir, min_margin=min_margin
        )
        return convert.collection_from_proto(await self._call(self._stub.UpdateCollection, request, timeout))

    async def calibrate_collection(
        self,
        name: str = DEFAULT_COLLECTION,
        *,
        target_fmr: float = 0.0,
        apply: bool = False,
        timeout: float | None = None,
    ) -> Calibration:
        """Calibrates a threshold on the collection's own faces (people with two or more give genuine pairs) for
        false match rate ``target_fmr`` (0: the service's 0.001); ``apply`` sets it as the fixed threshold.
        Raises FailedPrecondition when no person has two faces."""
        request = facerec_pb2.CalibrateCollectionRequest(name=name, target_fmr=target_fmr, apply=apply)
        return convert.calibration_from_proto(await self._call(self._stub.CalibrateCollection, request, timeout))

    async def get_collection(self, name: str = DEFAULT_COLLECTION, *, timeout: float | None = None) -> Collection:
        """A collection with its counts."""
        request = facerec_pb2.GetCollectionRequest(name=name)
        return convert.collection_from_proto(await self._call(self._stub.GetCollection, request, timeout))

    async def list_collections(self, *, timeout: float | None = None) -> list[Collection]:
        """The caller's collections, ordered by name."""
        response = await self._call(self._stub.ListCollections, facerec_pb2.ListCollectionsRequest(), timeout)
        return [convert.collection_from_proto(c) for c in response.collections]

    async def delete_collection(self, name: str, *, timeout: float | None = None) -> int:
        """Deletes a collection with every face in it; returns the number of faces deleted."""
        request = facerec_pb2.DeleteCollectionRequest(name=name)
        return (await self._call(self._stub.DeleteCollection, request, timeout)).faces_deleted

    # ------------------------------------------------------------------------------------------ enrollment

    async def enroll(
        self,
        person_id: str,
        photos: PhotosInput,
        *,
        collection: str = DEFAULT_COLLECTION,
        display_name: str | None = None,
        metadata: Mapping[str, str] | None = None,
        face_selection: FaceSelection | str = FaceSelection.SINGLE,
        timeout: float | None = None,
    ) -> EnrollResult:
        """Enrolls photos of one person; see :meth:`facerec.sdk.Client.enroll`."""
        request = await asyncio.to_thread(
            messages.enroll_request,
            person_id,
            photos,
            collection=collection,
            display_name=display_name,
            metadata=metadata,
            face_selection=face_selection,
        )
        return convert.enroll_result_from_proto(await self._call(self._stub.Enroll, request, timeout))

    async def bulk_enroll(
        self,
        enrollments: Iterable[messages.EnrollmentInput] | AsyncIterable[messages.EnrollmentInput],
        *,
        collection: str = DEFAULT_COLLECTION,
        face_selection: FaceSelection | str = FaceSelection.SINGLE,
        timeout: float | None = None,
    ) -> BulkEnrollResult:
        """Streams many enrollments and returns the summary; see :meth:`facerec.sdk.Client.bulk_enroll`."""

        def build(item: messages.EnrollmentInput, _: int) -> facerec_pb2.EnrollRequest:
            return next(
                iter(messages.bulk_enroll_requests([item], collection=collection, face_selection=face_selection))
            )

        requests = _AsyncRequestStream(enrollments, build)
        try:
            response = await self._stub.BulkEnroll(requests, timeout=timeout, metadata=self._metadata)
        except (grpc.aio.AioRpcError, asyncio.CancelledError) as e:
            if requests.error is not None:
                raise requests.error from e
            if isinstance(e, grpc.aio.AioRpcError):
                raise error_from_rpc(e) from e
            raise
        return convert.bulk_enroll_result_from_proto(response)

    # ------------------------------------------------------------------------------------------ identification

    async def identify(
        self,
        image: ImageInput,
        *,
        collection: str = DEFAULT_COLLECTION,
        top_k: int = 0,
        threshold: float | None = None,
        include_embeddings: bool = False,
        min_margin: float | None = None,
        timeout: float | None = None,
    ) -> IdentifyResult:
        """Every face of a photo with its nearest people and who it is (``top_k=0``: the service's 5).

        ``threshold`` applies a fixed threshold for this call and ``min_margin`` a minimum margin, instead of the
        collection's decision settings; the result's ``applied`` says which threshold decided and why.
        """
        request = await asyncio.to_thread(
            messages.identify_request,
            image,
            collection=collection,
            top_k=top_k,
            threshold=threshold,
            include_embeddings=include_embeddings,
            min_margin=min_margin,
        )
        return convert.identify_result_from_proto(await self._call(self._stub.Identify, request, timeout))

    async def identify_stream(
        self,
        images: Iterable[ImageInput | Frame] | AsyncIterable[ImageInput | Frame],
        *,
        collection: str = DEFAULT_COLLECTION,
        top_k: int = 0,
        threshold: float | None = None,
        min_margin: float | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[IdentifyResult]:
        """Identifies a stream of frames; yields one result per frame, in order (plain images are numbered
        from ``"0"``)."""

        def build(image: ImageInput | Frame, index: int) -> facerec_pb2.IdentifyRequest:
            return messages.identify_request(
                image,
                collection=collection,
                top_k=top_k,
                threshold=threshold,
                frame_id=str(index),
                min_margin=min_margin,
            )

        requests = _AsyncRequestStream(images, build)
        call = self._stub.IdentifyStream(requests, timeout=timeout, metadata=self._metadata)
        try:
            async for response in call:
                yield convert.identify_result_from_proto(response)
        except (grpc.aio.AioRpcError, asyncio.CancelledError) as e:
            if requests.error is not None:
                raise requests.error from e
            if isinstance(e, grpc.aio.AioRpcError):
                raise error_from_rpc(e) from e
            raise
        finally:
            call.cancel()

    async def verify(
        self,
        image: ImageInput,
        *,
        reference_image: ImageInput | None = None,
        person: str | tuple[str, str] | None = None,
        threshold: float | None = None,
        timeout: float | None = None,
    ) -> VerifyResult:
        """1:1 verification against a photo or an enrolled person; see :meth:`facerec.sdk.Client.verify`."""
        request = await asyncio.to_thread(
            messages.verify_request, image, reference_image=reference_image, person=person, threshold=threshold
        )
        return convert.verify_result_from_proto(await self._call(self._stub.Verify, request, timeout))

    async def detect(
        self, image: ImageInput, *, include_embeddings: bool = False, timeout: float | None = None
    ) -> DetectResult:
        """The faces of a photo (boxes, landmarks, quality), largest first; no identification."""
        data = await asyncio.to_thread(image_bytes, image)
        request = facerec_pb2.DetectRequest(image=data, include_embeddings=include_embeddings)
        return convert.detect_result_from_proto(await self._call(self._stub.Detect, request, timeout))

    # ------------------------------------------------------------------------------------------ people

    async def get_person(
        self, person_id: str, *, collection: str = DEFAULT_COLLECTION, timeout: float | None = None
    ) -> Person:
        """An enrolled person."""
        request = facerec_pb2.GetPersonRequest(collection=collection, person_id=person_id)
        return convert.person_from_proto(await self._call(self._stub.GetPerson, request, timeout))

    async def list_people(
        self,
        *,
        collection: str = DEFAULT_COLLECTION,
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> Page[Person]:
        """One page of the collection's people (``page_size=0``: the service's 100)."""
        request = facerec_pb2.ListPeopleRequest(collection=collection, page_size=page_size, page_token=page_token)
        return convert.people_page_from_proto(await self._call(self._stub.ListPeople, request, timeout))

    async def iter_people(
        self, *, collection: str = DEFAULT_COLLECTION, page_size: int = 0, timeout: float | None = None
    ) -> AsyncIterator[Person]:
        """Every person of the collection, fetching pages as needed."""
        page_token = ""
        while True:
            page = await self.list_people(
                collection=collection, page_size=page_size, page_token=page_token, timeout=timeout
            )
            for person in page.items:
                yield person
            if not page.next_page_token:
                return
            page_token = page.next_page_token

    async def update_person(
        self,
        person_id: str,
        *,
        collection: str = DEFAULT_COLLECTION,
        display_name: str | None = None,
        metadata: Mapping[str, str] | None = None,
        replace_metadata: bool = False,
        timeout: float | None = None,
    ) -> Person:
        """Sets the display name and merges (or replaces) metadata; an empty value deletes a key."""
        request = messages.update_person_request(
            person_id,
            collection=collection,
            display_name=display_name,
            metadata=metadata,
            replace_metadata=replace_metadata,
        )
        return convert.person_from_proto(await self._call(self._stub.UpdatePerson, request, timeout))

    async def delete_person(
        self, person_id: str, *, collection: str = DEFAULT_COLLECTION, timeout: float | None = None
    ) -> int:
        """Erases a person (every face); returns the number of faces deleted."""
        request = facerec_pb2.DeletePersonRequest(collection=collection, person_id=person_id)
        return (await self._call(self._stub.DeletePerson, request, timeout)).faces_deleted
