"""The asyncio client of the facerec public API (``facerec.v1.FaceRecognition``), on ``grpc.aio``."""

# ``timeout`` parameters here are gRPC deadlines sent with the call (so the server knows them too), as in
# grpc.aio's own API; ``asyncio.timeout`` would only cancel the caller's side.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from datetime import datetime
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
    client_credentials,
)
from facerec.sdk.cluster_messages import OptionsGate, options_request, photo_request
from facerec.sdk.errors import FacerecError, error_from_rpc
from facerec.sdk.images import image_bytes
from facerec.sdk.types import (
    DEFAULT_COLLECTION,
    AuditEvent,
    BulkEnrollResult,
    Calibration,
    ClusterPhotoInput,
    ClusterProgress,
    ClusterResult,
    Collection,
    DetectResult,
    EnrolledFace,
    EnrollResult,
    FaceDeletion,
    FaceMove,
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


async def _gated(
    options: facerec_pb2.ClusterOptions,
    photos: Iterable[ClusterPhotoInput] | AsyncIterable[ClusterPhotoInput],
    gate: OptionsGate,
) -> AsyncIterator[facerec_pb2.ClusterOptions | ClusterPhotoInput]:
    """The options, then (once the gateway has accepted them) every photo (see ``cluster_messages``)."""
    yield options
    if not await asyncio.to_thread(gate.wait):
        return
    async for item in _aiter(photos):
        yield item


async def _aiter(source: Iterable[T] | AsyncIterable[T]) -> AsyncIterator[T]:
    if isinstance(source, AsyncIterable):
        async for item in source:
            yield item
    else:
        for item in source:
            yield item


class AsyncClient:
    """An asyncio connection to the facerec gateway; use it as ``async with``, or await :meth:`close`.

    Same methods and arguments (TLS included) as :class:`facerec.sdk.Client`, as coroutines; streams accept sync
    or async iterables. Failures raise :class:`facerec.sdk.errors.FacerecError` subclasses.
    """

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        api_key: str | None = None,
        *,
        tls: bool = False,
        ca_file: str | os.PathLike[str] | None = None,
        client_cert_file: str | os.PathLike[str] | None = None,
        client_key_file: str | os.PathLike[str] | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        timeout: float | None = DEFAULT_TIMEOUT_S,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        opts = channel_options(dict(options or {}))
        credentials = client_credentials(
            credentials, tls=tls, ca_file=ca_file, client_cert_file=client_cert_file, client_key_file=client_key_file
        )
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
        retention_seconds: int | None = None,
        timeout: float | None = None,
    ) -> Collection:
        """Creates a collection.

        ``threshold``: the largest distance ever accepted (None: the model's usual one, 0.6). ``target_fpir``: the
        share of strangers that may be matched, the threshold then following the collection's size (None: the
        service's default, unless ``threshold`` is given, which then applies fixed; 0: a fixed threshold).
        ``min_margin``: the least distance between the nearest and second-nearest person for a match (None: the
        service's default; 0: no margin rule). ``retention_seconds``: a person's faces are purged this long after
        their newest enrollment (None or 0: kept until deleted; at most 100 years).
        """
        request = messages.create_collection_request(
            name,
            threshold=threshold,
            model_id=model_id,
            target_fpir=target_fpir,
            min_margin=min_margin,
            retention_seconds=retention_seconds,
        )
        return convert.collection_from_proto(await self._call(self._stub.CreateCollection, request, timeout))

    async def update_collection(
        self,
        name: str = DEFAULT_COLLECTION,
        *,
        threshold: float | None = None,
        target_fpir: float | None = None,
        min_margin: float | None = None,
        retention_seconds: int | None = None,
        timeout: float | None = None,
    ) -> Collection:
        """Changes a collection's decision settings or retention; those left None keep their values (at least one
        is needed; ``retention_seconds=0`` removes the retention limit)."""
        request = messages.update_collection_request(
            name,
            threshold=threshold,
            target_fpir=target_fpir,
            min_margin=min_margin,
            retention_seconds=retention_seconds,
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

    # ------------------------------------------------------------------------------------------ clustering

    async def cluster(
        self,
        photos: Iterable[ClusterPhotoInput] | AsyncIterable[ClusterPhotoInput],
        *,
        threshold: float | None = None,
        min_faces: int = 0,
        enroll: bool = False,
        collection: str = DEFAULT_COLLECTION,
        person_id_prefix: str = "",
        on_progress: Callable[[ClusterProgress], None] | None = None,
        timeout: float | None = None,
    ) -> ClusterResult:
        """Groups the faces of ``photos`` into people; see :meth:`facerec.sdk.Client.cluster` (``photos`` may also
        be an async iterable; ``on_progress`` is called on the event loop)."""
        options = convert.cluster_options_to_proto(
            collection=collection,
            threshold=threshold,
            min_faces=min_faces,
            enroll=enroll,
            person_id_prefix=person_id_prefix,
        )

        def build(item: ClusterPhotoInput | facerec_pb2.ClusterOptions, _: int) -> facerec_pb2.ClusterRequest:
            if isinstance(item, facerec_pb2.ClusterOptions):
                return options_request(item)
            return photo_request(item)

        gate = OptionsGate()
        requests = _AsyncRequestStream(_gated(options, photos, gate), build)
        result: ClusterResult | None = None
        call = self._stub.ClusterFaces(requests, timeout=timeout, metadata=self._metadata)
        try:
            async for response in call:
                gate.accept()
                event = convert.cluster_event_from_proto(response)
                if isinstance(event, ClusterResult):
                    result = event
                elif event is not None and on_progress is not None:
                    on_progress(event)
        except (grpc.aio.AioRpcError, asyncio.CancelledError) as e:
            if requests.error is not None:
                raise requests.error from e
            if isinstance(e, grpc.aio.AioRpcError):
                raise error_from_rpc(e) from e
            raise
        finally:
            gate.close()
            call.cancel()  # a no-op once the stream ended; else (the caller cancelled) the call stops
        if result is None:
            raise FacerecError("the clustering stream ended without a result")
        return result

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

    # ------------------------------------------------------------------------------------------ faces of a person

    async def list_faces(
        self,
        person_id: str,
        *,
        collection: str = DEFAULT_COLLECTION,
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> Page[EnrolledFace]:
        """One page of the person's faces, ordered by face id (``page_size=0``: the service's 100): each with its
        photo's name, when it was enrolled, its quality and its box. Raises NotFound when the person has no face."""
        request = facerec_pb2.ListFacesRequest(
            collection=collection, person_id=person_id, page_size=page_size, page_token=page_token
        )
        return convert.faces_page_from_proto(await self._call(self._stub.ListFaces, request, timeout))

    async def iter_faces(
        self, person_id: str, *, collection: str = DEFAULT_COLLECTION, page_size: int = 0, timeout: float | None = None
    ) -> AsyncIterator[EnrolledFace]:
        """Every face of the person, fetching pages as needed."""
        page_token = ""
        while True:
            page = await self.list_faces(
                person_id, collection=collection, page_size=page_size, page_token=page_token, timeout=timeout
            )
            for face in page.items:
                yield face
            if not page.next_page_token:
                return
            page_token = page.next_page_token

    async def delete_face(
        self, face_id: str, *, collection: str = DEFAULT_COLLECTION, timeout: float | None = None
    ) -> FaceDeletion:
        """Deletes one face (the person keeps their others); says whose it was and how many they have left.
        Raises NotFound when no face has that id."""
        request = facerec_pb2.DeleteFaceRequest(collection=collection, face_id=face_id)
        return convert.face_deletion_from_proto(await self._call(self._stub.DeleteFace, request, timeout))

    async def move_face(
        self, face_id: str, to_person_id: str, *, collection: str = DEFAULT_COLLECTION, timeout: float | None = None
    ) -> FaceMove:
        """Moves one face to another person (enrolled or new); it keeps its id and descriptor, and identifies as
        ``to_person_id`` from then on. Raises NotFound when no face has that id."""
        request = facerec_pb2.MoveFaceRequest(collection=collection, face_id=face_id, to_person_id=to_person_id)
        return convert.face_move_from_proto(await self._call(self._stub.MoveFace, request, timeout))

    # ------------------------------------------------------------------------------------------ audit

    async def list_audit_events(
        self,
        *,
        since: datetime | None = None,
        collection: str = "",
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> Page[AuditEvent]:
        """One page of the caller's audit record, oldest first: events at or after ``since`` (None: from the
        first; without a time zone: UTC), of ``collection`` only (the default "": every collection the key may
        use)."""
        request = messages.list_audit_events_request(
            since=since, collection=collection, page_size=page_size, page_token=page_token
        )
        return convert.audit_page_from_proto(await self._call(self._stub.ListAuditEvents, request, timeout))

    async def iter_audit_events(
        self,
        *,
        since: datetime | None = None,
        collection: str = "",
        page_size: int = 0,
        timeout: float | None = None,
    ) -> AsyncIterator[AuditEvent]:
        """Every event of the audit record from ``since`` on, oldest first, fetching pages as needed."""
        page_token = ""
        while True:
            page = await self.list_audit_events(
                since=since, collection=collection, page_size=page_size, page_token=page_token, timeout=timeout
            )
            for event in page.items:
                yield event
            if not page.next_page_token:
                return
            page_token = page.next_page_token
