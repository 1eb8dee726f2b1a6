"""The values the gateway's domain works with: faces and photos, collections, stored faces, people, the audit record.

Plain dataclasses; nothing here knows gRPC or protobuf. The servicer converts the public messages to and from
these (``conversions.py``); the clients of the embedder and the registry convert theirs (``clients.py``). The
values of one job only (an enrollment's request and result, an identification's ...) live in that job's module.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt

from facerec_gateway.decisions import DecisionSettings, GallerySize

Vector = npt.NDArray[np.float32]
"""One raw descriptor (128 values for dlib's ResNet)."""

# ------------------------------------------------------------------------------------------ faces and photos


@dataclass(frozen=True)
class Point:
    """A point in pixels of the upright image."""

    x: float
    y: float


@dataclass(frozen=True)
class Box:
    """An axis-aligned rectangle around a face, in pixels of the upright image."""

    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class Landmarks:
    """The five landmarks the face was aligned with ("left" and "right" are the subject's)."""

    left_eye_outer: Point
    left_eye_inner: Point
    right_eye_outer: Point
    right_eye_inner: Point
    nose_base: Point


@dataclass(frozen=True)
class FaceQuality:
    """The embedder's measures of how good a face is for recognition (see ``facerec_embedder.quality``)."""

    face_size_px: float
    interocular_px: float
    sharpness: float
    frontality: float


@dataclass(frozen=True, eq=False)
class Embedding:
    """A descriptor and the model that produced it (compared by identity: arrays have no single truth value)."""

    values: Vector
    model_id: str


@dataclass(frozen=True)
class Face:
    """One face found in a photo; ``embedding`` is None where only detection was asked (or it was left out)."""

    box: Box
    landmarks: Landmarks | None
    detection_score: float
    quality: FaceQuality
    embedding: Embedding | None
    index: int

    def without_embedding(self) -> Face:
        """The same face without its descriptor (what a response shows unless asked for descriptors)."""
        return self if self.embedding is None else dataclasses.replace(self, embedding=None)


@dataclass(frozen=True)
class ImageSize:
    """Size of the upright (EXIF-rotated) image that coordinates refer to."""

    width: int
    height: int


@dataclass(frozen=True)
class EmbeddedPhoto:
    """Every face of a photo, largest first, with the upright image's size and the model of the descriptors."""

    image_size: ImageSize
    faces: tuple[Face, ...]
    model_id: str


@dataclass(frozen=True)
class Model:
    """The embedding model the embedder serves."""

    model_id: str
    dimension: int


class RejectionReason(enum.IntEnum):
    """Why a photo of an enrollment was not enrolled (the values are those of facerec.v1.RejectionReason)."""

    NO_FACE = 1
    MULTIPLE_FACES = 2
    FACE_TOO_SMALL = 3
    FACE_TOO_BLURRY = 4
    FACE_NOT_FRONTAL = 5
    INVALID_IMAGE = 6
    IMAGE_TOO_LARGE = 7


@dataclass(frozen=True)
class Rejection:
    """One reason a photo was not enrolled, with a message for people."""

    reason: RejectionReason
    message: str


# ------------------------------------------------------------------------------------------ collections


@dataclass(frozen=True)
class StoredCollection:
    """A collection as the registry keeps it, under its registry name (the tenant's id and the collection's name).

    ``size`` is None when the registry was asked for the settings only (it then counts nothing).
    """

    name: str
    tenant: str
    model_id: str
    dimension: int
    settings: DecisionSettings
    created_at: datetime | None = None
    size: GallerySize | None = None
    retention_seconds: int = 0
    transient: bool = False
    """A working collection (a clustering call's): the registry lists and audits none, and deletes them at start."""


@dataclass(frozen=True)
class Collection:
    """A tenant's collection, under the tenant's name for it, with its decision settings and what it holds."""

    name: str
    model_id: str
    dimension: int
    settings: DecisionSettings
    size: GallerySize
    created_at: datetime | None
    retention_seconds: int = 0
    """Seconds a person's faces are kept after their newest enrollment (0: until deleted)."""


@dataclass(frozen=True)
class SettingsUpdate:
    """A change to a collection's settings (decision settings, retention): each value given replaces the stored one."""

    threshold: float | None = None
    target_fpir: float | None = None
    min_margin: float | None = None
    retention_seconds: int | None = None


# ------------------------------------------------------------------------------------------ stored faces


@dataclass(frozen=True, eq=False)
class FaceRecord:
    """One enrolled face as the registry stores it."""

    face_id: str
    person_id: str
    embedding: Vector
    model_id: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    enrolled_at: datetime | None = None
    """Set by the registry when it stores the face (None in a face being written)."""


@dataclass(frozen=True)
class MovedFace:
    """A face after the registry moved it to another person (without its descriptor), and whose it was."""

    face: FaceRecord
    from_person_id: str


@dataclass(frozen=True)
class FacesPage:
    """One page of a collection's stored faces; ``next_page_token`` is empty on the last page."""

    faces: tuple[FaceRecord, ...]
    next_page_token: str


@dataclass(frozen=True, eq=False)
class SearchQuery:
    """Nearest stored faces of each descriptor: one per person unless ``all_faces``, optionally of one person,
    optionally only those at most ``max_distance`` away."""

    vectors: Sequence[Vector]
    top_k: int
    all_faces: bool = False
    person_id: str = ""
    max_distance: float | None = None


@dataclass(frozen=True)
class Match:
    """A stored face near a query descriptor, with its person."""

    person_id: str
    face_id: str
    distance: float
    display_name: str


# ------------------------------------------------------------------------------------------ people


@dataclass(frozen=True)
class Person:
    """An enrolled person: attributes and the ids of their faces; ``collection`` is the tenant's name for it."""

    person_id: str
    display_name: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    face_count: int = 0
    face_ids: tuple[str, ...] = ()
    collection: str = ""


@dataclass(frozen=True)
class PersonUpdate:
    """A change to a person: the display name when given; metadata merged (or replacing), "" deleting a key."""

    person_id: str
    display_name: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    replace_metadata: bool = False


@dataclass(frozen=True)
class PeoplePage:
    """One page of people ordered by id; ``next_page_token`` is empty on the last page."""

    people: tuple[Person, ...]
    next_page_token: str


# ------------------------------------------------------------------------------------------ the audit record


class AuditAction(enum.IntEnum):
    """What an audit event records (the values are those of facerec.v1.AuditAction)."""

    UNSPECIFIED = 0
    ENROLL = 1
    FACE_DELETE = 2
    FACE_MOVE = 3
    PERSON_UPDATE = 4
    PERSON_DELETE = 5
    RETENTION_PURGE = 6
    COLLECTION_CREATE = 7
    COLLECTION_UPDATE = 8
    COLLECTION_DELETE = 9


@dataclass(frozen=True)
class AuditEvent:
    """One change to enrolled data as the registry recorded it: who, when, what and how many; never biometric data.

    ``collection`` is the registry's name as the registry answers, the tenant's name once ``audit`` has mapped it.
    """

    sequence: int
    time: datetime | None
    action: AuditAction
    collection: str
    person_id: str = ""
    face_id: str = ""
    faces: int = 0
    request_id: str = ""
    actor: str = ""
    detail: str = ""


@dataclass(frozen=True)
class AuditPage:
    """One page of a tenant's audit record, oldest first; ``next_page_token`` is empty on the last page."""

    events: tuple[AuditEvent, ...]
    next_page_token: str
