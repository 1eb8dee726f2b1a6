"""The synchronous client of the facerec public API (``facerec.v1.FaceRecognition``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc

from facerec.sdk import convert, messages
from facerec.sdk.channel import (
    DEFAULT_ADDRESS,
    DEFAULT_TIMEOUT_S,
    auth_metadata,
    call_retrying_overload,
    channel_options,
    client_credentials,
)
from facerec.sdk.cluster_messages import OptionsGate, cluster_requests
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


class Client:
    """A connection to the facerec gateway; use it as a context manager, or call :meth:`close`.

    ``timeout`` is the default deadline of each unary call in seconds (every method also takes its own);
    streams have no deadline unless one is given. Unary calls are retried on UNAVAILABLE by the channel.
    Failures raise :class:`facerec.sdk.errors.FacerecError` subclasses.

    Plaintext unless TLS is asked for: ``tls=True`` verifies the gateway's certificate against the system trust
    store, ``ca_file`` against that PEM bundle instead; ``client_cert_file`` and ``client_key_file`` are presented
    to a gateway that requires mutual TLS (:func:`facerec.sdk.channel.channel_credentials`). ``credentials``
    takes ready-made gRPC channel credentials instead of those arguments.
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
            self._channel = grpc.insecure_channel(address, options=opts)
        else:
            self._channel = grpc.secure_channel(address, credentials, options=opts)
        self._stub = facerec_pb2_grpc.FaceRecognitionStub(self._channel)
        self._metadata = auth_metadata(api_key)
        self._timeout = timeout

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        self._channel.close()

    def _call(self, method: Callable[..., R], request: Any, timeout: float | None) -> R:
        def attempt(timeout_s: float | None) -> R:
            try:
                return method(request, timeout=timeout_s, metadata=self._metadata)
            except grpc.RpcError as e:
                raise error_from_rpc(e) from e

        return call_retrying_overload(attempt, self._timeout if timeout is None else timeout)

    # ------------------------------------------------------------------------------------------ collections

    def create_collection(
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
        return convert.collection_from_proto(self._call(self._stub.CreateCollection, request, timeout))

    def update_collection(
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
        return convert.collection_from_proto(self._call(self._stub.UpdateCollection, request, timeout))

    def calibrate_collection(
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
        return convert.calibration_from_proto(self._call(self._stub.CalibrateCollection, request, timeout))

    def get_collection(self, name: str = DEFAULT_COLLECTION, *, timeout: float | None = None) -> Collection:
        """A collection with its counts."""
        request = facerec_pb2.GetCollectionRequest(name=name)
        return convert.collection_from_proto(self._call(self._stub.GetCollection, request, timeout))

    def list_collections(self, *, timeout: float | None = None) -> list[Collection]:
        """The caller's collections, ordered by name."""
        response = self._call(self._stub.ListCollections, facerec_pb2.ListCollectionsRequest(), timeout)
        return [convert.collection_from_proto(c) for c in response.collections]

    def delete_collection(self, name: str, *, timeout: float | None = None) -> int:
        """Deletes a collection with every face in it; returns the number of faces deleted."""
        request = facerec_pb2.DeleteCollectionRequest(name=name)
        return self._call(self._stub.DeleteCollection, request, timeout).faces_deleted

    # ------------------------------------------------------------------------------------------ enrollment

    def enroll(
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
        """Enrolls photos of one person (paths, bytes, arrays or :class:`Photo`; one image or several).

        With ``face_selection="single"`` every photo must hold exactly one acceptable face, else
        :class:`FailedPrecondition` is raised with each photo's ``rejections`` and nothing is enrolled.
        """
        request = messages.enroll_request(
            person_id,
            photos,
            collection=collection,
            display_name=display_name,
            metadata=metadata,
            face_selection=face_selection,
        )
        return convert.enroll_result_from_proto(self._call(self._stub.Enroll, request, timeout))

    def bulk_enroll(
        self,
        enrollments: Iterable[messages.EnrollmentInput],
        *,
        collection: str = DEFAULT_COLLECTION,
        face_selection: FaceSelection | str = FaceSelection.SINGLE,
        timeout: float | None = None,
    ) -> BulkEnrollResult:
        """Streams many enrollments (:class:`Enrollment` or ``(person_id, photos)``) and returns the summary.

        Photos are read lazily, one person at a time, as the stream is sent. Rejected photos do not stop the
        stream; they are listed in the result. The stream has no deadline unless ``timeout`` is given (the
        client's default timeout is for unary calls): the gateway gives each person's enrollment its own.
        """
        requests = messages.RequestStream(
            messages.bulk_enroll_requests(enrollments, collection=collection, face_selection=face_selection)
        )
        try:
            response = self._stub.BulkEnroll(requests, timeout=timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise (requests.error or error_from_rpc(e)) from e
        return convert.bulk_enroll_result_from_proto(response)

    # ------------------------------------------------------------------------------------------ identification

    def identify(
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
        request = messages.identify_request(
            image,
            collection=collection,
            top_k=top_k,
            threshold=threshold,
            include_embeddings=include_embeddings,
            min_margin=min_margin,
        )
        return convert.identify_result_from_proto(self._call(self._stub.Identify, request, timeout))

    def identify_stream(
        self,
        images: Iterable[ImageInput | Frame],
        *,
        collection: str = DEFAULT_COLLECTION,
        top_k: int = 0,
        threshold: float | None = None,
        min_margin: float | None = None,
        timeout: float | None = None,
    ) -> Iterator[IdentifyResult]:
        """Identifies a stream of frames; yields one result per frame, in order.

        Frames without an id (plain images) are numbered from ``"0"``; results carry the frame's id. As for
        :meth:`bulk_enroll`, the stream has no deadline unless ``timeout`` is given; each frame has the gateway's.
        """
        requests = messages.RequestStream(
            messages.identify_request(
                image,
                collection=collection,
                top_k=top_k,
                threshold=threshold,
                frame_id=str(index),
                min_margin=min_margin,
            )
            for index, image in enumerate(images)
        )
        responses = self._stub.IdentifyStream(requests, timeout=timeout, metadata=self._metadata)
        try:
            for response in responses:
                yield convert.identify_result_from_proto(response)
        except grpc.RpcError as e:
            raise (requests.error or error_from_rpc(e)) from e
        finally:
            responses.cancel()

    def verify(
        self,
        image: ImageInput,
        *,
        reference_image: ImageInput | None = None,
        person: str | tuple[str, str] | None = None,
        threshold: float | None = None,
        timeout: float | None = None,
    ) -> VerifyResult:
        """Whether the probe's largest face is the reference's person: another photo (``reference_image``)
        or an enrolled person (``person``: ``person_id`` in the default collection, or
        ``(collection, person_id)``)."""
        request = messages.verify_request(image, reference_image=reference_image, person=person, threshold=threshold)
        return convert.verify_result_from_proto(self._call(self._stub.Verify, request, timeout))

    def detect(
        self, image: ImageInput, *, include_embeddings: bool = False, timeout: float | None = None
    ) -> DetectResult:
        """The faces of a photo (boxes, landmarks, quality), largest first; no identification."""
        request = facerec_pb2.DetectRequest(image=image_bytes(image), include_embeddings=include_embeddings)
        return convert.detect_result_from_proto(self._call(self._stub.Detect, request, timeout))

    # ------------------------------------------------------------------------------------------ clustering

    def cluster(
        self,
        photos: Iterable[ClusterPhotoInput],
        *,
        threshold: float | None = None,
        min_faces: int = 0,
        enroll: bool = False,
        collection: str = DEFAULT_COLLECTION,
        person_id_prefix: str = "",
        on_progress: Callable[[ClusterProgress], None] | None = None,
        timeout: float | None = None,
    ) -> ClusterResult:
        """Groups the faces of ``photos`` (images, :class:`Photo`, or ``(name, image)``; read lazily as the stream
        is sent) into people: faces at most ``threshold`` apart are linked (None: the service's 0.5), groups of
        fewer than ``min_faces`` faces are noise (0: 2). With ``enroll``, each group becomes a new person of
        ``collection`` named ``person_id_prefix`` and the group's number (empty: a fresh prefix per call).

        ``on_progress`` is called with each progress event as it arrives (in the calling thread). Photos are sent
        once the gateway has accepted the options, so options it refuses end the call before any upload. The stream
        has no deadline unless ``timeout`` is given. Unreadable photos and photos without a face are in the
        result's ``skipped``.
        """
        options = convert.cluster_options_to_proto(
            collection=collection,
            threshold=threshold,
            min_faces=min_faces,
            enroll=enroll,
            person_id_prefix=person_id_prefix,
        )
        gate = OptionsGate()
        requests = messages.RequestStream(cluster_requests(photos, options, gate))
        result: ClusterResult | None = None
        responses = self._stub.ClusterFaces(requests, timeout=timeout, metadata=self._metadata)
        try:
            for response in responses:
                gate.accept()
                event = convert.cluster_event_from_proto(response)
                if isinstance(event, ClusterResult):
                    result = event
                elif event is not None and on_progress is not None:
                    on_progress(event)
        except grpc.RpcError as e:
            raise (requests.error or error_from_rpc(e)) from e
        finally:
            gate.close()
            responses.cancel()  # a no-op once the stream ended; else (Ctrl-C, a callback's error) the call stops
        if result is None:
            raise FacerecError("the clustering stream ended without a result")
        return result

    # ------------------------------------------------------------------------------------------ people

    def get_person(
        self, person_id: str, *, collection: str = DEFAULT_COLLECTION, timeout: float | None = None
    ) -> Person:
        """An enrolled person."""
        request = facerec_pb2.GetPersonRequest(collection=collection, person_id=person_id)
        return convert.person_from_proto(self._call(self._stub.GetPerson, request, timeout))

    def list_people(
        self,
        *,
        collection: str = DEFAULT_COLLECTION,
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> Page[Person]:
        """One page of the collection's people (``page_size=0``: the service's 100)."""
        request = facerec_pb2.ListPeopleRequest(collection=collection, page_size=page_size, page_token=page_token)
        return convert.people_page_from_proto(self._call(self._stub.ListPeople, request, timeout))

    def iter_people(
        self, *, collection: str = DEFAULT_COLLECTION, page_size: int = 0, timeout: float | None = None
    ) -> Iterator[Person]:
        """Every person of the collection, fetching pages as needed."""
        page_token = ""
        while True:
            page = self.list_people(collection=collection, page_size=page_size, page_token=page_token, timeout=timeout)
            yield from page.items
            if not page.next_page_token:
                return
            page_token = page.next_page_token

    def update_person(
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
        return convert.person_from_proto(self._call(self._stub.UpdatePerson, request, timeout))

    def delete_person(
        self, person_id: str, *, collection: str = DEFAULT_COLLECTION, timeout: float | None = None
    ) -> int:
        """Erases a person (every face); returns the number of faces deleted."""
        request = facerec_pb2.DeletePersonRequest(collection=collection, person_id=person_id)
        return self._call(self._stub.DeletePerson, request, timeout).faces_deleted

    # ------------------------------------------------------------------------------------------ faces of a person

    def list_faces(
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
        return convert.faces_page_from_proto(self._call(self._stub.ListFaces, request, timeout))

    def iter_faces(
        self, person_id: str, *, collection: str = DEFAULT_COLLECTION, page_size: int = 0, timeout: float | None = None
    ) -> Iterator[EnrolledFace]:
        """Every face of the person, fetching pages as needed."""
        page_token = ""
        while True:
            page = self.list_faces(
                person_id, collection=collection, page_size=page_size, page_token=page_token, timeout=timeout
            )
            yield from page.items
            if not page.next_page_token:
                return
            page_token = page.next_page_token

    def delete_face(
        self, face_id: str, *, collection: str = DEFAULT_COLLECTION, timeout: float | None = None
    ) -> FaceDeletion:
        """Deletes one face (the person keeps their others); says whose it was and how many they have left.
        Raises NotFound when no face has that id."""
        request = facerec_pb2.DeleteFaceRequest(collection=collection, face_id=face_id)
        return convert.face_deletion_from_proto(self._call(self._stub.DeleteFace, request, timeout))

    def move_face(
        self, face_id: str, to_person_id: str, *, collection: str = DEFAULT_COLLECTION, timeout: float | None = None
    ) -> FaceMove:
        """Moves one face to another person (enrolled or new); it keeps its id and descriptor, and identifies as
        ``to_person_id`` from then on. Raises NotFound when no face has that id."""
        request = facerec_pb2.MoveFaceRequest(collection=collection, face_id=face_id, to_person_id=to_person_id)
        return convert.face_move_from_proto(self._call(self._stub.MoveFace, request, timeout))

    # ------------------------------------------------------------------------------------------ audit

    def list_audit_events(
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
        return convert.audit_page_from_proto(self._call(self._stub.ListAuditEvents, request, timeout))

    def iter_audit_events(
        self,
        *,
        since: datetime | None = None,
        collection: str = "",
        page_size: int = 0,
        timeout: float | None = None,
    ) -> Iterator[AuditEvent]:
        """Every event of the audit record from ``since`` on, oldest first, fetching pages as needed."""
        page_token = ""
        while True:
            page = self.list_audit_events(
                since=since, collection=collection, page_size=page_size, page_token=page_token, timeout=timeout
            )
            yield from page.items
            if not page.next_page_token:
                return
            page_token = page.next_page_token
