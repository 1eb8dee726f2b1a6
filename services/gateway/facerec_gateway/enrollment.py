"""Which face of an enrollment photo is enrolled, or why none is.

A photo is acceptable when it holds exactly one acceptable face (by default) — or, with "largest", when at least
one face is acceptable, the largest of them being taken. A face is acceptable when it is large enough, sharp
enough and frontal enough, by the embedder's measures (``facerec_embedder.quality``): each is taken from the
landmarks and the aligned chip, so a small sharp face is refused as small, never as blurred, and a photo's
resolution moves only its size. Each gate guards recognition: the minimums are chosen from the genuine-pair
distances of faces below and above them (``benchmarks/quality_gates.py``).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from facerec.v1 import face_pb2, facerec_pb2

# Face ids are uuid5 in this namespace of (collection, person, photo digest, face box): enrolling the same photo
# of the same person twice yields the same id, so retries and re-imports store each face once.
FACE_ID_NAMESPACE = uuid.UUID("6d1c1f8e-2a8e-5d55-9b8f-3f2f4c1e7a10")


@dataclass(frozen=True)
class QualityPolicy:
    """Minimums a face must meet to be enrolled."""

    min_face_size_px: float
    min_sharpness: float
    min_frontality: float

    def rejections(self, face: face_pb2.Face) -> list[facerec_pb2.Rejection]:
        """Why ``face`` is not acceptable (empty when it is)."""
        quality = face.quality
        found: list[facerec_pb2.Rejection] = []
        if quality.face_size_px < self.min_face_size_px:
            found.append(
                _rejection(
                    facerec_pb2.FACE_TOO_SMALL,
                    f"face size is {quality.face_size_px:.1f} px, the minimum is {self.min_face_size_px:g} px "
                    "(the face's width in pixels of the photo): send a photo where the face is larger",
                )
            )
        if quality.sharpness < self.min_sharpness:
            found.append(
                _rejection(
                    facerec_pb2.FACE_TOO_BLURRY,
                    f"face sharpness is {quality.sharpness:.2f}, the minimum is {self.min_sharpness:.2f} "
                    "(detail at the face's own resolution): the face is out of focus or moved",
                )
            )
        if quality.frontality < self.min_frontality:
            found.append(
                _rejection(
                    facerec_pb2.FACE_NOT_FRONTAL,
                    f"face frontality is {quality.frontality:.2f}, the minimum is {self.min_frontality:.2f} "
                    "(1 = looking at the camera): the head is turned or tilted",
                )
            )
        return found


@dataclass(frozen=True)
class FaceChoice:
    """The outcome for one photo: the face to enroll, or the reasons there is none."""

    face: face_pb2.Face | None
    rejections: list[facerec_pb2.Rejection]


def choose_face(
    faces: Sequence[face_pb2.Face], policy: QualityPolicy, selection: facerec_pb2.FaceSelection.ValueType
) -> FaceChoice:
    """Pick the face of a photo to enroll (faces are ordered largest first by the embedder)."""
    if not faces:
        return FaceChoice(None, [_rejection(facerec_pb2.NO_FACE, "no face was found in the photo")])
    verdicts = [(face, policy.rejections(face)) for face in faces]
    acceptable = [face for face, reasons in verdicts if not reasons]
    if selection == facerec_pb2.FACE_SELECTION_LARGEST:
        if acceptable:
            return FaceChoice(acceptable[0], [])
        return FaceChoice(faces[0], verdicts[0][1])
    if len(acceptable) > 1:
        return FaceChoice(
            None,
            [
                _rejection(
                    facerec_pb2.MULTIPLE_FACES,
                    f"{len(acceptable)} acceptable faces were found; enroll photos showing one face, "
                    "or ask for the largest",
                )
            ],
        )
    if acceptable:
        return FaceChoice(acceptable[0], [])
    return FaceChoice(faces[0], verdicts[0][1])


def face_id(collection: str, person_id: str, image: bytes, face: face_pb2.Face) -> str:
    """The deterministic id of ``face`` of ``image`` enrolled for ``person_id`` in ``collection``."""
    box = face.box
    digest = hashlib.sha256(image).hexdigest()
    key = f"{collection}\n{person_id}\n{digest}\n{box.x},{box.y},{box.width},{box.height}"
    return str(uuid.uuid5(FACE_ID_NAMESPACE, key))


def _rejection(reason: facerec_pb2.RejectionReason.ValueType, message: str) -> facerec_pb2.Rejection:
    return facerec_pb2.Rejection(reason=reason, message=message)
