"""Commands of the facerec command line run end to end against the recording gateway double."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from facerec.cli import exit_codes
from facerec.cli.importer import scan
from facerec.cli.main import main
from tests.sdk.gateway_double import PEOPLE, REJECTED_PERSON, GatewayServer


@pytest.fixture
def gateway() -> Iterator[GatewayServer]:
    with GatewayServer() as server:
        yield server


@pytest.fixture
def people_dir(tmp_path: Path, samples_dir: Path) -> Path:
    """DIR/<person>/ folders linking to the sample photos, plus things an import must skip."""
    layout = {"obama": ["obama.jpg", "obama2.jpg"], "biden": ["biden.jpg", "32bit.png"], ".cache": ["obama3.jpg"]}
    for person, photos in layout.items():
        (tmp_path / person).mkdir()
        for photo in photos:
            (tmp_path / person / photo).symlink_to(samples_dir / photo)
    (tmp_path / "obama" / "notes.txt").write_text("not a photo")
    (tmp_path / "empty").mkdir()
    (tmp_path / "README.txt").write_text("not a person")
    return tmp_path


def test_identify_json_prints_exactly_one_json_object(gateway: GatewayServer, samples_dir: Path, capsys):
    code = main(["--gateway", gateway.address, "identify", str(samples_dir / "obama.jpg"), "--json", "--top-k", "3"])
    assert code == exit_codes.OK
    out = capsys.readouterr().out
    document = json.loads(out)
    assert out.count("\n") == 1 and isinstance(document, dict)
    (face,) = document["faces"]
    assert face["box"] == [40, 30, 96, 96]
    assert face["match"]["person_id"] == "obama"
    assert [c["person_id"] for c in face["candidates"]] == ["obama"]


def test_enroll_prints_each_photo_and_sends_the_api_key(gateway: GatewayServer, samples_dir: Path, capsys):
    argv = ["--gateway", gateway.address, "--api-key", "k1", "enroll", "obama", str(samples_dir / "obama.jpg")]
    assert main([*argv, "--name", "Barack Obama", "--meta", "role=president"]) == exit_codes.OK
    out = capsys.readouterr().out
    assert out.startswith("enrolled obama (Barack Obama) in default: 1 face(s)")
    assert "obama.jpg" in out
    assert gateway.gateway.metadata[0]["authorization"] == "Bearer k1"


def test_a_refused_enrollment_exits_4_naming_each_file(gateway: GatewayServer, samples_dir: Path, capsys):
    photos = [str(samples_dir / "obama.jpg"), str(samples_dir / "biden.jpg")]
    assert main(["--gateway", gateway.address, "enroll", REJECTED_PERSON, *photos]) == exit_codes.REJECTED
    err = capsys.readouterr().err
    assert "obama.jpg" in err and "biden.jpg" in err and "NO_FACE" in err


def test_a_refused_enrollment_with_json_lists_the_rejections(gateway: GatewayServer, samples_dir: Path, capsys):
    argv = ["--gateway", gateway.address, "--json", "enroll", REJECTED_PERSON, str(samples_dir / "obama.jpg")]
    assert main(argv) == exit_codes.REJECTED
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["code"] == "FAILED_PRECONDITION"
    assert error["rejections"][0]["reason"] == "NO_FACE" and error["rejections"][0]["photo_index"] == 0


def test_a_missing_person_exits_3(gateway: GatewayServer, capsys):
    assert main(["--gateway", gateway.address, "people", "show", "nobody"]) == exit_codes.NOT_FOUND
    assert "nobody" in capsys.readouterr().err


def test_people_list_shows_every_page(gateway: GatewayServer, capsys):
    argv = ["--gateway", gateway.address, "people", "list", "--page-size", "3", "--json", "--collection", "staff"]
    assert main(argv) == exit_codes.OK
    people = json.loads(capsys.readouterr().out)["people"]
    assert [p["person_id"] for p in people] == PEOPLE
    assert {p["collection"] for p in people} == {"staff"}


def test_verify_against_a_person_names_the_collection(gateway: GatewayServer, samples_dir: Path, capsys):
    argv = ["--gateway", gateway.address, "verify", str(samples_dir / "obama.jpg"), "--person", "obama"]
    assert main([*argv, "--collection", "staff"]) == exit_codes.OK
    assert capsys.readouterr().out.startswith("same person: distance 0.350")
    request = gateway.gateway.requests["Verify"][0]
    assert (request.person.collection, request.person.person_id) == ("staff", "obama")  # type: ignore[attr-defined]


def test_scan_finds_person_folders_with_image_files_only(people_dir: Path):
    people = scan(people_dir)
    assert [(p.person_id, [f.name for f in p.photos]) for p in people] == [
        ("biden", ["32bit.png", "biden.jpg"]),
        ("obama", ["obama.jpg", "obama2.jpg"]),
    ]


def test_scan_reads_a_real_labelled_folder(shared_faces_dir: Path):
    people = scan(shared_faces_dir / "face_recognition_knn" / "train")
    assert [p.person_id for p in people] == ["alex_lacamoire", "biden", "kit_harington", "obama", "rose_leslie"]
    assert sum(len(p.photos) for p in people) == 9


def test_import_enrolls_each_folder_as_its_person(gateway: GatewayServer, people_dir: Path, capsys):
    assert main(["--gateway", gateway.address, "import", str(people_dir), "--collection", "staff"]) == exit_codes.OK
    requests = gateway.gateway.requests["BulkEnroll"]
    assert [(r.person_id, r.collection, [p.name for p in r.photos]) for r in requests] == [  # type: ignore[attr-defined]
        ("biden", "staff", ["biden/32bit.png", "biden/biden.jpg"]),
        ("obama", "staff", ["obama/obama.jpg", "obama/obama2.jpg"]),
    ]
    captured = capsys.readouterr()
    assert "2 people sent, 4 photo(s): 3 face(s) enrolled, 2 people enrolled, 1 rejected" in captured.out
    assert "biden/32bit.png" in captured.out and "no face found" in captured.out
    assert "2/2" in captured.err  # the progress line


def test_import_strict_exits_4_when_a_photo_was_rejected(gateway: GatewayServer, people_dir: Path, capsys):
    assert main(["--gateway", gateway.address, "import", str(people_dir), "--strict"]) == exit_codes.REJECTED


def test_import_json_prints_the_summary(gateway: GatewayServer, people_dir: Path, capsys):
    assert main(["--gateway", gateway.address, "--json", "import", str(people_dir)]) == exit_codes.OK
    summary = json.loads(capsys.readouterr().out)
    assert (summary["requests"], summary["faces_enrolled"]) == (2, 3)
    assert summary["rejected"][0]["photo"]["rejections"][0]["reason"] == "NO_FACE"


def test_import_of_a_missing_folder_is_a_usage_error(gateway: GatewayServer, tmp_path: Path, capsys):
    assert main(["--gateway", gateway.address, "import", str(tmp_path / "absent")]) == exit_codes.USAGE
