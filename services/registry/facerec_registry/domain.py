"""The registry's domain: collections of people's faces, and the rules every request must satisfy.

Pure data and validation; nothing here knows about gRPC or Qdrant. Validation functions raise the registry's
domain errors (``errors.py``) and return normalised values, so the ``Registry`` can validate a whole request
before it writes anything.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from facerec import limits
from facerec_registry.errors import (
    InvalidCollectionName,
    InvalidCollectionSettings,
    InvalidFace,
    InvalidPageRequest,
    InvalidPerson,
    InvalidSearch,
)

Vector = npt.NDArray[np.float32]
T = TypeVar("T")

# The limits other services check too live in ``facerec.limits``; the ones below are the registry's alone.
MAX_DIMENSION = 4096
# Face ids are the gateway's uuid5 strings (36 characters); other internal callers get room for their own.
MAX_FACE_ID_LENGTH = 128
MAX_MODEL_ID_LENGTH = 128
# Control characters (C0, DEL, C1) would make ids unprintable in logs and listings.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Collection:
    """A gallery: faces of one embedding model, compared by euclidean distance.

    ``target_fpir`` and ``min_margin`` are decision settings the registry keeps for the gateway (0: a fixed
    threshold, no margin rule); ``retention_seconds`` is how long a person's faces are kept after their newest
    enrollment (0: no limit). Collections made before these existed read as 0. A ``transient`` collection is a
    caller's working set (e.g. a clustering call's): not audited, not listed, removed when the registry starts.
    """

    name: str
    model_id: str
    dimension: int
    default_threshold: float
    tenant: str
    created_at: datetime
    target_fpir: float = 0.0
    min_margin: float = 0.0
    retention_seconds: int = 0
    transient: bool = False

    def same_settings(self, other: Collection) -> bool:
        """Whether ``other`` asks for exactly this collection (creation time aside)."""
        exact = ("name", "model_id", "dimension", "tenant", "retention_seconds", "transient")
        return all(getattr(self, name) == getattr(other, name) for name in exact) and all(
            math.isclose(mine, theirs, rel_tol=0, abs_tol=1e-6)
            for mine, theirs in [
                (self.default_threshold, other.default_threshold),
                (self.target_fpir, other.target_fpir),
                (self.min_margin, other.min_margin),
            ]
        )


@dataclass(frozen=True)
class CollectionUpdate:
    """A change to a collection's settings: each field given replaces the stored value."""

    default_threshold: float | None = None
    target_fpir: float | None = None
    min_margin: float | None = None
    retention_seconds: int | None = None

    def apply(self, current: Collection) -> Collection:
        """The collection after this update."""
        return replace(
            current,
            default_threshold=current.default_threshold if self.default_threshold is None else self.default_threshold,
            target_fpir=current.target_fpir if self.target_fpir is None else self.target_fpir,
            min_margin=current.min_margin if self.min_margin is None else self.min_margin,
            retention_seconds=current.retention_seconds if self.retention_seconds is None else self.retention_seconds,
        )

    def described(self) -> str:
        """The fields this update sets, as ``name=value`` words (for the audit record)."""
        given: list[tuple[str, float | int | None]] = [
            ("default_threshold", self.default_threshold),
            ("target_fpir", self.target_fpir),
            ("min_margin", self.min_margin),
            ("retention_seconds", self.retention_seconds),
        ]
        return " ".join(f"{name}={_number(value)}" for name, value in given if value is not None)


def _number(value: float | int) -> str:
    """A setting's value as written in the audit record: integers whole, decimals in their shortest form."""
    return str(value) if isinstance(value, int) else f"{value:g}"


@dataclass(frozen=True)
class Counts:
    """How many faces and distinct people a collection holds."""

    faces: int
    people: int


@dataclass(frozen=True)
class CollectionStatus:
    """A collection with what it holds now."""

    collection: Collection
    counts: Counts


@dataclass(frozen=True)
class FaceRecord:
    """One stored face: a descriptor of a person, with free-form attributes usable in search filters."""

    face_id: str
    person_id: str
    embedding: Vector
    model_id: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    enrolled_at: datetime | None = None


@dataclass(frozen=True)
class PersonAttributes:
    """What the registry knows of a person besides their faces."""

    person_id: str
    display_name: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Person:
    """A person as listed: attributes plus the ids of their faces (ordered)."""

    person_id: str
    display_name: str
    metadata: Mapping[str, str]
    face_ids: tuple[str, ...]

    @property
    def face_count(self) -> int:
        """Number of faces stored for this person."""
        return len(self.face_ids)


@dataclass(frozen=True)
class PersonUpdate:
    """A change to a person's attributes: display name when given; metadata merged or replaced."""

    person_id: str
    display_name: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    replace_metadata: bool = False

    def apply(self, current: PersonAttributes) -> PersonAttributes:
        """The attributes after this update; an empty metadata value deletes its key.

        Raises ``InvalidPerson`` when the update breaks a limit of ``facerec.limits`` (display name, metadata
        keys and values) or leaves the person more metadata entries than allowed.
        """
        _checked(limits.check_metadata, self.metadata)
        if self.display_name is not None:
            _checked(limits.check_display_name, self.display_name)
        base = {} if self.replace_metadata else dict(current.metadata)
        base.update(self.metadata)
        metadata = {key: value for key, value in base.items() if value != ""}
        if len(metadata) > limits.MAX_METADATA_ENTRIES:
            raise InvalidPerson(
                f"the person would have {len(metadata)} metadata entries; the maximum is {limits.MAX_METADATA_ENTRIES}"
            )
        name = current.display_name if self.display_name is None else self.display_name
        return PersonAttributes(person_id=current.person_id, display_name=name, metadata=metadata)

    def described(self) -> str:
        """What this update changes, without the values (for the audit record)."""
        parts = ["display_name"] if self.display_name is not None else []
        removed = sum(1 for value in self.metadata.values() if value == "")
        if self.replace_metadata:
            parts.append(f"metadata replaced ({len(self.metadata) - removed} entries)")
        elif self.metadata:
            parts.append(f"metadata: {len(self.metadata) - removed} set, {removed} removed")
        return ", ".join(parts)


@dataclass(frozen=True)
class MovedFace:
    """A face after it was moved to another person (without its descriptor), and whose it was before."""

    face: FaceRecord
    from_person_id: str


@dataclass(frozen=True)
class SearchQuery:
    """A batch of query descriptors and how to answer each."""

    vectors: Sequence[Vector]
    top_k: int
    max_distance: float | None = None
    all_faces: bool = False
    metadata_filter: Mapping[str, str] = field(default_factory=dict)
    # When not empty, only faces of this person (1:1 verification against an enrolled person).
    person_id: str = ""


@dataclass(frozen=True)
class Match:
    """A stored face near a query descriptor."""

    person_id: str
    face_id: str
    distance: float
    display_name: str


@dataclass(frozen=True)
class PeoplePage:
    """One page of people ordered by person id; ``next_page_token`` is empty on the last page."""

    people: tuple[Person, ...]
    next_page_token: str


@dataclass(frozen=True)
class FacePage:
    """One page of stored faces ordered by person id then face id; ``next_page_token`` is empty on the last."""

    faces: tuple[FaceRecord, ...]
    next_page_token: str


# --- validation -----------------------------------------------------------------------------------------


def validate_collection_name(name: str) -> str:
    """The name when it is a registry collection name (``facerec.limits.check_registry_collection_name``)."""
    try:
        return limits.check_registry_collection_name(name)
    except ValueError as error:
        raise InvalidCollectionName(str(error)) from error


def validate_new_collection(collection: Collection) -> Collection:
    """The collection when its settings are usable."""
    validate_collection_name(collection.name)
    if not collection.model_id.strip():
        raise InvalidCollectionSettings("model_id must not be empty")
    if len(collection.model_id) > MAX_MODEL_ID_LENGTH:
        raise InvalidCollectionSettings(
            f"model_id is {len(collection.model_id)} characters long; the maximum is {MAX_MODEL_ID_LENGTH}"
        )
    if not 1 <= collection.dimension <= MAX_DIMENSION:
        raise InvalidCollectionSettings(f"dimension must be 1..{MAX_DIMENSION}, got {collection.dimension}")
    validate_decision_settings(collection.default_threshold, collection.target_fpir, collection.min_margin)
    validate_retention(collection.retention_seconds)
    return collection


def validate_retention(seconds: int) -> int:
    """The retention period when it is 0 (none) or within ``facerec.limits``; else ``InvalidCollectionSettings``."""
    try:
        return limits.check_retention_seconds(seconds)
    except ValueError as error:
        raise InvalidCollectionSettings(str(error)) from error


def validate_decision_settings(default_threshold: float, target_fpir: float, min_margin: float) -> None:
    """Raises ``InvalidCollectionSettings`` unless each setting is in its range (``facerec.limits``)."""
    try:
        limits.check_threshold(default_threshold)
        limits.check_target_fpir(target_fpir)
        limits.check_min_margin(min_margin)
    except ValueError as error:
        raise InvalidCollectionSettings(str(error)) from error


def _checked(check: Callable[[T], T], value: T) -> T:
    try:
        return check(value)
    except ValueError as error:
        raise InvalidPerson(str(error)) from error


def validate_person_id(person_id: str) -> str:
    """The id when it is a valid person id (``facerec.limits.check_person_id``)."""
    return _checked(limits.check_person_id, person_id)


def validate_person_attributes(person: PersonAttributes) -> PersonAttributes:
    """The attributes when the id, display name and metadata are within ``facerec.limits``."""
    validate_person_id(person.person_id)
    _checked(limits.check_display_name, person.display_name)
    _checked(limits.check_metadata, person.metadata)
    return person


def as_vector(values: Sequence[float] | Vector, dimension: int, what: str) -> Vector:
    """``values`` as a float32 vector of ``dimension`` finite components, or ``InvalidArgument``."""
    vector = np.asarray(values, dtype=np.float32)
    if vector.ndim != 1 or vector.shape[0] != dimension:
        raise InvalidFace(f"{what} must have {dimension} values, got shape {vector.shape}")
    if not np.isfinite(vector).all():
        raise InvalidFace(f"{what} has non-finite values (NaN or infinity)")
    return vector


def validate_face(face: FaceRecord, collection: Collection) -> FaceRecord:
    """The face with its embedding as a checked float32 vector, when it fits the collection."""
    if not face.face_id:
        raise InvalidFace("face_id must not be empty")
    if len(face.face_id) > MAX_FACE_ID_LENGTH:
        raise InvalidFace(f"face_id is {len(face.face_id)} characters long; the maximum is {MAX_FACE_ID_LENGTH}")
    if _CONTROL_CHARACTERS.search(face.face_id):
        raise InvalidFace("face_id must not contain control characters")
    validate_person_id(face.person_id)
    try:
        limits.check_metadata(face.metadata, f"metadata of face {limits.quoted(face.face_id)}")
    except ValueError as error:
        raise InvalidFace(str(error)) from error
    if face.model_id != collection.model_id:
        raise InvalidFace(
            f"face {limits.quoted(face.face_id)} comes from model {limits.quoted(face.model_id)}; "
            f"collection {collection.name!r} holds {collection.model_id!r}"
        )
    embedding = as_vector(face.embedding, collection.dimension, f"embedding of face {limits.quoted(face.face_id)}")
    return FaceRecord(
        face_id=face.face_id,
        person_id=face.person_id,
        embedding=embedding,
        model_id=face.model_id,
        metadata=dict(face.metadata),
        enrolled_at=face.enrolled_at,
    )


def validate_search(query: SearchQuery, collection: Collection) -> SearchQuery:
    """The query with its vectors checked, when it is within the limits."""
    try:
        limits.check_top_k(query.top_k)
        limits.check_query_count(len(query.vectors))
        limits.check_metadata(query.metadata_filter, "metadata_filter")
    except ValueError as error:
        raise InvalidSearch(str(error)) from error
    if query.max_distance is not None and not (math.isfinite(query.max_distance) and query.max_distance >= 0):
        raise InvalidSearch("max_distance must be a finite distance >= 0")
    if query.person_id:
        validate_person_id(query.person_id)
    try:
        vectors = [as_vector(v, collection.dimension, f"query {i}") for i, v in enumerate(query.vectors)]
    except InvalidFace as error:
        raise InvalidSearch(error.message) from error
    return SearchQuery(
        vectors=vectors,
        top_k=query.top_k,
        max_distance=query.max_distance,
        all_faces=query.all_faces,
        metadata_filter=dict(query.metadata_filter),
        person_id=query.person_id,
    )


def page_size_or_default(page_size: int) -> int:
    """The page size to use: 0 means the default (``facerec.limits.page_size_or_default``)."""
    try:
        return limits.page_size_or_default(page_size)
    except ValueError as error:
        raise InvalidPageRequest(str(error)) from error


def _bounded_token(token: str) -> str:
    try:
        return limits.check_page_token(token)
    except ValueError as error:
        raise InvalidPageRequest(str(error)) from error


# Page tokens are opaque to callers: the last person id of the previous page, wrapped so that nobody
# builds them by hand and we can change their content later.
def encode_page_token(last_person_id: str) -> str:
    """An opaque token that resumes a listing after ``last_person_id``."""
    raw = json.dumps({"v": 1, "after": last_person_id}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str) -> str | None:
    """The person id a listing resumes after; ``None`` for the first page."""
    if not _bounded_token(token):
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        content = json.loads(raw)
        after = content["after"]
    except (binascii.Error, ValueError, KeyError, TypeError) as error:
        raise InvalidPageRequest("page_token was not issued by this registry") from error
    if not isinstance(after, str) or content.get("v") != 1:
        raise InvalidPageRequest("page_token was not issued by this registry")
    return after


def encode_face_page_token(last_person_id: str, last_face_id: str) -> str:
    """An opaque token that resumes a face listing after this face (of this person)."""
    raw = json.dumps({"v": 1, "faces_after": [last_person_id, last_face_id]}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_face_page_token(token: str) -> tuple[str, str] | None:
    """The (person id, face id) a face listing resumes after; ``None`` for the first page."""
    if not _bounded_token(token):
        return None
    try:
        content = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        person_id, face_id = content["faces_after"]
    except (binascii.Error, ValueError, KeyError, TypeError) as error:
        raise InvalidPageRequest("page_token was not issued by this registry for a face listing") from error
    if not (isinstance(person_id, str) and isinstance(face_id, str)) or content.get("v") != 1:
        raise InvalidPageRequest("page_token was not issued by this registry for a face listing")
    return person_id, face_id
