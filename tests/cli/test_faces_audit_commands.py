"""``facerec faces list|delete|move``, ``facerec audit`` and ``--retention`` against a recording gateway double:
what each sends, what it prints (table and ``--json``), its exit codes; and the durations and times they read."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from facerec.cli import exit_codes
from facerec.cli.durations import format_duration, parse_duration, parse_since
from facerec.cli.main import main
from tests.sdk.faces_double import T0, Served, serve


@pytest.fixture
def gateway() -> Iterator[Served]:
    with serve() as served:
        yield served


def run(gateway: Served, *args: str) -> int:
    return main(["--gateway", gateway.address, *args])


# ------------------------------------------------------------------------------------------ faces


def test_faces_list_prints_every_page_with_photo_time_quality_and_box(gateway: Served, capsys) -> None:
    assert run(gateway, "faces", "list", "ann", "--collection", "staff", "--page-size", "2") == exit_codes.OK

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["face", "photo", "enrolled", "size_px", "sharpness", "frontality", "box"]
    assert lines[1].split() == [
        "face-0",
        "ann-0.jpg",
        "2026-12-01T09:00:00+00:00",
        "96.500",
        "2.250",
        "0.875",
        "10,20",
        "96x96",
    ]
    assert lines[5].split() == ["face-4", "ann-4.jpg", "2026-12-01T09:00:04+00:00", "-", "-", "-", "-"]
    assert lines[-1] == "5 face(s)"
    requests = gateway.gateway.requests["ListFaces"]
    assert [r.page_token for r in requests] == ["", "2", "4"]  # type: ignore[attr-defined]
    assert {(r.collection, r.person_id, r.page_size) for r in requests} == {("staff", "ann", 2)}  # type: ignore[attr-defined]


def test_faces_list_json_is_one_document_with_unset_measures_as_null(gateway: Served, capsys) -> None:
    assert run(gateway, "faces", "list", "ann", "--json") == exit_codes.OK

    out = capsys.readouterr().out
    document = json.loads(out)
    assert out.count("\n") == 1
    assert (document["person_id"], document["collection"], len(document["faces"])) == ("ann", "default", 5)
    first, last = document["faces"][0], document["faces"][-1]
    assert first["box"] == [10, 20, 96, 96] and first["quality"]["sharpness"] == 2.25
    assert first["enrolled_at"] == "2026-12-01T09:00:00+00:00" and first["photo_name"] == "ann-0.jpg"
    assert (last["quality"], last["box"]) == (None, None)


def test_faces_list_of_a_person_without_faces_exits_3(gateway: Served, capsys) -> None:
    assert run(gateway, "faces", "list", "nobody") == exit_codes.NOT_FOUND
    assert "nobody" in capsys.readouterr().err


def test_faces_delete_says_whose_face_it_was_and_what_is_left(gateway: Served, capsys) -> None:
    assert run(gateway, "faces", "delete", "face-1", "--collection", "staff") == exit_codes.OK
    assert capsys.readouterr().out.strip() == "deleted face face-1 of ann from staff: 4 face(s) left"

    assert run(gateway, "faces", "delete", "face-1", "--json") == exit_codes.OK
    assert json.loads(capsys.readouterr().out) == {
        "face_id": "face-1", "collection": "default", "person_id": "ann", "faces_left": 4
    }  # fmt: skip
    assert run(gateway, "faces", "delete", "nope") == exit_codes.NOT_FOUND


def test_faces_move_sends_the_new_person_and_prints_the_move(gateway: Served, capsys) -> None:
    assert run(gateway, "faces", "move", "face-2", "--to", "bob", "--collection", "staff") == exit_codes.OK
    assert capsys.readouterr().out.strip() == "moved face face-2 (ann-2.jpg) in staff from ann to bob"
    (request,) = gateway.gateway.requests["MoveFace"]
    assert (request.collection, request.face_id, request.to_person_id) == ("staff", "face-2", "bob")  # type: ignore[attr-defined]

    assert run(gateway, "faces", "move", "face-2", "--to", "bob", "--json") == exit_codes.OK
    document = json.loads(capsys.readouterr().out)
    assert document["from_person_id"] == "ann" and document["face"]["person_id"] == "bob"


def test_faces_move_needs_the_new_person(gateway: Served, capsys) -> None:
    with pytest.raises(SystemExit) as usage:
        run(gateway, "faces", "move", "face-2")
    assert usage.value.code == exit_codes.USAGE and "--to" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ audit


def test_audit_prints_every_event_oldest_first(gateway: Served, capsys) -> None:
    assert run(gateway, "audit", "--page-size", "2") == exit_codes.OK

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["time", "action", "collection", "person", "face", "faces", "actor", "request", "detail"]
    assert lines[1].split() == [
        "2026-12-01T09:01:00+00:00",
        "enroll",
        "staff",
        "ann",
        "-",
        "5",
        "key:0123456789abcdef",
        "r-1",
        "-",
    ]
    assert lines[3].split()[1] == "retention_purge" and "registry:retention" in lines[3]
    assert lines[-1] == "3 event(s)"
    first = gateway.gateway.requests["ListAuditEvents"][0]
    assert not first.HasField("since") and first.collection == ""  # type: ignore[attr-defined]


def test_audit_json_names_each_action_as_the_api_does(gateway: Served, capsys) -> None:
    assert run(gateway, "audit", "--json", "--collection", "staff", "--since", "2026-12-01T09:00:30Z") == exit_codes.OK

    events = json.loads(capsys.readouterr().out)["events"]
    assert [e["action"] for e in events] == ["AUDIT_ENROLL", "AUDIT_FACE_MOVE", "AUDIT_RETENTION_PURGE"]
    assert events[1] == {
        "sequence": 2, "time": "2026-12-01T09:02:00+00:00", "action": "AUDIT_FACE_MOVE", "collection": "staff",
        "person_id": "bob", "face_id": "face-2", "faces": 1, "request_id": "r-2", "actor": "key:0123456789abcdef",
        "detail": "from ann",
    }  # fmt: skip
    request = gateway.gateway.requests["ListAuditEvents"][0]
    assert request.collection == "staff"  # type: ignore[attr-defined]
    assert request.since.ToDatetime(tzinfo=UTC) == T0 + timedelta(seconds=30)  # type: ignore[attr-defined]


def test_audit_since_a_duration_asks_from_that_long_ago(gateway: Served, capsys) -> None:
    before = datetime.now(UTC)
    assert run(gateway, "audit", "--since", "7d") == exit_codes.OK
    since = gateway.gateway.requests["ListAuditEvents"][0].since.ToDatetime(tzinfo=UTC)  # type: ignore[attr-defined]
    assert before - timedelta(days=7, seconds=5) < since <= datetime.now(UTC) - timedelta(days=7)


def test_audit_since_that_is_neither_a_time_nor_a_duration_is_a_usage_error(gateway: Served, capsys) -> None:
    with pytest.raises(SystemExit) as usage:
        run(gateway, "audit", "--since", "last tuesday")
    assert usage.value.code == exit_codes.USAGE and "ISO 8601" in capsys.readouterr().err
    assert gateway.gateway.requests["ListAuditEvents"] == []


# ------------------------------------------------------------------------------------------ retention


def test_collections_create_and_update_send_the_retention_in_seconds(gateway: Served, capsys) -> None:
    assert run(gateway, "collections", "create", "staff", "--retention", "30d") == exit_codes.OK
    assert run(gateway, "collections", "update", "staff", "--retention", "0") == exit_codes.OK

    (create,) = gateway.gateway.requests["CreateCollection"]
    (update,) = gateway.gateway.requests["UpdateCollection"]
    assert create.retention_seconds == 30 * 86400  # type: ignore[attr-defined]
    assert update.HasField("retention_seconds") and update.retention_seconds == 0  # type: ignore[attr-defined]
    assert not update.HasField("threshold")  # type: ignore[attr-defined]


def test_a_retention_that_is_not_a_duration_or_out_of_range_is_a_usage_error(gateway: Served, capsys) -> None:
    for bad in ("forever", "-1d", "101y"):
        with pytest.raises(SystemExit) as usage:
            run(gateway, "collections", "create", "staff", "--retention", bad)
        assert usage.value.code == exit_codes.USAGE
    assert gateway.gateway.requests["CreateCollection"] == []


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0), ("3600", 3600), ("90s", 90), ("30m", 1800), ("12h", 43200), ("7d", 604800), ("2w", 1209600),
     ("3y", 3 * 365 * 86400), ("1d12h", 129600), (" 30D ", 2592000)],
)  # fmt: skip
def test_durations_read_seconds_or_numbers_with_units(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "d", "1.5d", "-1d", "1x", "d1", "1d 2h"])
def test_a_duration_in_another_form_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_durations_print_in_the_units_they_are_read_in() -> None:
    for seconds in (0, 2, 90, 3600, 2592000, 31536000, 129600):
        assert parse_duration(format_duration(seconds)) == seconds
    assert (format_duration(2592000), format_duration(90), format_duration(31536000)) == ("30d", "1m30s", "1y")


def test_since_reads_iso_times_utc_without_an_offset_and_durations_ago() -> None:
    now = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
    assert parse_since("7d", now) == datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert parse_since("2026-12-01", now) == datetime(2026, 12, 1, tzinfo=UTC)
    assert parse_since("2026-12-01T09:30:00+01:00", now) == datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
    assert parse_since("2026-12-01T09:30Z", now) == datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
