"""Proto <-> dataclass conversions of the SDK, with values like those the gateway returns."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from facerec.sdk import convert
from facerec.sdk.types import (
    AppliedThreshold,
    Calibration,
    Candidate,
    Decision,
    FaceSelection,
    RejectionReason,
    ThresholdSource,
)
from facerec.v1 import face_pb2, facerec_pb2
from tests.sdk.gateway_double import face_message


def embedding_message() -> face_pb2.Embedding:
    rng = np.random.default_rng(7)
    values = rng.normal(0.0, 0.09, 128).astype(np.float32)
    return face_pb2.Embedding(values=values.tolist(), model_id="dlib_resnet_v1")


def identify_response() -> facerec_pb2.IdentifyResponse:
    face_with_embedding = face_message(1)
    face_with_embedding.embedding.CopyFrom(embedding_message())
    obama = facerec_pb2.Candidate(
        person_id="obama", display_name="Barack Obama", distance=0.41, similarity=0.658, face_id="3f2a"
    )
    biden = facerec_pb2.Candidate(person_id="biden", distance=0.83, similarity=0.308, face_id="9c1d")
    return facerec_pb2.IdentifyResponse(
        faces=[
            facerec_pb2.IdentifiedFace(
                face=face_message(0), candidates=[obama, biden], match=obama, decision=facerec_pb2.MATCHED, margin=0.42
            ),
            facerec_pb2.IdentifiedFace(face=face_with_embedding, candidates=[biden], decision=facerec_pb2.UNKNOWN),
        ],
        image_size=face_pb2.ImageSize(width=1280, height=853),
        threshold=0.6,
        frame_id="frame-17",
        applied=facerec_pb2.AppliedThreshold(
            threshold=0.6,
            source=facerec_pb2.THRESHOLD_SOURCE_TARGET_FPIR,
            target_fpir=0.01,
            gallery_size=2,
            min_margin=0.04,
            reason="0.60: target FPIR 1% over 2 enrolled people",
        ),
    )


def test_identify_response_round_trips_through_the_dataclasses():
    message = identify_response()
    assert convert.identify_result_to_proto(convert.identify_result_from_proto(message)) == message


def test_unknown_face_has_no_match_but_keeps_its_candidates():
    result = convert.identify_result_from_proto(identify_response())
    assert result.faces[1].match is None
    assert [c.person_id for c in result.faces[1].candidates] == ["biden"]


def test_decision_margin_and_applied_threshold_are_read():
    result = convert.identify_result_from_proto(identify_response())
    assert [f.decision for f in result.faces] == [Decision.MATCHED, Decision.UNKNOWN]
    assert [f.margin for f in result.faces] == [0.42, None]
    assert result.applied == AppliedThreshold(
        threshold=0.6,
        source=ThresholdSource.TARGET_FPIR,
        target_fpir=0.01,
        gallery_size=2,
        min_margin=0.04,
        reason="0.60: target FPIR 1% over 2 enrolled people",
    )


def test_an_ambiguous_face_round_trips_without_a_match():
    message = identify_response()
    message.faces[0].ClearField("match")
    message.faces[0].decision = facerec_pb2.AMBIGUOUS
    result = convert.identify_result_from_proto(message)
    assert (result.faces[0].decision, result.faces[0].match) == (Decision.AMBIGUOUS, None)
    assert convert.identify_result_to_proto(result) == message


def test_a_response_without_decisions_reads_them_from_the_match():
    message = identify_response()
    for face in message.faces:
        face.ClearField("decision")
    message.ClearField("applied")
    result = convert.identify_result_from_proto(message)
    assert [f.decision for f in result.faces] == [Decision.MATCHED, Decision.UNKNOWN]
    assert result.applied is None


def test_collection_decision_settings_round_trip():
    message = facerec_pb2.Collection(name="staff", threshold=0.6, target_fpir=0.01, min_margin=0.04, person_count=3)
    collection = convert.collection_from_proto(message)
    assert (collection.target_fpir, collection.min_margin) == (0.01, 0.04)
    assert convert.collection_to_proto(collection) == message


def test_calibration_round_trips():
    message = facerec_pb2.Calibration(
        threshold=0.55,
        target_fmr=0.001,
        fmr=0.0009,
        fnmr=0.02,
        eer=0.005,
        eer_threshold=0.596,
        genuine_pairs=38,
        impostor_pairs=1853,
        people=13,
        faces=62,
        applied=True,
    )
    calibration = convert.calibration_from_proto(message)
    assert calibration == Calibration(0.55, 0.001, 0.0009, 0.02, 0.005, 0.596, 38, 1853, 13, 62, True)
    assert convert.calibration_to_proto(calibration) == message


def test_float32_fields_read_as_their_shortest_decimal():
    result = convert.identify_result_from_proto(identify_response())
    assert result.faces[0].match == Candidate(
        person_id="obama", distance=0.41, similarity=0.658, display_name="Barack Obama", face_id="3f2a"
    )
    assert result.threshold == 0.6


def test_embedding_is_kept_exactly_and_absent_when_not_sent():
    result = convert.identify_result_from_proto(identify_response())
    embedding = result.faces[1].face.embedding
    assert embedding is not None and embedding.model_id == "dlib_resnet_v1"
    np.testing.assert_array_equal(embedding.as_array(), np.asarray(embedding_message().values, dtype=np.float32))
    assert result.faces[0].face.embedding is None


def test_enroll_response_round_trips_through_the_dataclasses():
    message = facerec_pb2.EnrollResponse(
        person=facerec_pb2.Person(
            person_id="emp-00412",
            display_name="Ada Lovelace",
            metadata={"team": "analytics", "site": "london"},
            face_count=2,
            face_ids=["a1b2", "c3d4"],
            collection="staff",
        ),
        photos=[
            facerec_pb2.PhotoResult(
                photo_index=0, photo_name="ada1.jpg", enrolled=True, face_id="a1b2", face=face_message()
            ),
            facerec_pb2.PhotoResult(
                photo_index=1,
                photo_name="ada-blurry.jpg",
                enrolled=False,
                face=face_message(),
                rejections=[facerec_pb2.Rejection(reason=facerec_pb2.FACE_TOO_BLURRY, message="sharpness 21 < 50")],
            ),
        ],
        faces_enrolled=1,
    )
    result = convert.enroll_result_from_proto(message)
    assert result.photos[1].rejections[0].reason is RejectionReason.FACE_TOO_BLURRY
    assert result.person.metadata == {"team": "analytics", "site": "london"}
    assert convert.enroll_result_to_proto(result) == message


def test_bulk_enroll_response_round_trips_with_photo_and_request_rejections():
    message = facerec_pb2.BulkEnrollResponse(requests=3, photos=7, faces_enrolled=5, people_enrolled=2)
    photo = message.rejected.add(person_id="bob", request_index=1).photo
    photo.CopyFrom(
        facerec_pb2.PhotoResult(
            photo_index=2,
            photo_name="bob/group.jpg",
            rejections=[facerec_pb2.Rejection(reason=facerec_pb2.MULTIPLE_FACES, message="3 faces")],
        )
    )
    message.rejected.add(person_id="bad\x07id", request_index=2, error="person id has control characters")
    result = convert.bulk_enroll_result_from_proto(message)
    assert result.rejected[1].photo is None
    assert convert.bulk_enroll_result_to_proto(result) == message


def test_verify_response_round_trips_with_a_reference_photo():
    message = facerec_pb2.VerifyResponse(
        same_person=False,
        distance=0.871,
        similarity=0.274,
        threshold=0.6,
        probe_face=face_message(0),
        reference_face=face_message(0),
    )
    assert convert.verify_result_to_proto(convert.verify_result_from_proto(message)) == message


def test_verify_response_against_a_person_has_no_reference_face():
    message = facerec_pb2.VerifyResponse(
        same_person=True,
        distance=0.38,
        similarity=0.683,
        threshold=0.6,
        probe_face=face_message(0),
        reference_face_id="e5f6",
    )
    result = convert.verify_result_from_proto(message)
    assert result.reference_face is None and result.reference_face_id == "e5f6"
    assert convert.verify_result_to_proto(result) == message


def test_detect_response_round_trips():
    message = facerec_pb2.DetectResponse(
        faces=[face_message(0), face_message(1)], image_size=face_pb2.ImageSize(width=910, height=1137)
    )
    assert convert.detect_result_to_proto(convert.detect_result_from_proto(message)) == message


def test_collection_round_trips_with_its_creation_time():
    message = facerec_pb2.Collection(
        name="staff", model_id="dlib_resnet_v1", dimension=128, threshold=0.55, face_count=2048, person_count=512
    )
    message.created_at.FromDatetime(datetime(2026, 11, 25, 9, 30, 12, 250000, tzinfo=UTC))
    collection = convert.collection_from_proto(message)
    assert collection.created_at == datetime(2026, 11, 25, 9, 30, 12, 250000, tzinfo=UTC)
    assert collection.threshold == 0.55
    assert convert.collection_to_proto(collection) == message


def test_collection_without_creation_time_reads_as_none():
    collection = convert.collection_from_proto(facerec_pb2.Collection(name="default", threshold=0.6))
    assert collection.created_at is None


def test_people_page_carries_the_next_page_token():
    message = facerec_pb2.ListPeopleResponse(
        people=[facerec_pb2.Person(person_id="p1", collection="default", face_count=3)], next_page_token="abc"
    )
    page = convert.people_page_from_proto(message)
    assert [p.person_id for p in page.items] == ["p1"] and page.next_page_token == "abc"


def test_unknown_rejection_reason_reads_as_unspecified():
    assert convert.rejection_reason_from_proto(99) is RejectionReason.UNSPECIFIED


def test_face_selection_names_map_to_the_proto_enum():
    assert convert.face_selection_to_proto("largest") == facerec_pb2.FACE_SELECTION_LARGEST
    assert convert.face_selection_to_proto(FaceSelection.SINGLE) == facerec_pb2.FACE_SELECTION_SINGLE
    assert convert.face_selection_to_proto(None) == facerec_pb2.FACE_SELECTION_UNSPECIFIED
