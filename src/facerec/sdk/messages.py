"""Request messages built from the SDK's Python arguments; shared by :class:`Client` and :class:`AsyncClient`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Generic, TypeVar

from facerec.sdk.convert import face_selection_to_proto
from facerec.sdk.images import image_bytes, is_single_image, photo_name
from facerec.sdk.types import (
    DEFAULT_COLLECTION,
    Enrollment,
    FaceSelection,
    Frame,
    ImageInput,
    Photo,
    PhotosInput,
)
from facerec.v1 import facerec_pb2

EnrollmentInput = Enrollment | tuple[str, PhotosInput]
T = TypeVar("T")


def photos_list(photos: PhotosInput) -> list[ImageInput | Photo]:
    """The photos as a list; one image (a path, bytes, an array, a :class:`Photo`) is a list of one."""
    if is_single_image(photos):
        return [photos]  # type: ignore[list-item]
    return list(photos)  # type: ignore[arg-type]


def photo_message(photo: ImageInput | Photo) -> facerec_pb2.Photo:
    """A photo message: the image's bytes and its name (given, or the file's name)."""
    image = photo.image if isinstance(photo, Photo) else photo
    return facerec_pb2.Photo(image=image_bytes(image), name=photo_name(photo))


def enroll_request(
    person_id: str,
    photos: PhotosInput,
    *,
    collection: str = DEFAULT_COLLECTION,
    display_name: str | None = None,
    metadata: Mapping[str, str] | None = None,
    face_selection: FaceSelection | str | None = FaceSelection.SINGLE,
) -> facerec_pb2.EnrollRequest:
    """An enrollment request; images are read (or encoded) here."""
    request = facerec_pb2.EnrollRequest(
        collection=collection,
        person_id=person_id,
        metadata=dict(metadata or {}),
        photos=[photo_message(p) for p in photos_list(photos)],
        face_selection=face_selection_to_proto(face_selection),
    )
    if display_name is not None:
        request.display_name = display_name
    return request


def bulk_enroll_requests(
    enrollments: Iterable[EnrollmentInput],
    *,
    collection: str = DEFAULT_COLLECTION,
    face_selection: FaceSelection | str | None = FaceSelection.SINGLE,
) -> Iterable[facerec_pb2.EnrollRequest]:
    """Lazily turns enrollments (or ``(person_id, photos)`` tuples) into requests, one person at a time."""
    for item in enrollments:
        enrollment = item if isinstance(item, Enrollment) else Enrollment(person_id=item[0], photos=item[1])
        yield enroll_request(
            enrollment.person_id,
            enrollment.photos,
            collection=enrollment.collection or collection,
            display_name=enrollment.display_name,
            metadata=enrollment.metadata,
            face_selection=enrollment.face_selection or face_selection,
        )


def identify_request(
    image: ImageInput | Frame,
    *,
    collection: str = DEFAULT_COLLECTION,
    top_k: int = 0,
    threshold: float | None = None,
    include_embeddings: bool = False,
    frame_id: str = "",
    min_margin: float | None = None,
) -> facerec_pb2.IdentifyRequest:
    """An identification request (``top_k=0``: the service's default of 5; ``threshold`` and ``min_margin``
    None: the collection's decision settings)."""
    if isinstance(image, Frame):
        frame_id = image.frame_id or frame_id
        image = image.image
    request = facerec_pb2.IdentifyRequest(
        collection=collection,
        image=image_bytes(image),
        top_k=top_k,
        frame_id=frame_id,
        include_embeddings=include_embeddings,
    )
    if threshold is not None:
        request.threshold = threshold
    if min_margin is not None:
        request.min_margin = min_margin
    return request


def verify_request(
    image: ImageInput,
    *,
    reference_image: ImageInput | None = None,
    person: str | tuple[str, str] | None = None,
    threshold: float | None = None,
) -> facerec_pb2.VerifyRequest:
    """A verification request against exactly one reference: another photo, or an enrolled person given as
    ``person_id`` (default collection) or ``(collection, person_id)``."""
    if (reference_image is None) == (person is None):
        raise ValueError("verify needs exactly one reference: reference_image or person")
    request = facerec_pb2.VerifyRequest(image=image_bytes(image))
    if reference_image is not None:
        request.reference_image = image_bytes(reference_image)
    elif isinstance(person, str):
        request.person.CopyFrom(facerec_pb2.PersonReference(collection=DEFAULT_COLLECTION, person_id=person))
    elif person is not None:
        request.person.CopyFrom(facerec_pb2.PersonReference(collection=person[0], person_id=person[1]))
    if threshold is not None:
        request.threshold = threshold
    return request


def update_person_request(
    person_id: str,
    *,
    collection: str = DEFAULT_COLLECTION,
    display_name: str | None = None,
    metadata: Mapping[str, str] | None = None,
    replace_metadata: bool = False,
) -> facerec_pb2.UpdatePersonRequest:
    """A person update; metadata is merged (an empty value deletes the key) unless ``replace_metadata``."""
    request = facerec_pb2.UpdatePersonRequest(
        collection=collection,
        person_id=person_id,
        metadata=dict(metadata or {}),
        replace_metadata=replace_metadata,
    )
    if display_name is not None:
        request.display_name = display_name
    return request


def create_collection_request(
    name: str,
    *,
    threshold: float | None = None,
    model_id: str = "",
    target_fpir: float | None = None,
    min_margin: float | None = None,
    retention_seconds: int | None = None,
) -> facerec_pb2.CreateCollectionRequest:
    """A collection creation; each setting left None takes the service's default (see ``create_collection``)."""
    request = facerec_pb2.CreateCollectionRequest(name=name, model_id=model_id)
    if threshold is not None:
        request.threshold = threshold
    if target_fpir is not None:
        request.target_fpir = target_fpir
    if min_margin is not None:
        request.min_margin = min_margin
    if retention_seconds is not None:
        request.retention_seconds = retention_seconds
    return request


def update_collection_request(
    name: str,
    *,
    threshold: float | None = None,
    target_fpir: float | None = None,
    min_margin: float | None = None,
    retention_seconds: int | None = None,
) -> facerec_pb2.UpdateCollectionRequest:
    """A change of a collection's settings: the settings given replace the collection's."""
    if threshold is None and target_fpir is None and min_margin is None and retention_seconds is None:
        raise ValueError(
            "update_collection needs at least one of threshold, target_fpir, min_margin, retention_seconds"
        )
    request = facerec_pb2.UpdateCollectionRequest(name=name)
    if threshold is not None:
        request.threshold = threshold
    if target_fpir is not None:
        request.target_fpir = target_fpir
    if min_margin is not None:
        request.min_margin = min_margin
    if retention_seconds is not None:
        request.retention_seconds = retention_seconds
    return request


def list_audit_events_request(
    *, since: datetime | None = None, collection: str = "", page_size: int = 0, page_token: str = ""
) -> facerec_pb2.ListAuditEventsRequest:
    """A page of the audit record; ``since`` without a time zone is taken as UTC."""
    request = facerec_pb2.ListAuditEventsRequest(collection=collection, page_size=page_size, page_token=page_token)
    if since is not None:
        request.since.FromDatetime(since if since.tzinfo is not None else since.replace(tzinfo=UTC))
    return request


class RequestStream(Generic[T]):
    """Wraps the requests of a client stream and keeps the first error raised while producing them.

    gRPC consumes a request iterator on its own thread (or task) and answers an error there with a bare
    CANCELLED; the client re-raises the kept error instead, so a missing photo reads as FileNotFoundError.
    """

    def __init__(self, requests: Iterable[T]) -> None:
        self._requests = iter(requests)
        self.error: BaseException | None = None

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        try:
            return next(self._requests)
        except StopIteration:
            raise
        except Exception as e:
            self.error = e
            raise
