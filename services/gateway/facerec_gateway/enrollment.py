"""Enrollment: which face of each photo is enrolled (or why none is), and the enrollment of one person.

A photo is acceptable when it holds exactly one acceptable face (by default) — or, with "largest", when at least
one face is acceptable, the largest of them being taken. A face is acceptable when it is large enough, sharp
enough and frontal enough, by the embedder's measures (``facerec_embedder.quality``): each is taken from the
landmarks and the aligned chip, so a small sharp face is refused as small, never as blurred, and a photo's
resolution moves only its size. Each gate guards recognition: the minimums are chosen from the genuine-pair
distances of faces below and above them (``benchmarks/quality_gates.py``).

Each enrolled face is stored with its photo's name, its measures and its box (``face_metadata``), so the faces of
a person can be listed with what they came from and how good they were.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from facerec.retry import overload_wait
from facerec.runtime import errors
from facerec.runtime.deadlines import Deadline
from facerec_gateway import validation
from facerec_gateway.auth import Tenant
from facerec_gateway.clients import Embedder, Registry
from facerec_gateway.collections import Collections
from facerec_gateway.domain import (
    Box,
    EmbeddedPhoto,
    Face,
    FaceRecord,
    Person,
    PersonUpdate,
    Rejection,
    RejectionReason,
    StoredCollection,
)
from facerec_gateway.errors import DependencyUnavailable, EnrollmentRejected, advised_retry_s
from facerec_gateway.face_metadata import face_metadata

# Face ids are uuid5 in this namespace of (collection, person, photo digest, face box): enrolling the same photo
# of the same person twice yields the same id, so retries and re-imports store each face once.
FACE_ID_NAMESPACE = uuid.UUID("6d1c1f8e-2a8e-5d55-9b8f-3f2f4c1e7a10")


class FaceSelection(enum.IntEnum):
    """Which face of a photo is enrolled (the values are those of facerec.v1.FaceSelection)."""

    UNSPECIFIED = 0  # as SINGLE
    SINGLE = 1
    LARGEST = 2


class QualityMeasures(Protocol):
    """What the quality gates read of a face's measures."""

    @property
    def face_size_px(self) -> float: ...
    @property
    def sharpness(self) -> float: ...
    @property
    def frontality(self) -> float: ...


class MeasuredFace(Protocol):
    """A face with quality measures (a domain :class:`Face`, or the embedder's message in benchmarks)."""

    @property
    def quality(self) -> QualityMeasures: ...


F = TypeVar("F", bound=MeasuredFace)


@dataclass(frozen=True)
class QualityPolicy:
    """Minimums a face must meet to be enrolled."""

    min_face_size_px: float
    min_sharpness: float
    min_frontality: float

    def rejections(self, face: MeasuredFace) -> list[Rejection]:
        """Why ``face`` is not acceptable (empty when it is)."""
        quality = face.quality
        found: list[Rejection] = []
        if quality.face_size_px < self.min_face_size_px:
            found.append(
                Rejection(
                    RejectionReason.FACE_TOO_SMALL,
                    f"face size is {quality.face_size_px:.1f} px, the minimum is {self.min_face_size_px:g} px "
                    "(the face's width in pixels of the photo): send a photo where the face is larger",
                )
            )
        if quality.sharpness < self.min_sharpness:
            found.append(
                Rejection(
                    RejectionReason.FACE_TOO_BLURRY,
                    f"face sharpness is {quality.sharpness:.2f}, the minimum is {self.min_sharpness:.2f} "
                    "(detail at the face's own resolution): the face is out of focus or moved",
                )
            )
        if quality.frontality < self.min_frontality:
            found.append(
                Rejection(
                    RejectionReason.FACE_NOT_FRONTAL,
                    f"face frontality is {quality.frontality:.2f}, the minimum is {self.min_frontality:.2f} "
                    "(1 = looking at the camera): the head is turned or tilted",
                )
            )
        return found


@dataclass(frozen=True)
class FaceChoice(Generic[F]):
    """The outcome for one photo: the face to enroll, or the reasons there is none (with the face that failed)."""

    face: F | None
    rejections: list[Rejection]


def choose_face(faces: Sequence[F], policy: QualityPolicy, selection: FaceSelection) -> FaceChoice[F]:
    """Pick the face of a photo to enroll (faces are ordered largest first by the embedder)."""
    if not faces:
        return FaceChoice(None, [Rejection(RejectionReason.NO_FACE, "no face was found in the photo")])
    verdicts = [(face, policy.rejections(face)) for face in faces]
    acceptable = [face for face, reasons in verdicts if not reasons]
    if selection == FaceSelection.LARGEST:
        if acceptable:
            return FaceChoice(acceptable[0], [])
        return FaceChoice(faces[0], verdicts[0][1])
    if len(acceptable) > 1:
        message = (
            f"{len(acceptable)} acceptable faces were found; enroll photos showing one face, or ask for the largest"
        )
        return FaceChoice(None, [Rejection(RejectionReason.MULTIPLE_FACES, message)])
    if acceptable:
        return FaceChoice(acceptable[0], [])
    return FaceChoice(faces[0], verdicts[0][1])


def face_id(collection: str, person_id: str, image: bytes, face: Face) -> str:
    """The deterministic id of ``face`` of ``image`` enrolled for ``person_id`` in ``collection``."""
    return digest_face_id(collection, person_id, hashlib.sha256(image).hexdigest(), face.box)


def digest_face_id(collection: str, person_id: str, photo_digest: str, box: Box) -> str:
    """The same id from the photo's SHA-256 hex digest (for callers that keep digests, not photos: clustering)."""
    key = f"{collection}\n{person_id}\n{photo_digest}\n{box.x},{box.y},{box.width},{box.height}"
    return str(uuid.uuid5(FACE_ID_NAMESPACE, key))


# ------------------------------------------------------------------------------------------ one person


@dataclass(frozen=True)
class Photo:
    """An encoded photo and the caller's label for it (e.g. its file name)."""

    image: bytes
    name: str = ""


@dataclass(frozen=True)
class EnrollRequest:
    """Photos of one person to enroll in a collection ("" for the default one)."""

    collection: str
    person_id: str
    photos: tuple[Photo, ...]
    display_name: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    face_selection: FaceSelection = FaceSelection.UNSPECIFIED


@dataclass(frozen=True)
class PhotoResult:
    """What became of one photo: enrolled under ``face_id``, or rejected with reasons (``face``: the one that
    failed, when a face was found)."""

    photo_index: int
    photo_name: str
    enrolled: bool = False
    face_id: str = ""
    face: Face | None = None
    rejections: tuple[Rejection, ...] = ()


@dataclass(frozen=True)
class Enrollment:
    """The person after an enrollment, what became of each photo, and how many faces were stored."""

    person: Person
    photos: tuple[PhotoResult, ...]
    faces_enrolled: int


@dataclass(frozen=True)
class _PhotoOutcome:
    result: PhotoResult
    record: FaceRecord | None


class Enroller:
    """Enrolls people's photos: each photo's face chosen by the quality gates, the faces stored in one write."""

    def __init__(
        self, embedder: Embedder, registry: Registry, collections: Collections, quality: QualityPolicy
    ) -> None:
        self.embedder = embedder
        self.registry = registry
        self.collections = collections
        self.quality = quality

    async def enroll(
        self, tenant: Tenant, request: EnrollRequest, deadline: Deadline, *, atomic: bool = True
    ) -> Enrollment:
        """Enroll a person's photos. ``atomic``: any rejected photo refuses the whole request (nothing written);
        otherwise the acceptable photos are enrolled and the others reported."""
        person_id = _checked_person(request)
        collection = await self.collections.resolve(tenant, request.collection, deadline, create_default=True)
        outcomes = await asyncio.gather(
            *(
                self._enroll_photo(collection, person_id, i, photo, request.face_selection, deadline)
                for i, photo in enumerate(request.photos)
            )
        )
        rejected = [o.result for o in outcomes if o.record is None]
        if rejected and atomic:
            raise EnrollmentRejected(rejected)
        # Copies of one photo are one face (the same id): stored once, each copy reported enrolled under that id.
        records = list({o.record.face_id: o.record for o in outcomes if o.record is not None}.values())
        if records:
            await self.registry.upsert_faces(collection.name, records, deadline)
            self.collections.cache.size_changed(collection.name)
        person = await self._person_after(collection, request, deadline, enrolled=bool(records))
        return Enrollment(person=person, photos=tuple(o.result for o in outcomes), faces_enrolled=len(records))

    async def embed_waiting(self, image: bytes, deadline: Deadline) -> EmbeddedPhoto:
        """The photo embedded, waiting its turn when the embedder refuses it as overloaded.

        An enrollment's photos (up to 64, and a bulk stream's many people) go to the embedder at once; past its
        in-flight bound it refuses the excess with an advised delay. A photo is a part of its request that the
        caller cannot retry alone, so the gateway tries it again after that delay (:func:`facerec.retry.
        overload_wait`) while the request's deadline allows; input over a limit advises no delay and is
        reported at once.
        """
        attempts = 0
        while True:
            attempts += 1
            try:
                return await self.embedder.embed_photo(image, deadline)
            except errors.ResourceExhausted as error:
                wait = overload_wait(advised_retry_s(error), attempts, deadline.remaining(), max_attempts=0)
                if wait is None:
                    raise
            await asyncio.sleep(wait)

    async def _enroll_photo(
        self,
        collection: StoredCollection,
        person_id: str,
        index: int,
        photo: Photo,
        selection: FaceSelection,
        deadline: Deadline,
    ) -> _PhotoOutcome:
        unenrolled = PhotoResult(photo_index=index, photo_name=photo.name)
        try:
            embedded = await self.embed_waiting(validation.image(photo.image, f"photos[{index}]"), deadline)
        except errors.InvalidArgument as error:
            return _PhotoOutcome(_rejected(unenrolled, RejectionReason.INVALID_IMAGE, error.message), None)
        except errors.ResourceExhausted as error:
            return _PhotoOutcome(_rejected(unenrolled, RejectionReason.IMAGE_TOO_LARGE, error.message), None)
        choice = choose_face(embedded.faces, self.quality, selection)
        face = choice.face
        if choice.rejections or face is None:
            result = PhotoResult(index, photo.name, face=face, rejections=tuple(choice.rejections))
            return _PhotoOutcome(result, None)
        if face.embedding is None:
            raise DependencyUnavailable("the embedder returned a face without its descriptor")
        enrolled_id = face_id(collection.name, person_id, photo.image, face)
        record = FaceRecord(
            face_id=enrolled_id,
            person_id=person_id,
            embedding=face.embedding.values,
            model_id=face.embedding.model_id or embedded.model_id,
            metadata=face_metadata(photo.name, face),
        )
        return _PhotoOutcome(PhotoResult(index, photo.name, True, enrolled_id, face), record)

    async def _person_after(
        self, collection: StoredCollection, request: EnrollRequest, deadline: Deadline, *, enrolled: bool
    ) -> Person:
        """The person as stored after the enrollment, with the request's attributes applied."""
        public_name = self.collections.named(request.collection)
        if not enrolled:
            return Person(person_id=request.person_id, collection=request.collection)
        if request.display_name is not None or request.metadata:
            update = PersonUpdate(request.person_id, request.display_name, request.metadata)
            found = await self.registry.update_person(collection.name, update, deadline)
        else:
            found = await self.registry.get_person(collection.name, request.person_id, deadline)
        return dataclasses.replace(found, collection=public_name)


def _checked_person(request: EnrollRequest) -> str:
    """The request's person id once every field of the request is within ``facerec.limits`` (before any work)."""
    person_id = validation.person_id(request.person_id)
    validation.photo_count(len(request.photos))
    validation.enrollment_bytes([photo.image for photo in request.photos])
    validation.photo_names([photo.name for photo in request.photos])
    validation.display_name(request.display_name)
    validation.metadata(request.metadata)
    return person_id


def _rejected(result: PhotoResult, reason: RejectionReason, message: str) -> PhotoResult:
    return PhotoResult(result.photo_index, result.photo_name, rejections=(Rejection(reason, message),))
