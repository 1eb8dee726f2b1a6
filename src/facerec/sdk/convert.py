"""Conversions between the public API's protobuf messages (facerec.v1) and the SDK's dataclasses.

``*_from_proto`` functions read responses; ``*_to_proto`` functions build the same messages back (used by
tests, by tools that replay results, and by anyone serving the API in Python).
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from google.protobuf import timestamp_pb2

from facerec.sdk.types import (
    AppliedThreshold,
    AuditAction,
    AuditEvent,
    BoundingBox,
    BulkEnrollResult,
    BulkRejection,
    Calibration,
    Candidate,
    ClusteredFace,
    ClusterProgress,
    ClusterResult,
    ClusterStage,
    Collection,
    Decision,
    DetectResult,
    Embedding,
    EnrolledFace,
    EnrollResult,
    Face,
    FaceCluster,
    FaceDeletion,
    FaceMove,
    FaceQuality,
    FaceSelection,
    IdentifiedFace,
    IdentifyResult,
    ImageSize,
    Landmarks,
    Page,
    Person,
    PhotoResult,
    Point,
    Rejection,
    RejectionReason,
    ThresholdSource,
    VerifyResult,
)
from facerec.v1 import audit_pb2, face_pb2, facerec_pb2


def _f32(value: float) -> float:
    """A float32 field as the shortest float that reads back to the same float32 (0.41, not 0.4099999964)."""
    return float(str(np.float32(value)))


# ---------------------------------------------------------------------------------------------- faces


def box_from_proto(message: face_pb2.BoundingBox) -> BoundingBox:
    """A bounding box from its message."""
    return BoundingBox(x=message.x, y=message.y, width=message.width, height=message.height)


def box_to_proto(box: BoundingBox) -> face_pb2.BoundingBox:
    """The message of a bounding box."""
    return face_pb2.BoundingBox(x=box.x, y=box.y, width=box.width, height=box.height)


def point_from_proto(message: face_pb2.Point) -> Point:
    """A point from its message."""
    return Point(x=_f32(message.x), y=_f32(message.y))


def point_to_proto(point: Point) -> face_pb2.Point:
    """The message of a point."""
    return face_pb2.Point(x=point.x, y=point.y)


def landmarks_from_proto(message: face_pb2.Landmarks) -> Landmarks:
    """The five landmarks from their message."""
    return Landmarks(
        left_eye_outer=point_from_proto(message.left_eye_outer),
        left_eye_inner=point_from_proto(message.left_eye_inner),
        right_eye_outer=point_from_proto(message.right_eye_outer),
        right_eye_inner=point_from_proto(message.right_eye_inner),
        nose_base=point_from_proto(message.nose_base),
    )


def landmarks_to_proto(landmarks: Landmarks) -> face_pb2.Landmarks:
    """The message of the five landmarks."""
    return face_pb2.Landmarks(
        left_eye_outer=point_to_proto(landmarks.left_eye_outer),
        left_eye_inner=point_to_proto(landmarks.left_eye_inner),
        right_eye_outer=point_to_proto(landmarks.right_eye_outer),
        right_eye_inner=point_to_proto(landmarks.right_eye_inner),
        nose_base=point_to_proto(landmarks.nose_base),
    )


def quality_from_proto(message: face_pb2.FaceQuality) -> FaceQuality:
    """Quality measures from their message."""
    return FaceQuality(
        face_size_px=_f32(message.face_size_px),
        interocular_px=_f32(message.interocular_px),
        sharpness=_f32(message.sharpness),
        frontality=_f32(message.frontality),
    )


def quality_to_proto(quality: FaceQuality) -> face_pb2.FaceQuality:
    """The message of quality measures."""
    return face_pb2.FaceQuality(
        face_size_px=quality.face_size_px,
        interocular_px=quality.interocular_px,
        sharpness=quality.sharpness,
        frontality=quality.frontality,
    )


def face_from_proto(message: face_pb2.Face) -> Face:
    """A face from its message; the embedding is None when the message carries no descriptor."""
    embedding = None
    if message.HasField("embedding") and len(message.embedding.values) > 0:
        # Raw float32 values, kept exact (as doubles) rather than prettified: they are data, not display.
        values = tuple(float(v) for v in message.embedding.values)
        embedding = Embedding(values=values, model_id=message.embedding.model_id)
    return Face(
        box=box_from_proto(message.box),
        landmarks=landmarks_from_proto(message.landmarks),
        detection_score=_f32(message.detection_score),
        quality=quality_from_proto(message.quality),
        index=message.index,
        embedding=embedding,
    )


def face_to_proto(face: Face) -> face_pb2.Face:
    """The message of a face."""
    message = face_pb2.Face(
        box=box_to_proto(face.box),
        landmarks=landmarks_to_proto(face.landmarks),
        detection_score=face.detection_score,
        quality=quality_to_proto(face.quality),
        index=face.index,
    )
    if face.embedding is not None:
        message.embedding.values.extend(face.embedding.values)
        message.embedding.model_id = face.embedding.model_id
    return message


def image_size_from_proto(message: face_pb2.ImageSize) -> ImageSize:
    """An image size from its message."""
    return ImageSize(width=message.width, height=message.height)


def image_size_to_proto(size: ImageSize) -> face_pb2.ImageSize:
    """The message of an image size."""
    return face_pb2.ImageSize(width=size.width, height=size.height)


# ---------------------------------------------------------------------------------------------- collections


def _timestamp_from_proto(message: timestamp_pb2.Timestamp) -> datetime:
    return message.ToDatetime(tzinfo=UTC)


def collection_from_proto(message: facerec_pb2.Collection) -> Collection:
    """A collection from its message; ``created_at`` is None when the service left it unset."""
    return Collection(
        name=message.name,
        model_id=message.model_id,
        dimension=message.dimension,
        threshold=_f32(message.threshold),
        face_count=message.face_count,
        person_count=message.person_count,
        created_at=_timestamp_from_proto(message.created_at) if message.HasField("created_at") else None,
        target_fpir=message.target_fpir,
        min_margin=_f32(message.min_margin),
        retention_seconds=message.retention_seconds,
    )


def collection_to_proto(collection: Collection) -> facerec_pb2.Collection:
    """The message of a collection."""
    message = facerec_pb2.Collection(
        name=collection.name,
        model_id=collection.model_id,
        dimension=collection.dimension,
        threshold=collection.threshold,
        face_count=collection.face_count,
        person_count=collection.person_count,
        target_fpir=collection.target_fpir,
        min_margin=collection.min_margin,
        retention_seconds=collection.retention_seconds,
    )
    if collection.created_at is not None:
        message.created_at.FromDatetime(collection.created_at)
    return message


def calibration_from_proto(message: facerec_pb2.Calibration) -> Calibration:
    """A calibration from its message."""
    return Calibration(
        threshold=_f32(message.threshold),
        target_fmr=message.target_fmr,
        fmr=message.fmr,
        fnmr=message.fnmr,
        eer=message.eer,
        eer_threshold=_f32(message.eer_threshold),
        genuine_pairs=message.genuine_pairs,
        impostor_pairs=message.impostor_pairs,
        people=message.people,
        faces=message.faces,
        applied=message.applied,
    )


def calibration_to_proto(calibration: Calibration) -> facerec_pb2.Calibration:
    """The message of a calibration."""
    return facerec_pb2.Calibration(
        threshold=calibration.threshold,
        target_fmr=calibration.target_fmr,
        fmr=calibration.fmr,
        fnmr=calibration.fnmr,
        eer=calibration.eer,
        eer_threshold=calibration.eer_threshold,
        genuine_pairs=calibration.genuine_pairs,
        impostor_pairs=calibration.impostor_pairs,
        people=calibration.people,
        faces=calibration.faces,
        applied=calibration.applied,
    )


def person_from_proto(message: facerec_pb2.Person) -> Person:
    """A person from its message."""
    return Person(
        person_id=message.person_id,
        collection=message.collection,
        display_name=message.display_name,
        metadata=dict(message.metadata),
        face_count=message.face_count,
        face_ids=tuple(message.face_ids),
    )


def person_to_proto(person: Person) -> facerec_pb2.Person:
    """The message of a person."""
    return facerec_pb2.Person(
        person_id=person.person_id,
        collection=person.collection,
        display_name=person.display_name,
        metadata=dict(person.metadata),
        face_count=person.face_count,
        face_ids=list(person.face_ids),
    )


def people_page_from_proto(message: facerec_pb2.ListPeopleResponse) -> Page[Person]:
    """A page of people from a listing response."""
    return Page(items=tuple(person_from_proto(p) for p in message.people), next_page_token=message.next_page_token)


# ---------------------------------------------------------------------------------------------- faces of a person


def enrolled_face_from_proto(message: facerec_pb2.EnrolledFace) -> EnrolledFace:
    """A stored face from its message; quality, box and time are None when the service left them unset."""
    return EnrolledFace(
        face_id=message.face_id,
        person_id=message.person_id,
        photo_name=message.photo_name,
        enrolled_at=_timestamp_from_proto(message.enrolled_at) if message.HasField("enrolled_at") else None,
        quality=quality_from_proto(message.quality) if message.HasField("quality") else None,
        box=box_from_proto(message.box) if message.HasField("box") else None,
    )


def enrolled_face_to_proto(face: EnrolledFace) -> facerec_pb2.EnrolledFace:
    """The message of a stored face."""
    message = facerec_pb2.EnrolledFace(face_id=face.face_id, person_id=face.person_id, photo_name=face.photo_name)
    if face.enrolled_at is not None:
        message.enrolled_at.FromDatetime(face.enrolled_at)
    if face.quality is not None:
        message.quality.CopyFrom(quality_to_proto(face.quality))
    if face.box is not None:
        message.box.CopyFrom(box_to_proto(face.box))
    return message


def faces_page_from_proto(message: facerec_pb2.ListFacesResponse) -> Page[EnrolledFace]:
    """A page of a person's faces from a listing response."""
    return Page(
        items=tuple(enrolled_face_from_proto(f) for f in message.faces), next_page_token=message.next_page_token
    )


def face_deletion_from_proto(message: facerec_pb2.DeleteFaceResponse) -> FaceDeletion:
    """The answer of a face deletion."""
    return FaceDeletion(person_id=message.person_id, faces_left=message.faces_left)


def face_move_from_proto(message: facerec_pb2.MoveFaceResponse) -> FaceMove:
    """The answer of a face move."""
    return FaceMove(face=enrolled_face_from_proto(message.face), from_person_id=message.from_person_id)


# ---------------------------------------------------------------------------------------------- audit


def audit_action_from_proto(value: int) -> AuditAction:
    """An audit action by the proto enum's name; a value this SDK does not know (a newer service's) reads as
    UNSPECIFIED."""
    try:
        return AuditAction(audit_pb2.AuditAction.Name(audit_pb2.AuditAction.ValueType(value)))
    except ValueError:
        return AuditAction.UNSPECIFIED


def audit_event_from_proto(message: audit_pb2.AuditEvent) -> AuditEvent:
    """An audit event from its message."""
    return AuditEvent(
        sequence=message.sequence,
        time=_timestamp_from_proto(message.time) if message.HasField("time") else None,
        action=audit_action_from_proto(message.action),
        collection=message.collection,
        person_id=message.person_id,
        face_id=message.face_id,
        faces=message.faces,
        request_id=message.request_id,
        actor=message.actor,
        detail=message.detail,
    )


def audit_event_to_proto(event: AuditEvent) -> audit_pb2.AuditEvent:
    """The message of an audit event."""
    message = audit_pb2.AuditEvent(
        sequence=event.sequence,
        action=audit_pb2.AuditAction.Value(event.action.value),
        collection=event.collection,
        person_id=event.person_id,
        face_id=event.face_id,
        faces=event.faces,
        request_id=event.request_id,
        actor=event.actor,
        detail=event.detail,
    )
    if event.time is not None:
        message.time.FromDatetime(event.time)
    return message


def audit_page_from_proto(message: facerec_pb2.ListAuditEventsResponse) -> Page[AuditEvent]:
    """A page of the audit record from a listing response."""
    return Page(items=tuple(audit_event_from_proto(e) for e in message.events), next_page_token=message.next_page_token)


# ---------------------------------------------------------------------------------------------- enrollment


def face_selection_to_proto(selection: FaceSelection | str | None) -> facerec_pb2.FaceSelection.ValueType:
    """The proto value of a face selection ("single", "largest"; None leaves the service's default)."""
    if selection is None:
        return facerec_pb2.FACE_SELECTION_UNSPECIFIED
    match FaceSelection(selection):
        case FaceSelection.SINGLE:
            return facerec_pb2.FACE_SELECTION_SINGLE
        case FaceSelection.LARGEST:
            return facerec_pb2.FACE_SELECTION_LARGEST


def rejection_reason_from_proto(value: int) -> RejectionReason:
    """The reason of a proto value; values this SDK does not know read as UNSPECIFIED."""
    try:
        return RejectionReason(facerec_pb2.RejectionReason.Name(value))  # type: ignore[arg-type]
    except ValueError:
        return RejectionReason.UNSPECIFIED


def rejection_reason_to_proto(reason: RejectionReason) -> facerec_pb2.RejectionReason.ValueType:
    """The proto value of a reason."""
    return facerec_pb2.RejectionReason.Value(reason.value)


def rejection_from_proto(message: facerec_pb2.Rejection) -> Rejection:
    """A rejection from its message."""
    return Rejection(reason=rejection_reason_from_proto(message.reason), message=message.message)


def rejection_to_proto(rejection: Rejection) -> facerec_pb2.Rejection:
    """The message of a rejection."""
    return facerec_pb2.Rejection(reason=rejection_reason_to_proto(rejection.reason), message=rejection.message)


def photo_result_from_proto(message: facerec_pb2.PhotoResult) -> PhotoResult:
    """What happened to one photo, from its message."""
    return PhotoResult(
        photo_index=message.photo_index,
        photo_name=message.photo_name,
        enrolled=message.enrolled,
        face_id=message.face_id,
        face=face_from_proto(message.face) if message.HasField("face") else None,
        rejections=tuple(rejection_from_proto(r) for r in message.rejections),
    )


def photo_result_to_proto(result: PhotoResult) -> facerec_pb2.PhotoResult:
    """The message of one photo's result."""
    message = facerec_pb2.PhotoResult(
        photo_index=result.photo_index,
        photo_name=result.photo_name,
        enrolled=result.enrolled,
        face_id=result.face_id,
        rejections=[rejection_to_proto(r) for r in result.rejections],
    )
    if result.face is not None:
        message.face.CopyFrom(face_to_proto(result.face))
    return message


def enroll_result_from_proto(message: facerec_pb2.EnrollResponse) -> EnrollResult:
    """The outcome of an enrollment from its response."""
    return EnrollResult(
        person=person_from_proto(message.person),
        photos=tuple(photo_result_from_proto(p) for p in message.photos),
        faces_enrolled=message.faces_enrolled,
    )


def enroll_result_to_proto(result: EnrollResult) -> facerec_pb2.EnrollResponse:
    """The response of an enrollment outcome."""
    return facerec_pb2.EnrollResponse(
        person=person_to_proto(result.person),
        photos=[photo_result_to_proto(p) for p in result.photos],
        faces_enrolled=result.faces_enrolled,
    )


def bulk_enroll_result_from_proto(message: facerec_pb2.BulkEnrollResponse) -> BulkEnrollResult:
    """The summary of a bulk enrollment from its response."""
    return BulkEnrollResult(
        requests=message.requests,
        photos=message.photos,
        faces_enrolled=message.faces_enrolled,
        people_enrolled=message.people_enrolled,
        rejected=tuple(
            BulkRejection(
                person_id=r.person_id,
                request_index=r.request_index,
                photo=photo_result_from_proto(r.photo) if r.HasField("photo") else None,
                error=r.error,
            )
            for r in message.rejected
        ),
    )


def bulk_enroll_result_to_proto(result: BulkEnrollResult) -> facerec_pb2.BulkEnrollResponse:
    """The response of a bulk enrollment summary."""
    message = facerec_pb2.BulkEnrollResponse(
        requests=result.requests,
        photos=result.photos,
        faces_enrolled=result.faces_enrolled,
        people_enrolled=result.people_enrolled,
    )
    for rejected in result.rejected:
        entry = message.rejected.add(
            person_id=rejected.person_id, request_index=rejected.request_index, error=rejected.error
        )
        if rejected.photo is not None:
            entry.photo.CopyFrom(photo_result_to_proto(rejected.photo))
    return message


# ---------------------------------------------------------------------------------------------- identification


def candidate_from_proto(message: facerec_pb2.Candidate) -> Candidate:
    """A candidate from its message."""
    return Candidate(
        person_id=message.person_id,
        distance=_f32(message.distance),
        similarity=_f32(message.similarity),
        display_name=message.display_name,
        face_id=message.face_id,
    )


def candidate_to_proto(candidate: Candidate) -> facerec_pb2.Candidate:
    """The message of a candidate."""
    return facerec_pb2.Candidate(
        person_id=candidate.person_id,
        distance=candidate.distance,
        similarity=candidate.similarity,
        display_name=candidate.display_name,
        face_id=candidate.face_id,
    )


_DECISIONS = {
    facerec_pb2.DECISION_UNSPECIFIED: Decision.UNSPECIFIED,
    facerec_pb2.MATCHED: Decision.MATCHED,
    facerec_pb2.UNKNOWN: Decision.UNKNOWN,
    facerec_pb2.AMBIGUOUS: Decision.AMBIGUOUS,
}
_DECISION_VALUES = {decision: value for value, decision in _DECISIONS.items()}
_SOURCES = {
    facerec_pb2.THRESHOLD_SOURCE_UNSPECIFIED: ThresholdSource.UNSPECIFIED,
    facerec_pb2.THRESHOLD_SOURCE_REQUEST: ThresholdSource.REQUEST,
    facerec_pb2.THRESHOLD_SOURCE_COLLECTION: ThresholdSource.COLLECTION,
    facerec_pb2.THRESHOLD_SOURCE_TARGET_FPIR: ThresholdSource.TARGET_FPIR,
}
_SOURCE_VALUES = {source: value for value, source in _SOURCES.items()}


def decision_from_proto(message: facerec_pb2.IdentifiedFace) -> Decision:
    """The face's decision; a gateway that leaves it unset (before decisions were named) says it by ``match``."""
    decision = _DECISIONS.get(message.decision, Decision.UNSPECIFIED)
    if decision is Decision.UNSPECIFIED:
        return Decision.MATCHED if message.HasField("match") else Decision.UNKNOWN
    return decision


def identified_face_from_proto(message: facerec_pb2.IdentifiedFace) -> IdentifiedFace:
    """An identified face from its message; ``match`` is None unless the decision is MATCHED."""
    return IdentifiedFace(
        face=face_from_proto(message.face),
        candidates=tuple(candidate_from_proto(c) for c in message.candidates),
        match=candidate_from_proto(message.match) if message.HasField("match") else None,
        decision=decision_from_proto(message),
        margin=_f32(message.margin) if message.HasField("margin") else None,
    )


def identified_face_to_proto(face: IdentifiedFace) -> facerec_pb2.IdentifiedFace:
    """The message of an identified face."""
    message = facerec_pb2.IdentifiedFace(
        face=face_to_proto(face.face),
        candidates=[candidate_to_proto(c) for c in face.candidates],
        decision=_DECISION_VALUES[face.decision],
    )
    if face.match is not None:
        message.match.CopyFrom(candidate_to_proto(face.match))
    if face.margin is not None:
        message.margin = face.margin
    return message


def applied_threshold_from_proto(message: facerec_pb2.AppliedThreshold) -> AppliedThreshold:
    """The applied threshold from its message."""
    return AppliedThreshold(
        threshold=_f32(message.threshold),
        source=_SOURCES.get(message.source, ThresholdSource.UNSPECIFIED),
        target_fpir=message.target_fpir,
        gallery_size=message.gallery_size,
        min_margin=_f32(message.min_margin),
        reason=message.reason,
    )


def applied_threshold_to_proto(applied: AppliedThreshold) -> facerec_pb2.AppliedThreshold:
    """The message of an applied threshold."""
    return facerec_pb2.AppliedThreshold(
        threshold=applied.threshold,
        source=_SOURCE_VALUES[applied.source],
        target_fpir=applied.target_fpir,
        gallery_size=applied.gallery_size,
        min_margin=applied.min_margin,
        reason=applied.reason,
    )


def identify_result_from_proto(message: facerec_pb2.IdentifyResponse) -> IdentifyResult:
    """The identification of a photo from its response (``applied`` None when the gateway left it unset)."""
    return IdentifyResult(
        faces=tuple(identified_face_from_proto(f) for f in message.faces),
        image_size=image_size_from_proto(message.image_size),
        threshold=_f32(message.threshold),
        frame_id=message.frame_id,
        applied=applied_threshold_from_proto(message.applied) if message.HasField("applied") else None,
    )


def identify_result_to_proto(result: IdentifyResult) -> facerec_pb2.IdentifyResponse:
    """The response of a photo's identification."""
    message = facerec_pb2.IdentifyResponse(
        faces=[identified_face_to_proto(f) for f in result.faces],
        image_size=image_size_to_proto(result.image_size),
        threshold=result.threshold,
        frame_id=result.frame_id,
    )
    if result.applied is not None:
        message.applied.CopyFrom(applied_threshold_to_proto(result.applied))
    return message


def verify_result_from_proto(message: facerec_pb2.VerifyResponse) -> VerifyResult:
    """A verification answer from its response."""
    return VerifyResult(
        same_person=message.same_person,
        distance=_f32(message.distance),
        similarity=_f32(message.similarity),
        threshold=_f32(message.threshold),
        probe_face=face_from_proto(message.probe_face) if message.HasField("probe_face") else None,
        reference_face=face_from_proto(message.reference_face) if message.HasField("reference_face") else None,
        reference_face_id=message.reference_face_id,
    )


def verify_result_to_proto(result: VerifyResult) -> facerec_pb2.VerifyResponse:
    """The response of a verification answer."""
    message = facerec_pb2.VerifyResponse(
        same_person=result.same_person,
        distance=result.distance,
        similarity=result.similarity,
        threshold=result.threshold,
        reference_face_id=result.reference_face_id,
    )
    if result.probe_face is not None:
        message.probe_face.CopyFrom(face_to_proto(result.probe_face))
    if result.reference_face is not None:
        message.reference_face.CopyFrom(face_to_proto(result.reference_face))
    return message


def detect_result_from_proto(message: facerec_pb2.DetectResponse) -> DetectResult:
    """The faces of a photo from a detection response."""
    return DetectResult(
        faces=tuple(face_from_proto(f) for f in message.faces),
        image_size=image_size_from_proto(message.image_size),
    )


def detect_result_to_proto(result: DetectResult) -> facerec_pb2.DetectResponse:
    """The response of a detection."""
    return facerec_pb2.DetectResponse(
        faces=[face_to_proto(f) for f in result.faces], image_size=image_size_to_proto(result.image_size)
    )


# ---------------------------------------------------------------------------------------------- clustering

_STAGE_PREFIX = "CLUSTER_STAGE_"


def cluster_options_to_proto(
    *,
    collection: str = "",
    threshold: float | None = None,
    min_faces: int = 0,
    enroll: bool = False,
    person_id_prefix: str = "",
) -> facerec_pb2.ClusterOptions:
    """The options message of a clustering call (``threshold`` None and ``min_faces`` 0: the service's defaults)."""
    return facerec_pb2.ClusterOptions(
        collection=collection,
        threshold=threshold or 0.0,
        min_faces=min_faces,
        enroll=enroll,
        person_id_prefix=person_id_prefix,
    )


def cluster_stage_from_proto(value: int) -> ClusterStage:
    """The stage of a proto value; values this SDK does not know read as UNSPECIFIED."""
    try:
        return ClusterStage(facerec_pb2.ClusterStage.Name(value).removeprefix(_STAGE_PREFIX))  # type: ignore[arg-type]
    except ValueError:
        return ClusterStage.UNSPECIFIED


def cluster_progress_from_proto(message: facerec_pb2.ClusterProgress) -> ClusterProgress:
    """Progress of a clustering call from its message."""
    return ClusterProgress(
        stage=cluster_stage_from_proto(message.stage), done=message.done, total=message.total, faces=message.faces
    )


def cluster_progress_to_proto(progress: ClusterProgress) -> facerec_pb2.ClusterProgress:
    """The message of a clustering call's progress."""
    return facerec_pb2.ClusterProgress(
        stage=facerec_pb2.ClusterStage.Value(_STAGE_PREFIX + progress.stage.value),
        done=progress.done,
        total=progress.total,
        faces=progress.faces,
    )


def clustered_face_from_proto(message: facerec_pb2.ClusteredFace) -> ClusteredFace:
    """A clustered face from its message."""
    return ClusteredFace(
        photo_index=message.photo_index,
        photo_name=message.photo_name,
        face_index=message.face_index,
        box=box_from_proto(message.box),
        quality=quality_from_proto(message.quality),
        face_id=message.face_id,
    )


def clustered_face_to_proto(face: ClusteredFace) -> facerec_pb2.ClusteredFace:
    """The message of a clustered face."""
    return facerec_pb2.ClusteredFace(
        photo_index=face.photo_index,
        photo_name=face.photo_name,
        face_index=face.face_index,
        box=box_to_proto(face.box),
        quality=quality_to_proto(face.quality),
        face_id=face.face_id,
    )


def cluster_result_from_proto(message: facerec_pb2.ClusterResult) -> ClusterResult:
    """The result of a clustering call from its message."""
    return ClusterResult(
        clusters=tuple(
            FaceCluster(faces=tuple(clustered_face_from_proto(f) for f in c.faces), person_id=c.person_id)
            for c in message.clusters
        ),
        noise=tuple(clustered_face_from_proto(f) for f in message.noise),
        photos=message.photos,
        faces=message.faces,
        skipped=tuple(photo_result_from_proto(p) for p in message.skipped),
        threshold=_f32(message.threshold),
        min_faces=message.min_faces,
    )


def cluster_result_to_proto(result: ClusterResult) -> facerec_pb2.ClusterResult:
    """The message of a clustering call's result."""
    return facerec_pb2.ClusterResult(
        clusters=[
            facerec_pb2.FaceCluster(faces=[clustered_face_to_proto(f) for f in c.faces], person_id=c.person_id)
            for c in result.clusters
        ],
        noise=[clustered_face_to_proto(f) for f in result.noise],
        photos=result.photos,
        faces=result.faces,
        skipped=[photo_result_to_proto(p) for p in result.skipped],
        threshold=result.threshold,
        min_faces=result.min_faces,
    )


def cluster_event_from_proto(message: facerec_pb2.ClusterEvent) -> ClusterProgress | ClusterResult | None:
    """A clustering call's progress or result from one answer of its stream (None: an event this SDK does not
    know)."""
    which = message.WhichOneof("event")
    if which == "progress":
        return cluster_progress_from_proto(message.progress)
    if which == "result":
        return cluster_result_from_proto(message.result)
    return None
