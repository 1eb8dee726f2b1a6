"""The public API's messages (facerec.v1) and the gateway's domain values, both ways; and the rich error details.

The servicer's only translation layer: requests become domain requests here, domain results become responses
here, and an enrollment's rejections become the ``google.rpc.PreconditionFailure`` of its status here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2

from facerec.v1 import audit_pb2, face_pb2
from facerec.v1 import facerec_pb2 as pb
from facerec_gateway import validation
from facerec_gateway.audit import AuditQuery
from facerec_gateway.bulk_enrollment import BulkEnrollment
from facerec_gateway.calibration import CalibrationRequest, CollectionCalibration
from facerec_gateway.clustering import (
    ClusteredFace,
    ClusterEvent,
    ClusterItem,
    ClusterOptions,
    ClusterProgress,
    ClusterResult,
)
from facerec_gateway.collections import NewCollection
from facerec_gateway.decisions import AppliedThreshold, Decision, ThresholdSource
from facerec_gateway.domain import (
    AuditEvent,
    AuditPage,
    Collection,
    EmbeddedPhoto,
    PeoplePage,
    Person,
    PersonUpdate,
    RejectionReason,
    SettingsUpdate,
)
from facerec_gateway.enrollment import Enrollment, EnrollRequest, FaceSelection, Photo, PhotoResult
from facerec_gateway.face_messages import face_message, image_size_message
from facerec_gateway.faces import EnrolledFace, EnrolledFacesPage, FaceDeletion, FaceMove
from facerec_gateway.identification import Identification, IdentifiedFace, IdentifyRequest, PersonMatch
from facerec_gateway.verification import PersonReference, Verification, VerifyRequest

_DECISIONS = {Decision.MATCHED: pb.MATCHED, Decision.UNKNOWN: pb.UNKNOWN, Decision.AMBIGUOUS: pb.AMBIGUOUS}
_SOURCES = {
    ThresholdSource.REQUEST: pb.THRESHOLD_SOURCE_REQUEST,
    ThresholdSource.COLLECTION: pb.THRESHOLD_SOURCE_COLLECTION,
    ThresholdSource.TARGET_FPIR: pb.THRESHOLD_SOURCE_TARGET_FPIR,
}

# ------------------------------------------------------------------------------------------ requests


def new_collection(request: pb.CreateCollectionRequest) -> NewCollection:
    """The collection a CreateCollection asks for (unset settings stay None: the domain gives the defaults)."""
    return NewCollection(
        name=request.name,
        model_id=request.model_id,
        threshold=request.threshold if request.HasField("threshold") else None,
        target_fpir=request.target_fpir if request.HasField("target_fpir") else None,
        min_margin=request.min_margin if request.HasField("min_margin") else None,
        retention_seconds=request.retention_seconds if request.HasField("retention_seconds") else None,
    )


def settings_update(request: pb.UpdateCollectionRequest) -> SettingsUpdate:
    """The settings an UpdateCollection changes."""
    return SettingsUpdate(
        threshold=request.threshold if request.HasField("threshold") else None,
        target_fpir=request.target_fpir if request.HasField("target_fpir") else None,
        min_margin=request.min_margin if request.HasField("min_margin") else None,
        retention_seconds=request.retention_seconds if request.HasField("retention_seconds") else None,
    )


def audit_query(request: pb.ListAuditEventsRequest) -> AuditQuery:
    """The part of the audit record a ListAuditEvents asks for."""
    return AuditQuery(
        since=validation.timestamp(request.since.seconds, request.since.nanos, "since")
        if request.HasField("since")
        else None,
        collection=request.collection,
        page_size=request.page_size,
        page_token=request.page_token,
    )


def enroll_request(request: pb.EnrollRequest) -> EnrollRequest:
    """The domain request of an Enroll (or of one message of a BulkEnroll)."""
    return EnrollRequest(
        collection=request.collection,
        person_id=request.person_id,
        photos=tuple(Photo(p.image, p.name) for p in request.photos),
        display_name=request.display_name if request.HasField("display_name") else None,
        metadata=dict(request.metadata),
        face_selection=_face_selection(request.face_selection),
    )


def identify_request(request: pb.IdentifyRequest) -> IdentifyRequest:
    """The domain request of an Identify (or of one frame of an IdentifyStream)."""
    return IdentifyRequest(
        collection=request.collection,
        image=request.image,
        top_k=request.top_k,
        threshold=request.threshold if request.HasField("threshold") else None,
        min_margin=request.min_margin if request.HasField("min_margin") else None,
        frame_id=request.frame_id,
        include_embeddings=request.include_embeddings,
    )


def verify_request(request: pb.VerifyRequest) -> VerifyRequest:
    """The domain request of a Verify: the probe and whichever reference is set."""
    reference = request.WhichOneof("reference")
    return VerifyRequest(
        image=request.image,
        reference_image=request.reference_image if reference == "reference_image" else None,
        person=PersonReference(request.person.collection, request.person.person_id) if reference == "person" else None,
        threshold=request.threshold if request.HasField("threshold") else None,
    )


def person_update(request: pb.UpdatePersonRequest) -> PersonUpdate:
    """The change an UpdatePerson asks for."""
    return PersonUpdate(
        person_id=request.person_id,
        display_name=request.display_name if request.HasField("display_name") else None,
        metadata=dict(request.metadata),
        replace_metadata=request.replace_metadata,
    )


def calibration_request(request: pb.CalibrateCollectionRequest) -> CalibrationRequest:
    """The domain request of a CalibrateCollection."""
    return CalibrationRequest(collection=request.name, target_fmr=request.target_fmr, apply=request.apply)


def _face_selection(value: int) -> FaceSelection:
    # A value this gateway does not know (a newer client's) is the default, as proto3 reads unknown enum values.
    return FaceSelection(value) if value in FaceSelection._value2member_map_ else FaceSelection.UNSPECIFIED


# ------------------------------------------------------------------------------------------ responses


def _reason(reason: RejectionReason) -> pb.RejectionReason.ValueType:
    return pb.RejectionReason.ValueType(reason.value)  # the domain's values are the contract's


def _timestamp(moment: datetime | None) -> Timestamp | None:
    if moment is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp


def collection_message(collection: Collection) -> pb.Collection:
    """The public message of a collection."""
    settings = collection.settings
    return pb.Collection(
        name=collection.name,
        model_id=collection.model_id,
        dimension=collection.dimension,
        threshold=settings.threshold,
        face_count=collection.size.faces,
        person_count=collection.size.people,
        created_at=_timestamp(collection.created_at),
        target_fpir=settings.target_fpir,
        min_margin=settings.min_margin,
        retention_seconds=collection.retention_seconds,
    )


def collections_response(collections: Sequence[Collection]) -> pb.ListCollectionsResponse:
    """The public list of collections."""
    return pb.ListCollectionsResponse(collections=[collection_message(c) for c in collections])


def person_message(person: Person) -> pb.Person:
    """The public message of a person."""
    return pb.Person(
        person_id=person.person_id,
        display_name=person.display_name,
        metadata=dict(person.metadata),
        face_count=person.face_count,
        face_ids=list(person.face_ids),
        collection=person.collection,
    )


def people_response(page: PeoplePage) -> pb.ListPeopleResponse:
    """The public page of people."""
    return pb.ListPeopleResponse(people=[person_message(p) for p in page.people], next_page_token=page.next_page_token)


def enrolled_face_message(face: EnrolledFace) -> pb.EnrolledFace:
    """The public message of a stored face (quality and box left unset when they were not stored)."""
    message = pb.EnrolledFace(
        face_id=face.face_id,
        person_id=face.person_id,
        photo_name=face.photo_name,
        enrolled_at=_timestamp(face.enrolled_at),
    )
    if face.quality is not None:
        quality = face.quality
        message.quality.CopyFrom(
            face_pb2.FaceQuality(
                face_size_px=quality.face_size_px,
                interocular_px=quality.interocular_px,
                sharpness=quality.sharpness,
                frontality=quality.frontality,
            )
        )
    if face.box is not None:
        box = face.box
        message.box.CopyFrom(face_pb2.BoundingBox(x=box.x, y=box.y, width=box.width, height=box.height))
    return message


def faces_response(page: EnrolledFacesPage) -> pb.ListFacesResponse:
    """The public page of a person's faces."""
    return pb.ListFacesResponse(
        faces=[enrolled_face_message(f) for f in page.faces], next_page_token=page.next_page_token
    )


def delete_face_response(deletion: FaceDeletion) -> pb.DeleteFaceResponse:
    """The public response of a DeleteFace."""
    return pb.DeleteFaceResponse(person_id=deletion.person_id, faces_left=deletion.faces_left)


def move_face_response(move: FaceMove) -> pb.MoveFaceResponse:
    """The public response of a MoveFace."""
    return pb.MoveFaceResponse(face=enrolled_face_message(move.face), from_person_id=move.from_person_id)


def audit_event_message(event: AuditEvent) -> audit_pb2.AuditEvent:
    """The public message of one audit event."""
    return audit_pb2.AuditEvent(
        sequence=event.sequence,
        time=_timestamp(event.time),
        action=audit_pb2.AuditAction.ValueType(event.action.value),  # the domain's values are the contract's
        collection=event.collection,
        person_id=event.person_id,
        face_id=event.face_id,
        faces=event.faces,
        request_id=event.request_id,
        actor=event.actor,
        detail=event.detail,
    )


def audit_response(page: AuditPage) -> pb.ListAuditEventsResponse:
    """The public page of the audit record."""
    return pb.ListAuditEventsResponse(
        events=[audit_event_message(e) for e in page.events], next_page_token=page.next_page_token
    )


def photo_result_message(result: PhotoResult) -> pb.PhotoResult:
    """The public result of one photo of an enrollment."""
    message = pb.PhotoResult(
        photo_index=result.photo_index,
        photo_name=result.photo_name,
        enrolled=result.enrolled,
        face_id=result.face_id,
        rejections=[pb.Rejection(reason=_reason(r.reason), message=r.message) for r in result.rejections],
    )
    if result.face is not None:
        message.face.CopyFrom(face_message(result.face))
    return message


def enroll_response(enrollment: Enrollment) -> pb.EnrollResponse:
    """The public response of an Enroll."""
    return pb.EnrollResponse(
        person=person_message(enrollment.person),
        photos=[photo_result_message(p) for p in enrollment.photos],
        faces_enrolled=enrollment.faces_enrolled,
    )


def bulk_enroll_response(summary: BulkEnrollment) -> pb.BulkEnrollResponse:
    """The public summary of a BulkEnroll."""
    response = pb.BulkEnrollResponse(
        requests=summary.requests,
        photos=summary.photos,
        faces_enrolled=summary.faces_enrolled,
        people_enrolled=summary.people_enrolled,
    )
    for rejection in summary.rejected:
        entry = response.rejected.add(
            person_id=rejection.person_id, request_index=rejection.request_index, error=rejection.error
        )
        if rejection.photo is not None:
            entry.photo.CopyFrom(photo_result_message(rejection.photo))
    return response


def _candidate(match: PersonMatch) -> pb.Candidate:
    return pb.Candidate(
        person_id=match.person_id,
        display_name=match.display_name,
        distance=match.distance,
        similarity=match.similarity,
        face_id=match.face_id,
    )


def _identified_face(identified: IdentifiedFace) -> pb.IdentifiedFace:
    message = pb.IdentifiedFace(
        face=face_message(identified.face),
        candidates=[_candidate(c) for c in identified.candidates],
        decision=_DECISIONS[identified.decision],
    )
    if identified.match is not None:
        message.match.CopyFrom(_candidate(identified.match))
    if identified.margin is not None:
        message.margin = identified.margin
    return message


def applied_message(applied: AppliedThreshold) -> pb.AppliedThreshold:
    """The public account of the threshold that decided."""
    return pb.AppliedThreshold(
        threshold=applied.threshold,
        source=_SOURCES[applied.source],
        target_fpir=applied.target_fpir,
        gallery_size=applied.gallery_size,
        min_margin=applied.min_margin,
        reason=applied.reason,
    )


def identify_response(identification: Identification) -> pb.IdentifyResponse:
    """The public response of an Identify (or of one frame of an IdentifyStream)."""
    return pb.IdentifyResponse(
        faces=[_identified_face(f) for f in identification.faces],
        image_size=image_size_message(identification.image_size),
        threshold=identification.applied.threshold,
        frame_id=identification.frame_id,
        applied=applied_message(identification.applied),
    )


def verify_response(verification: Verification) -> pb.VerifyResponse:
    """The public response of a Verify."""
    response = pb.VerifyResponse(
        same_person=verification.same_person,
        distance=verification.distance,
        similarity=verification.similarity,
        threshold=verification.threshold,
        probe_face=face_message(verification.probe_face),
        reference_face_id=verification.reference_face_id,
    )
    if verification.reference_face is not None:
        response.reference_face.CopyFrom(face_message(verification.reference_face))
    return response


def detect_response(photo: EmbeddedPhoto) -> pb.DetectResponse:
    """The public response of a Detect."""
    return pb.DetectResponse(
        faces=[face_message(f) for f in photo.faces], image_size=image_size_message(photo.image_size)
    )


def calibration_message(calibration: CollectionCalibration) -> pb.Calibration:
    """The public result of a CalibrateCollection."""
    result = calibration.result
    return pb.Calibration(
        threshold=result.threshold,
        target_fmr=result.target_fmr,
        fmr=result.fmr,
        fnmr=result.fnmr,
        eer=result.eer,
        eer_threshold=result.eer_threshold,
        genuine_pairs=result.genuine_pairs,
        impostor_pairs=result.impostor_pairs,
        people=result.people,
        faces=result.faces,
        applied=calibration.applied,
    )


def cluster_item(request: pb.ClusterRequest) -> ClusterItem:
    """One message of a ClusterFaces stream: its options, or a photo (a message with neither is an empty photo,
    which the call lists as skipped)."""
    if request.WhichOneof("item") == "options":
        options = request.options
        return ClusterOptions(
            collection=options.collection,
            threshold=options.threshold,
            min_faces=options.min_faces,
            enroll=options.enroll,
            person_id_prefix=options.person_id_prefix,
        )
    return Photo(request.photo.image, request.photo.name)


def _clustered_face(face: ClusteredFace) -> pb.ClusteredFace:
    box, quality = face.box, face.quality
    return pb.ClusteredFace(
        photo_index=face.photo_index,
        photo_name=face.photo_name,
        face_index=face.face_index,
        box=face_pb2.BoundingBox(x=box.x, y=box.y, width=box.width, height=box.height),
        quality=face_pb2.FaceQuality(
            face_size_px=quality.face_size_px,
            interocular_px=quality.interocular_px,
            sharpness=quality.sharpness,
            frontality=quality.frontality,
        ),
        face_id=face.face_id,
    )


def cluster_result_message(result: ClusterResult) -> pb.ClusterResult:
    """The public result of a ClusterFaces call."""
    return pb.ClusterResult(
        clusters=[
            pb.FaceCluster(faces=[_clustered_face(f) for f in cluster.faces], person_id=cluster.person_id)
            for cluster in result.clusters
        ],
        noise=[_clustered_face(f) for f in result.noise],
        photos=result.photos,
        faces=result.faces,
        skipped=[photo_result_message(p) for p in result.skipped],
        threshold=result.threshold,
        min_faces=result.min_faces,
    )


def cluster_event_message(event: ClusterEvent) -> pb.ClusterEvent:
    """One answer of a ClusterFaces stream: progress, or the result (the last)."""
    if isinstance(event, ClusterProgress):
        stage = pb.ClusterStage.ValueType(event.stage.value)  # the domain's values are the contract's
        progress = pb.ClusterProgress(stage=stage, done=event.done, total=event.total, faces=event.faces)
        return pb.ClusterEvent(progress=progress)
    return pb.ClusterEvent(result=cluster_result_message(event))


# ------------------------------------------------------------------------------------------ error details


def rejection_details(photos: Sequence[PhotoResult]) -> error_details_pb2.PreconditionFailure:
    """Every reason of every rejected photo, as the ``google.rpc.PreconditionFailure`` of a refused Enroll."""
    failure = error_details_pb2.PreconditionFailure()
    for photo in photos:
        label = photo.photo_name or f"photos[{photo.photo_index}]"
        for rejection in photo.rejections:
            failure.violations.add(
                type=pb.RejectionReason.Name(_reason(rejection.reason)),
                subject=f"photos[{photo.photo_index}]",
                description=f"{label}: {rejection.message}",
            )
    return failure
