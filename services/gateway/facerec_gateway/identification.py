"""Identification: every face of a photo, its nearest enrolled people and the decision, one identity per photo.

One call costs the embedder one photo and the registry one search (for every face of the photo at once); the
collection comes from the collections' cache, with its size when its threshold follows the size (a target
FPIR), so steady identification makes no other registry call. The decision itself is ``decisions.py``'s: the
applied threshold (the request's, the collection's fixed one, or the one its target FPIR gives at its size),
the margin rule and the assignment of people to faces.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass

from facerec.runtime.deadlines import Deadline
from facerec.runtime.stages import StageTimer
from facerec_gateway import validation
from facerec_gateway.auth import Tenant
from facerec_gateway.clients import Embedder, Registry, concurrently
from facerec_gateway.collections import Collections
from facerec_gateway.decisions import (
    AppliedThreshold,
    Candidate,
    Decision,
    FaceDecision,
    GallerySize,
    applied_threshold,
    decide,
    similarity,
)
from facerec_gateway.domain import Face, ImageSize, Match, SearchQuery, Vector
from facerec_gateway.errors import DependencyUnavailable
from facerec_gateway.policy import RecognitionPolicy

# People searched per face, whatever the request's top_k: the margin is the second-nearest person's distance
# minus the nearest's.
MIN_PEOPLE_SEARCHED = 2
# Frames of one IdentifyStream identified at once.
PIPELINE_DEPTH = 8

STAGES = StageTimer("gateway")


@dataclass(frozen=True)
class IdentifyRequest:
    """A photo to identify in a collection ("" for the default one); ``threshold`` and ``min_margin`` override
    the collection's decision settings for this call; ``top_k`` 0 means the default."""

    collection: str
    image: bytes
    top_k: int = 0
    threshold: float | None = None
    min_margin: float | None = None
    frame_id: str = ""
    include_embeddings: bool = False


@dataclass(frozen=True)
class PersonMatch:
    """An enrolled person near a face: their nearest face, its distance, and the similarity at the threshold."""

    person_id: str
    display_name: str
    distance: float
    similarity: float
    face_id: str


@dataclass(frozen=True)
class IdentifiedFace:
    """One face, its nearest people (nearest first) and the decision; ``match`` is set exactly when MATCHED."""

    face: Face
    candidates: tuple[PersonMatch, ...]
    decision: Decision
    match: PersonMatch | None
    margin: float | None


@dataclass(frozen=True)
class Identification:
    """Every face of a photo with its decision, and the threshold that decided (with why)."""

    faces: tuple[IdentifiedFace, ...]
    image_size: ImageSize
    applied: AppliedThreshold
    frame_id: str = ""


class Identifier:
    """Identifies photos, one at a time or as a stream of frames."""

    def __init__(
        self, embedder: Embedder, registry: Registry, collections: Collections, policy: RecognitionPolicy
    ) -> None:
        self.embedder = embedder
        self.registry = registry
        self.collections = collections
        self.policy = policy

    async def identify(self, tenant: Tenant, request: IdentifyRequest, deadline: Deadline) -> Identification:
        """Every face of the photo, its nearest people and the decision (one identity per photo)."""
        top_k = validation.top_k(request.top_k)
        override = validation.threshold(request.threshold)
        min_margin = validation.min_margin(request.min_margin)
        image = validation.image(request.image)
        validation.frame_id(request.frame_id)
        self.collections.authorize(tenant, request.collection)  # before any work is done for the caller
        collection, photo = await concurrently(
            self.collections.resolve(tenant, request.collection, deadline, create_default=True, with_size=True),
            self.embedder.embed_photo(image, deadline),
        )
        applied = applied_threshold(
            self.collections.settings(collection),
            collection.size or GallerySize(people=0, faces=0),
            override=override,
            min_margin_override=min_margin,
        )
        if not photo.faces:
            return Identification((), photo.image_size, applied, request.frame_id)
        query = SearchQuery(vectors=[_descriptor(face) for face in photo.faces], top_k=max(top_k, MIN_PEOPLE_SEARCHED))
        with STAGES.time("search"):
            results = await self.registry.search(collection.name, query, deadline)
        with STAGES.time("decide"):
            decisions = decide([[Candidate(m.person_id, m.distance) for m in matches] for matches in results], applied)
            faces = tuple(
                _identified(face, matches, decision, applied.threshold, top_k, request.include_embeddings)
                for face, matches, decision in zip(photo.faces, results, decisions, strict=True)
            )
        return Identification(faces, photo.image_size, applied, request.frame_id)

    async def identify_stream(
        self, tenant: Tenant, requests: AsyncIterable[IdentifyRequest], call_deadline: Deadline
    ) -> AsyncIterator[Identification]:
        """Identify frames as they come, several in flight, answering in the order received; each frame has its
        own deadline (``policy.message_deadline``)."""
        in_flight: asyncio.Queue[asyncio.Task[Identification] | None] = asyncio.Queue(PIPELINE_DEPTH)

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


def _descriptor(face: Face) -> Vector:
    if face.embedding is None:
        raise DependencyUnavailable("the embedder returned a face without its descriptor")
    return face.embedding.values


def _identified(
    face: Face, matches: Sequence[Match], decision: FaceDecision, threshold: float, top_k: int, with_embedding: bool
) -> IdentifiedFace:
    """The face with its ``top_k`` nearest people and its decision (the match is one of the people searched)."""
    people = {m.person_id: _person_match(m, threshold) for m in matches}
    match = people[decision.match.person_id] if decision.match is not None else None
    return IdentifiedFace(
        face=face if with_embedding else face.without_embedding(),
        candidates=tuple(people[m.person_id] for m in matches[:top_k]),
        decision=decision.decision,
        match=match,
        margin=decision.margin,
    )


def _person_match(match: Match, threshold: float) -> PersonMatch:
    return PersonMatch(
        person_id=match.person_id,
        display_name=match.display_name,
        distance=match.distance,
        similarity=similarity(match.distance, threshold),
        face_id=match.face_id,
    )
