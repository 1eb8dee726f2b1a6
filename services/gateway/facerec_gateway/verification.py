"""Verification (1:1): is the probe photo's face the same person as a reference photo's face, or an enrolled
person? And detection: the faces of a photo, without identification.

Verification compares with a fixed threshold: the request's, else the collection's threshold (for an enrolled
person; with a target FPIR that is its cap), else the gateway's default. A target FPIR is a rule about strangers
among many enrolled people, which a comparison with one person does not face.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np

from facerec.runtime import errors
from facerec.runtime.deadlines import Deadline
from facerec_gateway import validation
from facerec_gateway.auth import Tenant
from facerec_gateway.clients import Embedder, Registry
from facerec_gateway.collections import Collections
from facerec_gateway.decisions import similarity
from facerec_gateway.domain import EmbeddedPhoto, Face, SearchQuery, Vector
from facerec_gateway.errors import DependencyUnavailable, InvalidRequest, NoFaceFound
from facerec_gateway.policy import RecognitionPolicy


@dataclass(frozen=True)
class PersonReference:
    """An enrolled person of a collection ("" for the default one)."""

    collection: str
    person_id: str


@dataclass(frozen=True)
class VerifyRequest:
    """A probe photo and its reference: another photo, or an enrolled person (exactly one of them)."""

    image: bytes
    reference_image: bytes | None = None
    person: PersonReference | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class Verification:
    """Whether the probe is the reference (distance at most the threshold), with the faces compared."""

    same_person: bool
    distance: float
    similarity: float
    threshold: float
    probe_face: Face
    reference_face: Face | None = None
    reference_face_id: str = ""


@dataclass(frozen=True)
class _Reference:
    distance: float
    threshold: float
    face: Face | None = None
    face_id: str = ""


class Verifier:
    """Compares a probe photo's largest face with a reference; detects the faces of a photo."""

    def __init__(
        self, embedder: Embedder, registry: Registry, collections: Collections, policy: RecognitionPolicy
    ) -> None:
        self.embedder = embedder
        self.registry = registry
        self.collections = collections
        self.policy = policy

    async def verify(self, tenant: Tenant, request: VerifyRequest, deadline: Deadline) -> Verification:
        """Is the probe's (largest) face the same person as the reference photo's face or the enrolled person?"""
        override = validation.threshold(request.threshold)
        probe_image = validation.image(request.image)
        if request.reference_image is not None:
            reference_image = validation.image(request.reference_image, "reference_image")
            probe, other = await asyncio.gather(
                self._largest_face(probe_image, "probe photo", deadline),
                self._largest_face(reference_image, "reference photo", deadline),
            )
            reference = _Reference(
                _distance(_descriptor(probe), _descriptor(other)),
                override or self.policy.default_threshold,
                face=other.without_embedding(),
            )
        elif request.person is not None:
            probe, reference = await self._against_person(tenant, request.person, probe_image, override, deadline)
        else:
            raise InvalidRequest("verify needs a reference: reference_image or person")
        return Verification(
            same_person=reference.distance <= reference.threshold,
            distance=reference.distance,
            similarity=similarity(reference.distance, reference.threshold),
            threshold=reference.threshold,
            probe_face=probe.without_embedding(),
            reference_face=reference.face,
            reference_face_id=reference.face_id,
        )

    async def detect(self, image: bytes, deadline: Deadline, *, include_embeddings: bool) -> EmbeddedPhoto:
        """The faces of a photo, largest first, with their descriptors when asked."""
        return await self.embedder.embed_photo(validation.image(image), deadline, detect_only=not include_embeddings)

    async def _against_person(
        self, tenant: Tenant, person: PersonReference, image: bytes, override: float | None, deadline: Deadline
    ) -> tuple[Face, _Reference]:
        person_id = validation.person_id(person.person_id)
        self.collections.authorize(tenant, person.collection)
        collection, probe = await asyncio.gather(
            self.collections.resolve(tenant, person.collection, deadline, create_default=False),
            self._largest_face(image, "probe photo", deadline),
        )
        query = SearchQuery(vectors=[_descriptor(probe)], top_k=1, all_faces=True, person_id=person_id)
        found = await self.registry.search(collection.name, query, deadline)
        if not found or not found[0]:
            raise errors.NotFound(f"person {person_id!r} has no enrolled face in this collection")
        nearest = found[0][0]
        threshold = override or self.collections.settings(collection).threshold
        return probe, _Reference(float(nearest.distance), threshold, face_id=nearest.face_id)

    async def _largest_face(self, image: bytes, what: str, deadline: Deadline) -> Face:
        embedded = await self.embedder.embed_photo(image, deadline)
        if not embedded.faces:
            raise NoFaceFound(f"the {what} shows no face")
        return embedded.faces[0]


def _descriptor(face: Face) -> Vector:
    if face.embedding is None:
        raise DependencyUnavailable("the embedder returned a face without its descriptor")
    return face.embedding.values


def _distance(a: Vector, b: Vector) -> float:
    return float(np.linalg.norm(a - b))
