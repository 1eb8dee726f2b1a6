"""The servicer's translation between the public messages and the domain: nothing lost either way."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from facerec.v1 import face_pb2, facerec_pb2
from facerec_gateway import conversions
from facerec_gateway.decisions import AppliedThreshold, Decision, DecisionSettings, GallerySize, ThresholdSource
from facerec_gateway.domain import Collection, ImageSize, Rejection, RejectionReason
from facerec_gateway.enrollment import FaceSelection, PhotoResult
from facerec_gateway.face_messages import face_from_message, face_message
from facerec_gateway.identification import Identification, IdentifiedFace, PersonMatch
from tests.gateway.fakes import face, vector


def test_the_domains_enums_carry_the_contracts_values() -> None:
    assert {r.name: r.value for r in RejectionReason} == {
        name: value for name, value in facerec_pb2.RejectionReason.items() if value
    }
    assert {s.name: s.value for s in FaceSelection} == {
        name.removeprefix("FACE_SELECTION_"): value for name, value in facerec_pb2.FaceSelection.items()
    }


def test_a_face_message_survives_the_round_trip() -> None:
    message = face_pb2.Face(
        box=face_pb2.BoundingBox(x=-3, y=4, width=50, height=60),
        landmarks=face_pb2.Landmarks(
            left_eye_outer=face_pb2.Point(x=1.5, y=2),
            left_eye_inner=face_pb2.Point(x=3, y=4),
            right_eye_outer=face_pb2.Point(x=5, y=6),
            right_eye_inner=face_pb2.Point(x=7, y=8),
            nose_base=face_pb2.Point(x=9, y=10.25),
        ),
        detection_score=0.875,
        quality=face_pb2.FaceQuality(face_size_px=40.5, interocular_px=20.25, sharpness=2.5, frontality=0.75),
        embedding=face_pb2.Embedding(values=[0.125, -0.5, 1.0], model_id="m"),
        index=2,
    )

    assert face_message(face_from_message(message)) == message
    detected_only = face_pb2.Face(box=message.box, quality=message.quality)
    assert face_message(face_from_message(detected_only)) == detected_only


def test_create_collection_leaves_unset_settings_to_the_domain() -> None:
    unset = conversions.new_collection(facerec_pb2.CreateCollectionRequest(name="staff"))
    given = conversions.new_collection(
        facerec_pb2.CreateCollectionRequest(name="staff", threshold=0.5, target_fpir=0.0, min_margin=0.25)
    )

    assert (unset.threshold, unset.target_fpir, unset.min_margin) == (None, None, None)
    assert (given.threshold, given.target_fpir, given.min_margin) == (0.5, 0.0, 0.25)


def test_a_collection_message_shows_its_decision_settings_and_size() -> None:
    created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    collection = Collection("staff", "m", 128, DecisionSettings(0.6, 0.01, 0.05), GallerySize(3, 7), created)

    message = conversions.collection_message(collection)

    assert (message.name, message.target_fpir, message.person_count, message.face_count) == ("staff", 0.01, 3, 7)
    assert message.threshold == pytest.approx(0.6) and message.min_margin == pytest.approx(0.05)
    assert message.created_at.ToDatetime(tzinfo=UTC) == created


def test_an_identification_says_per_face_the_decision_margin_and_match_and_which_threshold_applied() -> None:
    ann = PersonMatch("ann", "Ann", 0.3, 0.75, "f1")
    bob = PersonMatch("bob", "", 0.5, 0.58, "f2")
    applied = AppliedThreshold(0.6, ThresholdSource.TARGET_FPIR, 0.01, 40, 0.1, "0.60: target FPIR 1% over 40")
    identification = Identification(
        (
            IdentifiedFace(face(vector(1, 0, 0, 0)), (ann, bob), Decision.MATCHED, ann, 0.2),
            IdentifiedFace(face(None, x=100), (bob,), Decision.UNKNOWN, None, None),
        ),
        ImageSize(640, 480),
        applied,
        frame_id="7",
    )

    response = conversions.identify_response(identification)

    matched, unknown = response.faces
    assert matched.decision == facerec_pb2.MATCHED and matched.match.person_id == "ann"
    assert matched.HasField("margin") and matched.margin == pytest.approx(0.2)
    assert [c.person_id for c in matched.candidates] == ["ann", "bob"]
    assert unknown.decision == facerec_pb2.UNKNOWN and not unknown.HasField("match")
    assert not unknown.HasField("margin")
    assert response.threshold == pytest.approx(0.6) and response.frame_id == "7"
    assert response.applied.source == facerec_pb2.THRESHOLD_SOURCE_TARGET_FPIR
    assert (response.applied.gallery_size, response.applied.reason) == (40, "0.60: target FPIR 1% over 40")


def test_a_refused_enrollment_names_every_reason_in_its_precondition_failure() -> None:
    photos = [
        PhotoResult(0, "a.jpg", rejections=(Rejection(RejectionReason.NO_FACE, "no face was found in the photo"),)),
        PhotoResult(
            2,
            "",
            rejections=(
                Rejection(RejectionReason.FACE_TOO_SMALL, "face size is 12.0 px"),
                Rejection(RejectionReason.FACE_TOO_BLURRY, "face sharpness is 0.10"),
            ),
        ),
    ]

    failure = conversions.rejection_details(photos)

    assert [(v.type, v.subject, v.description) for v in failure.violations] == [
        ("NO_FACE", "photos[0]", "a.jpg: no face was found in the photo"),
        ("FACE_TOO_SMALL", "photos[2]", "photos[2]: face size is 12.0 px"),
        ("FACE_TOO_BLURRY", "photos[2]", "photos[2]: face sharpness is 0.10"),
    ]
