"""The gateway's domain: the public operations, orchestrated over the embedder and the registry.

Nothing here knows gRPC: callers pass the tenant (from authentication) and a :class:`Deadline` (from the incoming
call), and errors are domain errors. Messages are the contract's protobuf types.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass

import numpy as np
from google.rpc import error_details_pb2

from facerec.embedder.v1 import embedder_pb2
from facerec.registry.v1 import registry_pb2
from facerec.runtime import errors
from facerec.runtime.deadlines import Deadline
from facerec.v1 import face_pb2, facerec_pb2
from facerec_gateway import validation
from facerec_gateway.auth import Tenant, public_collection_name, registry_collection_name
from facerec_gateway.clients import Embedder, Registry
from facerec_gateway.decisions import Candidate, assign_identities, similarity
from facerec_gateway.enrollment import QualityPolicy, choose_face, face_id
from facerec_gateway.errors import EnrollmentRejected, InvalidRequest, ModelMismatch, NoFaceFound

log = logging.getLogger(__name__)

_COLLECTION_CACHE_S = 5.0
_PIPELINE_DEPTH = 8
# Photos of a bulk enrollment being enrolled at once: enough to keep the embedder's detection threads and its
# batches full, few enough that a person's own deadline is not spent queued behind many others' photos.
_BULK_PHOTOS_IN_FLIGHT = 16


@dataclass(frozen=True)
class RecognitionPolicy:
    """Defaults and limits of the gateway's decisions.

    ``stream_message_timeout_s`` bounds the work of each message of a stream (one person of a bulk enrollment,
    one frame): streams have no deadline of their own unless the client set one, which then bounds every message.
    """

    default_threshold: float
    default_collection: str
    quality: QualityPolicy
    stream_message_timeout_s: float

    def message_deadline(self, call_deadline: Deadline) -> Deadline:
        """The deadline of one stream message whose work starts now: the one rule of both streams."""
        return call_deadline.for_message(self.stream_message_timeout_s)


@dataclass
class _PhotoOutcome:
    result: facerec_pb2.PhotoResult
    record: registry_pb2.FaceRecord | None


class FaceRecognition:
    """Every public operation of facerec."""

    def __init__(self, embedder: Embedder, registry: Registry, policy: RecognitionPolicy) -> None:
        self.embedder = embedder
        self.registry = registry
        self.policy = policy
        self._model: embedder_pb2.ModelInfo | None = None
        self._collections: dict[str, tuple[float, registry_pb2.Collection]] = {}

    # ------------------------------------------------------------------------------------------ collections

    async def model(self, deadline: Deadline) -> embedder_pb2.ModelInfo:
        """The embedder's model (asked once, then remembered)."""
        if self._model is None:
            self._model = await self.embedder.model(deadline)
        return self._model

    async def create_collection(
        self, tenant: Tenant, request: facerec_pb2.CreateCollectionRequest, deadline: Deadline
    ) -> facerec_pb2.Collection:
        name = self._authorize(tenant, validation.collection_name(request.name))
        threshold = validation.threshold(request.threshold if request.HasField("threshold") else None)
        model = await self.model(deadline)
        if request.model_id and request.model_id != model.model_id:
            raise ModelMismatch(
                f"model {request.model_id!r} is not served here; the embedder serves {model.model_id!r}"
            )
        created = await self.registry.create_collection(
            registry_pb2.CreateCollectionRequest(
                name=registry_collection_name(tenant, name),
                model_id=model.model_id,
                dimension=model.dimension,
                default_threshold=threshold or self.policy.default_threshold,
                tenant=tenant.id,
            ),
            deadline,
        )
        self._remember(created)
        return self._public_collection(tenant, created)

    async def get_collection(self, tenant: Tenant, name: str, deadline: Deadline) -> facerec_pb2.Collection:
        name = self._authorize(tenant, name)
        found = await self.registry.get_collection(registry_collection_name(tenant, name), deadline)
        return self._public_collection(tenant, found)

    async def list_collections(self, tenant: Tenant, deadline: Deadline) -> facerec_pb2.ListCollectionsResponse:
        found = await self.registry.list_collections(tenant.id, deadline)
        visible = [
            self._public_collection(tenant, c)
            for c in found
            if (public := public_collection_name(tenant, c.name)) is not None and tenant.allows(public)
        ]
        return facerec_pb2.ListCollectionsResponse(collections=sorted(visible, key=lambda c: c.name))

    async def delete_collection(self, tenant: Tenant, name: str, deadline: Deadline) -> int:
        name = self._authorize(tenant, validation.collection_name(name))
        registry_name = registry_collection_name(tenant, name)
        self._collections.pop(registry_name, None)
        deleted = await self.registry.delete_collection(registry_name, deadline)
        self._collections.pop(registry_name, None)
        return deleted

    def _named(self, name: str) -> str:
        """The collection a request means: the one it names, or the default one."""
        return name or self.policy.default_collection

    def _authorize(self, tenant: Tenant, name: str) -> str:
        """The collection's name (the default one when empty), once the tenant may use it."""
        name = validation.collection_name(self._named(name))
        tenant.check(name)
        return name

    async def _collection(
        self, tenant: Tenant, name: str, deadline: Deadline, *, create_default: bool
    ) -> registry_pb2.Collection:
        """The registry collection behind a tenant's collection name; the default one is created on first use.

        Only its settings (model, dimension, threshold): identification and enrollment never wait for the
        registry to count faces and people.
        """
        name = self._authorize(tenant, name)
        registry_name = registry_collection_name(tenant, name)
        cached = self._collections.get(registry_name)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        try:
            collection = await self.registry.get_collection(registry_name, deadline, settings_only=True)
        except errors.NotFound:
            if not (create_default and name == self.policy.default_collection):
                raise errors.NotFound(f"collection {name!r} does not exist") from None
            request = facerec_pb2.CreateCollectionRequest(name=name)
            await self.create_collection(tenant, request, deadline)
            collection = await self.registry.get_collection(registry_name, deadline, settings_only=True)
        model = await self.model(deadline)
        if collection.model_id != model.model_id:
            raise ModelMismatch(
                f"collection {name!r} holds descriptors of model {collection.model_id!r}; "
                f"the embedder serves {model.model_id!r}"
            )
        self._remember(collection)
        return collection

    def _remember(self, collection: registry_pb2.Collection) -> None:
        self._collections[collection.name] = (time.monotonic() + _COLLECTION_CACHE_S, collection)

    @staticmethod
    def _public_collection(tenant: Tenant, c: registry_pb2.Collection) -> facerec_pb2.Collection:
        return facerec_pb2.Collection(
            name=public_collection_name(tenant, c.name) or c.name,
            model_id=c.model_id,
            dimension=c.dimension,
            threshold=c.default_threshold,
            face_count=c.face_count,
            person_count=c.person_count,
            created_at=c.created_at,
        )

    # ------------------------------------------------------------------------------------------ enrollment

    async def enroll(
        self, tenant: Tenant, request: facerec_pb2.EnrollRequest, deadline: Deadline, *, atomic: bool = True
    ) -> facerec_pb2.EnrollResponse:
        """Enroll a person's photos. ``atomic``: any rejected photo refuses the whole request (nothing written);
        otherwise the acceptable photos are enrolled and the others reported."""
        person_id = validation.person_id(request.person_id)
        if not request.photos:
            raise InvalidRequest("an enrollment needs at least one photo")
        if len(request.photos) > validation.MAX_PHOTOS_PER_ENROLLMENT:
            raise InvalidRequest(
                f"{len(request.photos)} photos in one enrollment; the maximum is {validation.MAX_PHOTOS_PER_ENROLLMENT}"
            )
        collection = await self._collection(tenant, request.collection, deadline, create_default=True)
        outcomes = await asyncio.gather(
            *(
                self._enroll_photo(collection, person_id, i, p, request.face_selection, deadline)
                for i, p in enumerate(request.photos)
            )
        )
        rejected = [o.result for o in outcomes if o.record is None]
        if rejected and atomic:
            raise _rejection_error(rejected)
        # Copies of one photo are one face (the same id): stored once, each copy reported enrolled under that id.
        records = list({o.record.face_id: o.record for o in outcomes if o.record is not None}.values())
        if records:
            await self.registry.upsert_faces(
                registry_pb2.UpsertFacesRequest(collection=collection.name, faces=records), deadline
            )
        person = await self._apply_person_attributes(collection, request, deadline, enrolled=bool(records))
        return facerec_pb2.EnrollResponse(
            person=person, photos=[o.result for o in outcomes], faces_enrolled=len(records)
        )

    async def _enroll_photo(
        self,
        collection: registry_pb2.Collection,
        person_id: str,
        index: int,
        photo: facerec_pb2.Photo,
        selection: facerec_pb2.FaceSelection.ValueType,
        deadline: Deadline,
    ) -> _PhotoOutcome:
        result = facerec_pb2.PhotoResult(photo_index=index, photo_name=photo.name)
        try:
            embedded = await self.embedder.embed_photo(validation.image(photo.image, f"photos[{index}]"), deadline)
        except errors.InvalidArgument as error:
            result.rejections.append(facerec_pb2.Rejection(reason=facerec_pb2.INVALID_IMAGE, message=error.message))
            return _PhotoOutcome(result, None)
        except errors.ResourceExhausted as error:
            result.rejections.append(facerec_pb2.Rejection(reason=facerec_pb2.IMAGE_TOO_LARGE, message=error.message))
            return _PhotoOutcome(result, None)
        choice = choose_face(embedded.faces, self.policy.quality, selection)
        if choice.face is not None:
            result.face.CopyFrom(choice.face)
        if choice.rejections or choice.face is None:
            result.rejections.extend(choice.rejections)
            return _PhotoOutcome(result, None)
        result.enrolled = True
        result.face_id = face_id(collection.name, person_id, photo.image, choice.face)
        record = registry_pb2.FaceRecord(
            face_id=result.face_id,
            person_id=person_id,
            embedding=choice.face.embedding.values,
            model_id=choice.face.embedding.model_id or embedded.model_id,
            metadata={"photo": photo.name} if photo.name else {},
        )
        return _PhotoOutcome(result, record)

    async def _apply_person_attributes(
        self,
        collection: registry_pb2.Collection,
        request: facerec_pb2.EnrollRequest,
        deadline: Deadline,
        *,
        enrolled: bool,
    ) -> facerec_pb2.Person:
        person_id = request.person_id
        if enrolled and (request.HasField("display_name") or request.metadata):
            update = registry_pb2.UpdatePersonRequest(
                collection=collection.name, person_id=person_id, metadata=request.metadata
            )
            if request.HasField("display_name"):
                update.display_name = request.display_name
            found = await self.registry.update_person(update, deadline)
        elif enrolled:
            found = await self.registry.get_person(collection.name, person_id, deadline)
        else:
            return facerec_pb2.Person(person_id=person_id, collection=request.collection)
        return _public_person(found, self._named(request.collection))

    async def bulk_enroll(
        self, tenant: Tenant, requests: AsyncIterable[facerec_pb2.EnrollRequest], call_deadline: Deadline
    ) -> facerec_pb2.BulkEnrollResponse:
        """Enroll a stream of people, several at a time; rejected photos and refused requests are reported.

        Each request gets its own deadline when its work starts (:meth:`RecognitionPolicy.message_deadline`);
        a request that runs out of it is reported as refused and the stream goes on. The stream itself ends
        with DEADLINE_EXCEEDED only when the call's own deadline passes.
        """
        summary = facerec_pb2.BulkEnrollResponse()
        people: set[str] = set()
        slots = _PhotoSlots(_BULK_PHOTOS_IN_FLIGHT)
        tasks: list[asyncio.Task[None]] = []

        def refuse(index: int, request: facerec_pb2.EnrollRequest, message: str) -> None:
            summary.rejected.append(
                facerec_pb2.BulkRejection(person_id=request.person_id, request_index=index, error=message)
            )

        async def enroll_one(index: int, request: facerec_pb2.EnrollRequest, taken: int) -> None:
            try:
                deadline = self.policy.message_deadline(call_deadline)
                response = await self.enroll(tenant, request, deadline, atomic=False)
            except errors.InvalidArgument as error:  # this request is wrong; the others may be right
                refuse(index, request, error.message)
                return
            except errors.DeadlineExceeded as error:
                if call_deadline.expired():
                    raise
                refuse(index, request, f"{error.message} (each request: {self.policy.stream_message_timeout_s:g} s)")
                return
            finally:
                await slots.release(taken)
            summary.faces_enrolled += response.faces_enrolled
            if response.faces_enrolled:
                people.add(request.person_id)
            for photo in response.photos:
                if not photo.enrolled:
                    summary.rejected.append(
                        facerec_pb2.BulkRejection(person_id=request.person_id, request_index=index, photo=photo)
                    )

        try:
            async for request in requests:
                taken = await slots.acquire(len(request.photos))
                summary.requests += 1
                summary.photos += len(request.photos)
                tasks.append(asyncio.create_task(enroll_one(summary.requests - 1, request, taken)))
                _raise_first_failure(tasks)
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            raise
        summary.people_enrolled = len(people)
        summary.rejected.sort(key=lambda r: (r.request_index, r.photo.photo_index))
        return summary

    # ------------------------------------------------------------------------------------------ identification

    async def identify(
        self, tenant: Tenant, request: facerec_pb2.IdentifyRequest, deadline: Deadline
    ) -> facerec_pb2.IdentifyResponse:
        """Every face of the photo, its nearest people and the decision (one identity per photo)."""
        top_k = validation.top_k(request.top_k)
        override = validation.threshold(request.threshold if request.HasField("threshold") else None)
        image = validation.image(request.image)
        self._authorize(tenant, request.collection)  # before any work is done for the caller
        collection, embedded = await asyncio.gather(
            self._collection(tenant, request.collection, deadline, create_default=True),
            self.embedder.embed_photo(image, deadline),
        )
        threshold = override or collection.default_threshold or self.policy.default_threshold
        response = facerec_pb2.IdentifyResponse(
            image_size=embedded.image_size, threshold=threshold, frame_id=request.frame_id
        )
        if not embedded.faces:
            return response
        search = await self.registry.search(
            registry_pb2.SearchRequest(
                collection=collection.name,
                queries=[registry_pb2.QueryVector(values=f.embedding.values) for f in embedded.faces],
                top_k=top_k,
            ),
            deadline,
        )
        candidates = [[Candidate(m.person_id, m.distance) for m in result.matches] for result in search.results]
        decisions = assign_identities(candidates, threshold)
        for face, result, decision in zip(embedded.faces, search.results, decisions, strict=True):
            identified = response.faces.add()
            identified.face.CopyFrom(face)
            if not request.include_embeddings:
                identified.face.ClearField("embedding")
            for match in result.matches:
                identified.candidates.append(_candidate(match, threshold))
            if decision is not None:
                chosen = next(m for m in result.matches if m.person_id == decision.person_id)
                identified.match.CopyFrom(_candidate(chosen, threshold))
        return response

    async def identify_stream(
        self, tenant: Tenant, requests: AsyncIterable[facerec_pb2.IdentifyRequest], call_deadline: Deadline
    ) -> AsyncIterator[facerec_pb2.IdentifyResponse]:
        """Identify frames as they come, several in flight, answering in the order received."""
        in_flight: asyncio.Queue[asyncio.Task[facerec_pb2.IdentifyResponse] | None] = asyncio.Queue(_PIPELINE_DEPTH)

        async def read() -> None:
            try:
                async for request in requests:
                    frame_deadline = self.policy.message_deadline(call_deadline)
                    await in_flight.put(asyncio.create_task(self.identify(tenant, request, frame_deadline)))
            finally:
                await in_flight.put(None)

        reader = asyncio.create_task(read())
        try:
            while (task := await in_flight.get()) is not None:
                yield await task
            await reader
        finally:
            reader.cancel()
            while not in_flight.empty():
                leftover = in_flight.get_nowait()
                if leftover is not None:
                    leftover.cancel()

    async def verify(
        self, tenant: Tenant, request: facerec_pb2.VerifyRequest, deadline: Deadline
    ) -> facerec_pb2.VerifyResponse:
        """Is the probe's (largest) face the same person as the reference photo's face or the enrolled person?"""
        override = validation.threshold(request.threshold if request.HasField("threshold") else None)
        probe_image = validation.image(request.image)
        reference = request.WhichOneof("reference")
        if reference is None:
            raise InvalidRequest("verify needs a reference: reference_image or person")
        response = facerec_pb2.VerifyResponse()
        if reference == "reference_image":
            probe, other = await asyncio.gather(
                self._largest_face(probe_image, "probe photo", deadline),
                self._largest_face(
                    validation.image(request.reference_image, "reference_image"), "reference photo", deadline
                ),
            )
            distance = _distance(probe.embedding.values, other.embedding.values)
            threshold = override or self.policy.default_threshold
            response.reference_face.CopyFrom(other)
            response.reference_face.ClearField("embedding")
        else:
            person_id = validation.person_id(request.person.person_id)
            self._authorize(tenant, request.person.collection)
            collection, probe = await asyncio.gather(
                self._collection(tenant, request.person.collection, deadline, create_default=False),
                self._largest_face(probe_image, "probe photo", deadline),
            )
            found = await self.registry.search(
                registry_pb2.SearchRequest(
                    collection=collection.name,
                    queries=[registry_pb2.QueryVector(values=probe.embedding.values)],
                    top_k=1,
                    all_faces=True,
                    person_id=person_id,
                ),
                deadline,
            )
            if not found.results or not found.results[0].matches:
                raise errors.NotFound(f"person {person_id!r} has no enrolled face in this collection")
            nearest = found.results[0].matches[0]
            distance = float(nearest.distance)
            threshold = override or collection.default_threshold or self.policy.default_threshold
            response.reference_face_id = nearest.face_id
        response.probe_face.CopyFrom(probe)
        response.probe_face.ClearField("embedding")
        response.distance = distance
        response.threshold = threshold
        response.similarity = similarity(distance, threshold)
        response.same_person = distance <= threshold
        return response

    async def _largest_face(self, image: bytes, what: str, deadline: Deadline) -> face_pb2.Face:
        embedded = await self.embedder.embed_photo(image, deadline)
        if not embedded.faces:
            raise NoFaceFound(f"the {what} shows no face")
        return embedded.faces[0]

    async def detect(self, request: facerec_pb2.DetectRequest, deadline: Deadline) -> facerec_pb2.DetectResponse:
        embedded = await self.embedder.embed_photo(
            validation.image(request.image), deadline, detect_only=not request.include_embeddings
        )
        return facerec_pb2.DetectResponse(faces=embedded.faces, image_size=embedded.image_size)

    # ------------------------------------------------------------------------------------------ people

    async def get_person(
        self, tenant: Tenant, request: facerec_pb2.GetPersonRequest, deadline: Deadline
    ) -> facerec_pb2.Person:
        collection = await self._collection(tenant, request.collection, deadline, create_default=False)
        found = await self.registry.get_person(collection.name, validation.person_id(request.person_id), deadline)
        return _public_person(found, self._named(request.collection))

    async def list_people(
        self, tenant: Tenant, request: facerec_pb2.ListPeopleRequest, deadline: Deadline
    ) -> facerec_pb2.ListPeopleResponse:
        collection = await self._collection(tenant, request.collection, deadline, create_default=True)
        page = await self.registry.list_people(
            registry_pb2.ListPeopleRequest(
                collection=collection.name,
                page_size=validation.page_size(request.page_size),
                page_token=request.page_token,
            ),
            deadline,
        )
        return facerec_pb2.ListPeopleResponse(
            people=[_public_person(p, self._named(request.collection)) for p in page.people],
            next_page_token=page.next_page_token,
        )

    async def update_person(
        self, tenant: Tenant, request: facerec_pb2.UpdatePersonRequest, deadline: Deadline
    ) -> facerec_pb2.Person:
        collection = await self._collection(tenant, request.collection, deadline, create_default=False)
        update = registry_pb2.UpdatePersonRequest(
            collection=collection.name,
            person_id=validation.person_id(request.person_id),
            metadata=request.metadata,
            replace_metadata=request.replace_metadata,
        )
        if request.HasField("display_name"):
            update.display_name = request.display_name
        found = await self.registry.update_person(update, deadline)
        return _public_person(found, self._named(request.collection))

    async def delete_person(
        self, tenant: Tenant, request: facerec_pb2.DeletePersonRequest, deadline: Deadline
    ) -> facerec_pb2.DeletePersonResponse:
        collection = await self._collection(tenant, request.collection, deadline, create_default=False)
        deleted = await self.registry.delete_person(collection.name, validation.person_id(request.person_id), deadline)
        return facerec_pb2.DeletePersonResponse(faces_deleted=deleted)


def _candidate(match: registry_pb2.Match, threshold: float) -> facerec_pb2.Candidate:
    return facerec_pb2.Candidate(
        person_id=match.person_id,
        display_name=match.display_name,
        distance=match.distance,
        similarity=similarity(match.distance, threshold),
        face_id=match.face_id,
    )


def _public_person(person: registry_pb2.Person, collection: str) -> facerec_pb2.Person:
    return facerec_pb2.Person(
        person_id=person.person_id,
        display_name=person.display_name,
        metadata=person.metadata,
        face_count=person.face_count,
        face_ids=person.face_ids,
        collection=collection,
    )


def _distance(a: Sequence[float], b: Sequence[float]) -> float:
    return float(np.linalg.norm(np.asarray(a, dtype=np.float32) - np.asarray(b, dtype=np.float32)))


def _rejection_error(rejected: Sequence[facerec_pb2.PhotoResult]) -> EnrollmentRejected:
    failure = error_details_pb2.PreconditionFailure()
    parts = []
    for photo in rejected:
        label = photo.photo_name or f"photos[{photo.photo_index}]"
        for rejection in photo.rejections:
            failure.violations.add(
                type=facerec_pb2.RejectionReason.Name(rejection.reason),
                subject=f"photos[{photo.photo_index}]",
                description=f"{label}: {rejection.message}",
            )
            parts.append(f"{label}: {rejection.message}")
    return EnrollmentRejected("nothing enrolled; " + "; ".join(parts), [failure])


class _PhotoSlots:
    """A budget of photos in flight: a request takes as many slots as it has photos (at most the whole budget,
    so a person with more photos than the budget waits for an empty pipeline instead of forever)."""

    def __init__(self, photos: int) -> None:
        self._capacity = photos
        self._free = photos
        self._changed = asyncio.Condition()

    async def acquire(self, photos: int) -> int:
        """Waits until ``photos`` slots are free, takes them and returns how many were taken."""
        taken = max(1, min(photos, self._capacity))
        async with self._changed:
            await self._changed.wait_for(lambda: self._free >= taken)
            self._free -= taken
        return taken

    async def release(self, taken: int) -> None:
        async with self._changed:
            self._free += taken
            self._changed.notify_all()


def _raise_first_failure(tasks: Sequence[asyncio.Task[None]]) -> None:
    """Surface an unexpected error (e.g. a dependency down) of a finished bulk task without waiting for all."""
    for task in tasks:
        if task.done() and not task.cancelled():
            error = task.exception()
            if error is not None:
                raise error
