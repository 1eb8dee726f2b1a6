"""JSON documents and human tables of the command line."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

from facerec.cli import output
from facerec.cli.importer import ImportReport, SkippedFile
from facerec.sdk import Unavailable, convert
from facerec.sdk.types import Collection
from facerec.v1 import face_pb2, facerec_pb2
from tests.sdk.gateway_double import face_message


def identify_response() -> facerec_pb2.IdentifyResponse:
    obama = facerec_pb2.Candidate(person_id="obama", display_name="Barack Obama", distance=0.41, similarity=0.658)
    biden = facerec_pb2.Candidate(person_id="biden", distance=0.83, similarity=0.308)
    unknown = face_message(1)
    unknown.box.CopyFrom(face_pb2.BoundingBox(x=-4, y=210, width=80, height=81))
    return facerec_pb2.IdentifyResponse(
        faces=[
            facerec_pb2.IdentifiedFace(face=face_message(0), candidates=[obama, biden], match=obama),
            facerec_pb2.IdentifiedFace(face=unknown, candidates=[biden]),
        ],
        image_size=face_pb2.ImageSize(width=1280, height=853),
        threshold=0.6,
    )


def identify_document() -> dict:
    result = convert.identify_result_from_proto(identify_response())
    return json.loads(json.dumps(output.to_json(result)))


def test_identify_json_lists_each_face_with_box_match_and_candidates():
    faces = identify_document()["faces"]
    assert faces[0]["box"] == [40, 30, 96, 96]
    assert faces[0]["match"]["person_id"] == "obama" and faces[0]["match"]["distance"] == 0.41
    assert [(c["person_id"], c["distance"]) for c in faces[0]["candidates"]] == [("obama", 0.41), ("biden", 0.83)]


def test_identify_json_has_a_null_match_for_an_unknown_face():
    face = identify_document()["faces"][1]
    assert face["match"] is None
    assert face["box"] == [-4, 210, 80, 81]


def test_identify_json_leaves_out_embeddings_that_were_not_asked_for():
    assert "embedding" not in identify_document()["faces"][0]


def test_face_json_has_landmarks_as_points_and_quality():
    face = identify_document()["faces"][0]
    assert face["landmarks"]["nose_base"] == [88.0, 95.0]
    assert face["quality"]["sharpness"] == 310.0


def test_collection_json_has_its_creation_time_in_iso_format():
    collection = Collection("staff", "dlib_resnet_v1", 128, 0.6, 10, 4, datetime(2026, 11, 25, 9, 30, tzinfo=UTC))
    assert output.to_json(collection)["created_at"] == "2026-11-25T09:30:00+00:00"


def test_human_identify_names_the_match_and_the_nearest_of_an_unknown_face():
    text = output.render_identify(convert.identify_result_from_proto(identify_response()))
    lines = text.splitlines()
    assert lines[0] == "2 face(s), threshold 0.6"
    assert "obama (Barack Obama)" in lines[2] and "0.410" in lines[2]
    assert "unknown (nearest biden)" in lines[3]


def test_table_pads_columns_and_right_aligns_numbers():
    text = output.table(["person", "faces"], [["alice", 3], ["bob", 12]])
    assert text.splitlines() == ["person  faces", "alice       3", "bob        12"]


def test_the_progress_line_shows_the_rate_and_the_time_left() -> None:
    now = [100.0]
    stream = io.StringIO()
    progress = output.Progress(600, "import", stream, unit="photos", clock=lambda: now[0])
    now[0] += 10.0
    progress.advance(120, "person-07")
    assert stream.getvalue().splitlines()[-1].endswith("120/600 photos, 12.0 photos/s, ETA 0:40 person-07")
    now[0] += 50.0
    progress.advance(480)
    assert stream.getvalue().splitlines()[-1].endswith("600/600 photos, 10.0 photos/s, ETA 0:00")


def test_the_summary_of_a_broken_import_says_what_was_written_and_how_to_finish() -> None:
    report = ImportReport(
        directory="photos",
        collection="staff",
        created=False,
        skipped_files=[SkippedFile("notes.txt", "not in a person's folder")],
        already_complete=["ann"],
        sent=["bob", "cid", "dan"],
        photos_sent=9,
        elapsed_s=3.0,
        error=Unavailable("gateway is unavailable"),
        unconfirmed=["bob", "cid", "dan"],
        people_written={"bob": 3, "cid": 2},
    )
    text = output.render_import(report)
    assert text.splitlines()[0].startswith("import into staff: 3 people, 9 photo(s) sent in 3.0 s, 3.0 photos/s")
    assert "1 people already complete, not sent again" in text and "1 file(s) skipped" in text
    assert "of the 3 people of the broken stream, 2 are in staff (5 face(s)); run the same command again" in text
    document = output.import_json(report)
    assert document["complete"] is False and document["error"]["code"] == "UNAVAILABLE"
    assert document["skipped_files"] == [{"path": "notes.txt", "reason": "not in a person's folder"}]


def test_identify_json_carries_each_decision_and_margin():
    message = identify_response()
    message.faces[0].decision = facerec_pb2.MATCHED
    message.faces[0].margin = 0.42
    faces = json.loads(json.dumps(output.to_json(convert.identify_result_from_proto(message))))["faces"]
    assert [(f["decision"], f["margin"]) for f in faces] == [("MATCHED", 0.42), ("UNKNOWN", None)]


def test_human_identify_says_an_ambiguous_face_could_be_either_person_and_why_the_threshold():
    message = identify_response()
    message.faces[0].ClearField("match")
    message.faces[0].decision = facerec_pb2.AMBIGUOUS
    message.faces[0].margin = 0.02
    message.applied.reason = "0.45: target FPIR 1% over 376 enrolled people, minimum margin 0.04"
    lines = output.render_identify(convert.identify_result_from_proto(message)).splitlines()
    assert lines[0] == "2 face(s), threshold 0.45: target FPIR 1% over 376 enrolled people, minimum margin 0.04"
    assert "ambiguous (obama (Barack Obama) or biden)" in lines[2] and "0.020" in lines[2]


def test_collection_shows_its_target_fpir_and_minimum_margin():
    collection = Collection("staff", "dlib_resnet_v1", 128, 0.6, 10, 4, target_fpir=0.01, min_margin=0.04)
    text = output.render_collection(collection)
    assert "threshold:  0.6 (cap)" in text and "target FPIR: 1 %" in text and "min margin: 0.04" in text


def test_collections_table_has_each_collections_decision_settings():
    fixed = Collection("fixed", "dlib_resnet_v1", 128, 0.55, 3, 2)
    sized = Collection("sized", "dlib_resnet_v1", 128, 0.6, 9, 4, target_fpir=0.01, min_margin=0.04)
    header, first, second = output.render_collections([fixed, sized]).splitlines()
    assert header.split() == ["collection", "people", "faces", "threshold", "target_fpir", "min_margin", "model"]
    assert first.split()[3:6] == ["0.550", "-", "0.000"]
    assert second.split()[3:6] == ["0.600", "0.010", "0.040"]
