"""Commands of the facerec command line run end to end against the recording gateway double."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from facerec.cli import exit_codes, importer
from facerec.cli.importer import PHOTOS_PER_REQUEST, STREAM_PHOTOS, PersonFolder, requests_of, scan, streams_of
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


def test_scan_finds_person_folders_with_photos_and_names_every_file_it_skips(people_dir: Path):
    folder = scan(people_dir)
    assert [(p.person_id, [f.name for f in p.photos]) for p in folder.people] == [
        ("biden", ["32bit.png", "biden.jpg"]),
        ("obama", ["obama.jpg", "obama2.jpg"]),
    ]
    assert [(s.path, s.reason.split(" (")[0]) for s in folder.skipped] == [
        ("README.txt", "not in a person's folder"),
        ("obama/notes.txt", "not a photo in an accepted format"),
    ]


def test_scan_recognises_photos_by_their_content_not_their_names(tmp_path: Path, samples_dir: Path):
    (tmp_path / "obama").mkdir()
    (tmp_path / "obama" / "portrait").write_bytes((samples_dir / "obama.jpg").read_bytes())
    (tmp_path / "obama" / "fake.jpg").write_text("a text file named like a photo")
    (tmp_path / "obama" / "empty.png").write_bytes(b"")
    folder = scan(tmp_path)
    assert [[f.name for f in p.photos] for p in folder.people] == [["portrait"]]
    assert {s.path: s.reason.split(" (")[0] for s in folder.skipped} == {
        "obama/empty.png": "empty file",
        "obama/fake.jpg": "not a photo in an accepted format",
    }


def test_scan_reads_a_real_labelled_folder(shared_faces_dir: Path):
    folder = scan(shared_faces_dir / "face_recognition_knn" / "train")
    assert [p.person_id for p in folder.people] == ["alex_lacamoire", "biden", "kit_harington", "obama", "rose_leslie"]
    assert folder.photo_count == 9 and not folder.skipped


def test_scan_finds_the_extensionless_gif_photos_of_yale_faces(shared_faces_dir: Path):
    folder = scan(shared_faces_dir / "yalefaces")
    assert len(folder.people) == 15 and folder.photo_count == 164 and not folder.skipped


def test_a_person_with_more_photos_than_one_request_takes_is_sent_in_several(tmp_path: Path, samples_dir: Path):
    person = tmp_path / "many" / "obama"
    person.mkdir(parents=True)
    for i in range(PHOTOS_PER_REQUEST + 6):
        (person / f"{i:03d}.jpg").symlink_to(samples_dir / "obama.jpg")
    (folder,) = scan(tmp_path / "many").people
    assert [len(batch) for batch in requests_of(folder)] == [PHOTOS_PER_REQUEST, 6]


def test_an_import_is_a_series_of_streams_of_whole_people():
    sizes = [20, 20, 5, 40, 1]
    people = [PersonFolder(f"p{i}", tuple(Path(f"{j}.jpg") for j in range(n))) for i, n in enumerate(sizes)]
    assert [[p.person_id for p in group] for group in streams_of(people, photos=32)] == [
        ["p0", "p1"],
        ["p2", "p3"],
        ["p4"],
    ]


def test_a_stream_breaking_among_several_keeps_the_summaries_of_the_others(
    gateway: GatewayServer, tmp_path: Path, capsys
):
    tiny = io.BytesIO()
    Image.new("RGB", (8, 8)).save(tiny, format="JPEG")
    for person in ("p0", "p1", "p2"):  # 32 photos each: one stream each
        (tmp_path / person).mkdir()
        for j in range(STREAM_PHOTOS):
            (tmp_path / person / f"{j:02d}.jpg").write_bytes(tiny.getvalue())
    gateway.gateway.bulk_breaks_on = "p1"
    assert main(["--gateway", gateway.address, "--json", "import", str(tmp_path)]) == exit_codes.UNAVAILABLE
    summary = json.loads(capsys.readouterr().out)
    # p2's stream was opened as p0's ended, before p1's broke; no stream after a broken one is opened.
    assert summary["people_sent"] == 3 and summary["unconfirmed"] == ["p1"]
    assert summary["faces_enrolled"] == 2 * STREAM_PHOTOS and summary["complete"] is False


def test_import_enrolls_each_folder_as_its_person(gateway: GatewayServer, people_dir: Path, capsys):
    assert main(["--gateway", gateway.address, "import", str(people_dir), "--collection", "staff"]) == exit_codes.OK
    requests = gateway.gateway.requests["BulkEnroll"]
    assert [(r.person_id, r.collection, [p.name for p in r.photos]) for r in requests] == [  # type: ignore[attr-defined]
        ("biden", "staff", ["biden/32bit.png", "biden/biden.jpg"]),
        ("obama", "staff", ["obama/obama.jpg", "obama/obama2.jpg"]),
    ]
    captured = capsys.readouterr()
    assert "2 people, 4 photo(s) sent in" in captured.out
    assert "3 face(s) enrolled, 2 people enrolled, 1 rejected" in captured.out
    assert "biden/32bit.png" in captured.out and "no face found" in captured.out
    assert "4/4 photos" in captured.err  # the progress line
    assert "skipped obama/notes.txt: not a photo" in captured.err and "skipped README.txt" in captured.err


def test_import_strict_exits_4_when_a_photo_was_rejected(gateway: GatewayServer, people_dir: Path, capsys):
    assert main(["--gateway", gateway.address, "import", str(people_dir), "--strict"]) == exit_codes.REJECTED


def test_import_json_prints_the_summary(gateway: GatewayServer, people_dir: Path, capsys):
    assert main(["--gateway", gateway.address, "--json", "import", str(people_dir)]) == exit_codes.OK
    summary = json.loads(capsys.readouterr().out)
    assert (summary["requests"], summary["faces_enrolled"]) == (2, 3)
    assert summary["rejected"][0]["photo"]["rejections"][0]["reason"] == "NO_FACE"


def test_import_into_a_missing_collection_exits_3_before_sending_anything(
    gateway: GatewayServer, people_dir: Path, capsys
):
    argv = ["--gateway", gateway.address, "import", str(people_dir), "--collection", "absent"]
    assert main(argv) == exit_codes.NOT_FOUND
    assert "'absent' does not exist" in capsys.readouterr().err
    assert not gateway.gateway.requests["BulkEnroll"]


def test_import_with_create_creates_the_missing_collection_first(gateway: GatewayServer, people_dir: Path):
    argv = ["--gateway", gateway.address, "import", str(people_dir), "--collection", "new-one", "--create"]
    assert main(argv) == exit_codes.OK
    assert [r.name for r in gateway.gateway.requests["CreateCollection"]] == ["new-one"]  # type: ignore[attr-defined]
    assert {r.collection for r in gateway.gateway.requests["BulkEnroll"]} == {"new-one"}  # type: ignore[attr-defined]


def test_import_stream_has_no_deadline_even_with_a_timeout(gateway: GatewayServer, people_dir: Path):
    assert main(["--gateway", gateway.address, "--timeout", "5", "import", str(people_dir)]) == exit_codes.OK
    assert all(
        t is None or t > 86400 for t in gateway.gateway.time_remaining["BulkEnroll"]
    )  # none: sync gRPC's "forever"
    assert all(t is not None and t <= 5.5 for t in gateway.gateway.time_remaining["GetCollection"])


def test_import_again_skips_the_people_already_complete(
    gateway: GatewayServer, tmp_path: Path, samples_dir: Path, capsys
):
    # The double holds every PEOPLE person with one face: person-00 (one photo) and person-02 (two copies of one)
    # are complete, person-01 (two photos) is not.
    folders = {PEOPLE[0]: ["obama.jpg"], PEOPLE[1]: ["obama.jpg", "obama2.jpg"], PEOPLE[2]: ["obama.jpg", "copy.jpg"]}
    for person, photos in folders.items():
        (tmp_path / person).mkdir()
        for photo in photos:
            (tmp_path / person / photo).symlink_to(samples_dir / ("obama.jpg" if photo == "copy.jpg" else photo))
    assert main(["--gateway", gateway.address, "--json", "import", str(tmp_path)]) == exit_codes.OK
    assert [r.person_id for r in gateway.gateway.requests["BulkEnroll"]] == [PEOPLE[1]]  # type: ignore[attr-defined]
    summary = json.loads(capsys.readouterr().out)
    assert summary["already_complete"] == [PEOPLE[0], PEOPLE[2]] and summary["people_sent"] == 1
    assert main(["--gateway", gateway.address, "import", str(tmp_path), "--resend"]) == exit_codes.OK
    assert len(gateway.gateway.requests["BulkEnroll"]) == 4


def test_import_into_a_large_collection_asks_for_each_person_instead_of_listing_them(
    gateway: GatewayServer, people_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(importer, "_LIST_PEOPLE_UP_TO", 0)  # the double's 7 people are "many" for 2 folders
    monkeypatch.setattr(importer, "_LIST_PEOPLE_PER_FOLDER", 1)
    assert main(["--gateway", gateway.address, "import", str(people_dir)]) == exit_codes.OK
    assert sorted(r.person_id for r in gateway.gateway.requests["GetPerson"]) == ["biden", "obama"]  # type: ignore[attr-defined]
    assert not gateway.gateway.requests["ListPeople"] and len(gateway.gateway.requests["BulkEnroll"]) == 2


def test_a_broken_stream_still_ends_with_the_summary_and_the_errors_exit_code(
    gateway: GatewayServer, people_dir: Path, capsys
):
    gateway.gateway.bulk_breaks_on = "obama"
    assert main(["--gateway", gateway.address, "--json", "import", str(people_dir)]) == exit_codes.UNAVAILABLE
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["complete"] is False and summary["error"]["code"] == "UNAVAILABLE"
    assert summary["people_sent"] >= 1 and summary["people_written"] == {}  # the double holds none of them
    assert "the stream broke" in captured.err


def test_import_of_a_folder_without_photos_names_what_it_skipped(gateway: GatewayServer, tmp_path: Path, capsys):
    (tmp_path / "someone").mkdir()
    (tmp_path / "someone" / "notes.txt").write_text("no photo here")
    assert main(["--gateway", gateway.address, "import", str(tmp_path)]) == exit_codes.USAGE
    err = capsys.readouterr().err
    assert "skipped someone/notes.txt: not a photo" in err and "no photos to import" in err
    assert not gateway.gateway.requests["BulkEnroll"]


def test_import_of_a_missing_folder_is_a_usage_error(gateway: GatewayServer, tmp_path: Path, capsys):
    assert main(["--gateway", gateway.address, "import", str(tmp_path / "absent")]) == exit_codes.USAGE
