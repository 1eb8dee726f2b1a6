"""The typed Python SDK of facerec: :class:`Client` (sync) and :class:`AsyncClient` (asyncio).

>>> from facerec.sdk import Client
>>> with Client("127.0.0.1:50051", api_key="...") as client:
...     client.enroll("alice", ["alice1.jpg", "alice2.jpg"], display_name="Alice")
...     for face in client.identify("group.jpg").faces:
...         print(face.face.box, face.match.person_id if face.match else "unknown")
"""

from facerec.sdk.async_client import AsyncClient
from facerec.sdk.client import Client
from facerec.sdk.errors import (
    AlreadyExists,
    DeadlineExceeded,
    FacerecError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from facerec.sdk.images import ImageInputError
from facerec.sdk.types import (
    DEFAULT_COLLECTION,
    BoundingBox,
    BulkEnrollResult,
    BulkRejection,
    Candidate,
    Collection,
    DetectResult,
    Embedding,
    Enrollment,
    EnrollResult,
    Face,
    FaceQuality,
    FaceSelection,
    Frame,
    IdentifiedFace,
    IdentifyResult,
    ImageInput,
    ImageSize,
    Landmarks,
    Page,
    Person,
    Photo,
    PhotoRejection,
    PhotoResult,
    Point,
    Rejection,
    RejectionReason,
    VerifyResult,
)

__all__ = [
    "DEFAULT_COLLECTION",
    "AlreadyExists",
    "AsyncClient",
    "BoundingBox",
    "BulkEnrollResult",
    "BulkRejection",
    "Candidate",
    "Client",
    "Collection",
    "DeadlineExceeded",
    "DetectResult",
    "Embedding",
    "EnrollResult",
    "Enrollment",
    "Face",
    "FaceQuality",
    "FaceSelection",
    "FacerecError",
    "FailedPrecondition",
    "Frame",
    "IdentifiedFace",
    "IdentifyResult",
    "ImageInput",
    "ImageInputError",
    "ImageSize",
    "InvalidArgument",
    "Landmarks",
    "NotFound",
    "Page",
    "PermissionDenied",
    "Person",
    "Photo",
    "PhotoRejection",
    "PhotoResult",
    "Point",
    "Rejection",
    "RejectionReason",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "VerifyResult",
]
