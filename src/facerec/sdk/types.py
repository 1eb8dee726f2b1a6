"""Typed results and inputs of the facerec SDK: frozen dataclasses that mirror the public API (facerec.v1).

Results are plain values: they carry no reference to gRPC and can be compared, logged and serialised. See
``protos/facerec/v1/face.proto`` for the meaning of each field (coordinates in pixels of the upright image,
distances between raw 128-d descriptors, lower is more alike).
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeAlias, TypeVar

import numpy as np
import numpy.typing as npt

DEFAULT_COLLECTION = "default"

# An image given to the SDK: a file path, encoded bytes (any format of ``facerec.photo_formats``) or a decoded numpy
# array (HxWx3 uint8 RGB or HxW uint8 grey).
ImageInput: TypeAlias = str | os.PathLike[str] | bytes | bytearray | memoryview | npt.NDArray[np.uint8]

T = TypeVar("T")


class FaceSelection(enum.StrEnum):
    """Which face of an enrollment photo to take."""

    SINGLE = "single"
    """The photo must hold exactly one acceptable face (the service's default)."""
    LARGEST = "largest"
    """Take the largest acceptable face and ignore the others."""


class RejectionReason(enum.StrEnum):
    """Why a photo was not enrolled; the values are the proto enum's names."""

    UNSPECIFIED = "REJECTION_REASON_UNSPECIFIED"
    NO_FACE = "NO_FACE"
    MULTIPLE_FACES = "MULTIPLE_FACES"
    FACE_TOO_SMALL = "FACE_TOO_SMALL"
    FACE_TOO_BLURRY = "FACE_TOO_BLURRY"
    FACE_NOT_FRONTAL = "FACE_NOT_FRONTAL"
    INVALID_IMAGE = "INVALID_IMAGE"
    IMAGE_TOO_LARGE = "IMAGE_TOO_LARGE"


# ---------------------------------------------------------------------------------------------- faces


@dataclass(frozen=True)
class BoundingBox:
    """An axis-aligned rectangle around a face; x and y may be negative when the box leaves the image."""

    x: int
    y: int
    width: int
    height: int

    def as_xywh(self) -> tuple[int, int, int, int]:
        """The box as ``(x, y, width, height)``."""
        return (self.x, self.y, self.width, self.height)


@dataclass(frozen=True)
class Point:
    """A point in pixels of the upright image (sub-pixel precision)."""

    x: float
    y: float


@dataclass(frozen=True)
class Landmarks:
    """The five landmarks of dlib's 5-point shape predictor; left and right are the subject's."""

    left_eye_outer: Point
    left_eye_inner: Point
    right_eye_outer: Point
    right_eye_inner: Point
    nose_base: Point


@dataclass(frozen=True)
class FaceQuality:
    """Measures that tell whether a face is good enough to enroll."""

    face_size_px: float
    interocular_px: float
    sharpness: float
    frontality: float


@dataclass(frozen=True)
class Embedding:
    """A raw face descriptor and the model that produced it."""

    values: tuple[float, ...]
    model_id: str

    def as_array(self) -> npt.NDArray[np.float32]:
        """The descriptor as a float32 vector."""
        return np.asarray(self.values, dtype=np.float32)


@dataclass(frozen=True)
class Face:
    """One face found in a photo."""

    box: BoundingBox
    landmarks: Landmarks
    detection_score: float
    quality: FaceQuality
    index: int
    embedding: Embedding | None = None
    """Present only when the call asked for descriptors."""


@dataclass(frozen=True)
class ImageSize:
    """Size of the upright (EXIF-rotated) image that coordinates refer to."""

    width: int
    height: int


# ---------------------------------------------------------------------------------------------- collections


@dataclass(frozen=True)
class Collection:
    """A gallery of enrolled people."""

    name: str
    model_id: str
    dimension: int
    threshold: float
    face_count: int
    person_count: int
    created_at: datetime | None = None
    target_fpir: float = 0.0
    """Target false-positive identification rate; the threshold then follows the size (0: ``threshold`` is fixed)."""
    min_margin: float = 0.0
    """A face nearer than this to its second-nearest person than to its nearest is AMBIGUOUS (0: no rule)."""
    retention_seconds: int = 0
    """A person's faces are purged this long after their newest enrollment (0: kept until deleted)."""


@dataclass(frozen=True)
class Calibration:
    """A threshold calibrated on labelled faces: the largest threshold whose false match rate is at most
    ``target_fmr``, the error rates there, the equal error rate and its threshold, and what was counted."""

    threshold: float
    target_fmr: float
    fmr: float
    fnmr: float
    eer: float
    eer_threshold: float
    genuine_pairs: int
    impostor_pairs: int
    people: int
    faces: int
    applied: bool = False
    """True when the threshold was set on the collection."""


@dataclass(frozen=True)
class Person:
    """An enrolled person."""

    person_id: str
    collection: str
    display_name: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    face_count: int = 0
    face_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class EnrolledFace:
    """One stored face of a person: the photo it was enrolled from, when, how good it was and where it was."""

    face_id: str
    person_id: str
    photo_name: str = ""
    """The photo's name given at enrollment (the file's name from a path; empty when none was given)."""
    enrolled_at: datetime | None = None
    quality: FaceQuality | None = None
    """The face's measures at enrollment; None for faces enrolled before the service stored them."""
    box: BoundingBox | None = None
    """Where the face was in its photo; None for faces enrolled before the service stored it."""


@dataclass(frozen=True)
class FaceDeletion:
    """Whose face was deleted and how many faces they have left (0: the person is gone)."""

    person_id: str
    faces_left: int


@dataclass(frozen=True)
class FaceMove:
    """A face after it was moved to another person, and the person it was taken from."""

    face: EnrolledFace
    from_person_id: str


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing; ``next_page_token`` is empty on the last page."""

    items: tuple[T, ...]
    next_page_token: str = ""


# ---------------------------------------------------------------------------------------------- enrollment


@dataclass(frozen=True)
class Photo:
    """An enrollment photo with the caller's label for it (echoed in results and stored with the face)."""

    image: ImageInput
    name: str = ""


# The photos of one person: one image or :class:`Photo`, or any iterable of them.
PhotosInput: TypeAlias = ImageInput | Photo | Iterable[ImageInput | Photo]


@dataclass(frozen=True)
class Enrollment:
    """One person and their photos: a message of a bulk enrollment stream (``collection=None``: the stream's)."""

    person_id: str
    photos: PhotosInput
    display_name: str | None = None
    metadata: Mapping[str, str] | None = None
    collection: str | None = None
    face_selection: FaceSelection | str | None = None


@dataclass(frozen=True)
class Rejection:
    """One reason why a photo was not enrolled."""

    reason: RejectionReason
    message: str


@dataclass(frozen=True)
class PhotoResult:
    """What happened to one enrollment photo."""

    photo_index: int
    photo_name: str
    enrolled: bool
    face_id: str = ""
    face: Face | None = None
    """The face enrolled, or the face that failed a quality check."""
    rejections: tuple[Rejection, ...] = ()


@dataclass(frozen=True)
class EnrollResult:
    """The outcome of enrolling one person."""

    person: Person
    photos: tuple[PhotoResult, ...]
    faces_enrolled: int


@dataclass(frozen=True)
class BulkRejection:
    """A photo (or a whole request, when ``error`` is set) that a bulk enrollment did not enroll."""

    person_id: str
    request_index: int
    photo: PhotoResult | None = None
    error: str = ""


@dataclass(frozen=True)
class BulkEnrollResult:
    """The summary of a bulk enrollment stream."""

    requests: int
    photos: int
    faces_enrolled: int
    people_enrolled: int
    rejected: tuple[BulkRejection, ...] = ()


@dataclass(frozen=True)
class PhotoRejection:
    """One violation of a refused enrollment, read from the error's ``google.rpc.PreconditionFailure``."""

    photo_index: int | None
    """Index of the photo in the request when the violation's subject names it (``photos[2]``)."""
    subject: str
    reason: RejectionReason
    message: str


# ---------------------------------------------------------------------------------------------- identification


@dataclass(frozen=True)
class Candidate:
    """An enrolled person near a face: the distance to their nearest enrolled face."""

    person_id: str
    distance: float
    similarity: float
    display_name: str = ""
    face_id: str = ""


class Decision(enum.StrEnum):
    """What an identified face is."""

    UNSPECIFIED = "UNSPECIFIED"
    MATCHED = "MATCHED"
    """The face is its ``match``."""
    UNKNOWN = "UNKNOWN"
    """No enrolled person is under the threshold (or those who are went to other faces of the photo)."""
    AMBIGUOUS = "AMBIGUOUS"
    """The nearest person is under the threshold but the second-nearest is less than the minimum margin further."""


class ThresholdSource(enum.StrEnum):
    """Where the threshold an identification applied came from."""

    UNSPECIFIED = "UNSPECIFIED"
    REQUEST = "REQUEST"
    """The call's own ``threshold``."""
    COLLECTION = "COLLECTION"
    """The collection's fixed threshold."""
    TARGET_FPIR = "TARGET_FPIR"
    """Derived from the collection's target FPIR and its size, capped at the collection's threshold."""


@dataclass(frozen=True)
class AppliedThreshold:
    """The threshold and minimum margin an identification decided with, and why (``reason``: one line)."""

    threshold: float
    source: ThresholdSource
    target_fpir: float = 0.0
    gallery_size: int = 0
    min_margin: float = 0.0
    reason: str = ""


@dataclass(frozen=True)
class IdentifiedFace:
    """A face of a photo, its nearest people, and the decision (``match`` is set exactly when MATCHED)."""

    face: Face
    candidates: tuple[Candidate, ...] = ()
    match: Candidate | None = None
    decision: Decision = Decision.UNKNOWN
    margin: float | None = None
    """The second-nearest person's distance minus the nearest's; None with fewer than two people."""


@dataclass(frozen=True)
class IdentifyResult:
    """Every face of a photo with who each one is."""

    faces: tuple[IdentifiedFace, ...]
    image_size: ImageSize
    threshold: float
    frame_id: str = ""
    applied: AppliedThreshold | None = None
    """Which threshold and margin decided, and why (None from a gateway that does not say)."""


@dataclass(frozen=True)
class Frame:
    """A frame of an identification stream with the caller's id for it (echoed in its result)."""

    image: ImageInput
    frame_id: str = ""


@dataclass(frozen=True)
class VerifyResult:
    """The answer of a 1:1 verification."""

    same_person: bool
    distance: float
    similarity: float
    threshold: float
    probe_face: Face | None = None
    reference_face: Face | None = None
    """The reference photo's face (None when the reference is an enrolled person)."""
    reference_face_id: str = ""
    """The enrolled face compared (when the reference is a person)."""


@dataclass(frozen=True)
class DetectResult:
    """Faces of a photo, largest first."""

    faces: tuple[Face, ...]
    image_size: ImageSize


# ---------------------------------------------------------------------------------------------- clustering


# A photo to cluster: an image (a path's file name is its name), a :class:`Photo`, or ``(name, image)``.
ClusterPhotoInput: TypeAlias = ImageInput | Photo | tuple[str, ImageInput]


class ClusterStage(enum.StrEnum):
    """What a clustering call is doing."""

    UNSPECIFIED = "UNSPECIFIED"
    EMBEDDING = "EMBEDDING"
    """Photos are decoded and their faces found and embedded (``total``: photos received so far)."""
    LINKING = "LINKING"
    """Each face's near neighbours are searched (``total``: faces)."""
    GROUPING = "GROUPING"
    """The neighbour graph is cut into groups."""
    ENROLLING = "ENROLLING"
    """Groups are enrolled as new people (``total``: groups)."""


@dataclass(frozen=True)
class ClusterProgress:
    """How far a clustering call is: ``done`` of ``total`` in ``stage``, and the faces found so far."""

    stage: ClusterStage
    done: int
    total: int
    faces: int


@dataclass(frozen=True)
class ClusteredFace:
    """One face of a clustered photo: the photo (its index in the stream and its name), the face's index in the
    photo (as :attr:`Face.index`), where it is and how good it is; ``face_id`` of the enrolled face with
    ``enroll``."""

    photo_index: int
    photo_name: str
    face_index: int
    box: BoundingBox
    quality: FaceQuality
    face_id: str = ""


@dataclass(frozen=True)
class FaceCluster:
    """The faces of one person, in photo order; ``person_id`` is the new person's with ``enroll``."""

    faces: tuple[ClusteredFace, ...]
    person_id: str = ""


@dataclass(frozen=True)
class ClusterResult:
    """Groups of faces (largest first), the faces in no group (``noise``), and the photos that gave no face
    (``skipped``, each with its reasons); the threshold and minimum group size applied."""

    clusters: tuple[FaceCluster, ...]
    noise: tuple[ClusteredFace, ...]
    photos: int
    faces: int
    skipped: tuple[PhotoResult, ...]
    threshold: float
    min_faces: int


# ---------------------------------------------------------------------------------------------- audit


class AuditAction(enum.StrEnum):
    """What an audit event records; the values are the proto enum's names."""

    UNSPECIFIED = "AUDIT_ACTION_UNSPECIFIED"
    ENROLL = "AUDIT_ENROLL"
    """Faces were stored for a person."""
    FACE_DELETE = "AUDIT_FACE_DELETE"
    FACE_MOVE = "AUDIT_FACE_MOVE"
    """One face was moved to another person (``person_id``: the new one; ``detail`` names both)."""
    PERSON_UPDATE = "AUDIT_PERSON_UPDATE"
    PERSON_DELETE = "AUDIT_PERSON_DELETE"
    """Erasure of every face of a person."""
    RETENTION_PURGE = "AUDIT_RETENTION_PURGE"
    """The collection's retention period ran out for a person: the service purged their faces by itself."""
    COLLECTION_CREATE = "AUDIT_COLLECTION_CREATE"
    COLLECTION_UPDATE = "AUDIT_COLLECTION_UPDATE"
    COLLECTION_DELETE = "AUDIT_COLLECTION_DELETE"


@dataclass(frozen=True)
class AuditEvent:
    """One change to enrolled data: who, when, what and how many (never a descriptor or an image)."""

    sequence: int
    """Increasing with time within the tenant's record."""
    time: datetime | None
    action: AuditAction
    collection: str
    person_id: str = ""
    face_id: str = ""
    faces: int = 0
    """Faces stored, removed or moved."""
    request_id: str = ""
    """The ``x-request-id`` of the call that made the change (empty for the service's own purges)."""
    actor: str = ""
    """``key:`` and the first 16 hex digits of the SHA-256 of the caller's API key, or ``registry:retention``."""
    detail: str = ""
