"""``facerec cluster DIR``: which files it sends and how it names them, its progress lines, and, against the real
stack, its ``--json`` document and ``--enroll`` making people that identify then finds."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import uuid
from pathlib import Path

import pytest

from facerec.cli import exit_codes
from facerec.cli.cluster import ClusterRun, StageProgress, scan
from facerec.cli.main import main
from facerec.sdk import ClusterProgress, ClusterStage
from tests.e2e.photos import faceless
from tests.fixtures.stack import ALPHA_KEY, Stack


@pytest.fixture
def photos_dir(tmp_path: Path, samples_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``photos/`` under the working directory: obama three times (one deeper down), biden, and files to skip."""
    root = tmp_path / "photos"
    (root / "trip" / "day2").mkdir(parents=True)
    shutil.copy(samples_dir / "obama.jpg", root / "trip" / "obama.jpg")
    shutil.copy(samples_dir / "obama3.jpg", root / "trip" / "day2" / "obama3.jpg")
    shutil.copy(samples_dir / "biden.jpg", root / "biden.jpg")
    (root / "notes.txt").write_text("not a photo")
    (root / "broken.jpg").write_bytes((samples_dir / "obama2.jpg").read_bytes()[:400])
    (root / "landscape.png").write_bytes(faceless())
    (root / ".hidden").mkdir()
    shutil.copy(samples_dir / "obama2.jpg", root / ".hidden" / "obama2.jpg")
    monkeypatch.chdir(tmp_path)
    return root


def test_scan_finds_photos_at_any_depth_named_as_the_folder_was_typed(photos_dir: Path) -> None:
    found = scan("./photos")

    assert found.photos == [
        "./photos/biden.jpg",
        "./photos/broken.jpg",
        "./photos/landscape.png",
        "./photos/trip/day2/obama3.jpg",
        "./photos/trip/obama.jpg",
    ]
    assert [(s.path, s.reason.split(" (")[0]) for s in found.skipped] == [
        ("./photos/notes.txt", "not a photo in an accepted format")
    ]


def test_a_photo_gone_before_it_is_sent_is_listed_not_fatal(photos_dir: Path) -> None:
    run = ClusterRun()
    sent = list(run.photos(["photos/biden.jpg", "photos/gone.jpg", "photos/trip/obama.jpg"]))

    assert [name for name, _ in sent] == run.sent == ["photos/biden.jpg", "photos/trip/obama.jpg"]
    assert [s.path for s in run.unreadable] == ["photos/gone.jpg"] and "cannot be read" in run.unreadable[0].reason


def test_progress_is_a_line_per_tenth_of_each_stage_not_one_per_event() -> None:
    stream = io.StringIO()
    progress = StageProgress(photos=1000, stream=stream)

    for done in range(0, 1001, 5):
        progress(ClusterProgress(ClusterStage.EMBEDDING, done, done, done))
    for done in range(0, 1001, 50):
        progress(ClusterProgress(ClusterStage.LINKING, done, 1000, 1000))
    progress(ClusterProgress(ClusterStage.GROUPING, 0, 1000, 1000))
    progress(ClusterProgress(ClusterStage.GROUPING, 1000, 1000, 1000))
    progress.finish()

    lines = stream.getvalue().splitlines()
    assert 3 <= len(lines) <= 3 * 11
    assert any(line.startswith("cluster: embedding") and "1000/1000 photos" in line for line in lines)
    assert any(line.startswith("cluster: linking") and "1000/1000 faces" in line for line in lines)


async def facerec(stack: Stack, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """One CLI command in a thread (the stack serves on this test's event loop)."""
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["--gateway", stack.gateway.address, "--api-key", ALPHA_KEY, *args])
    out, err = capsys.readouterr()
    return code, out, err


async def test_cluster_json_groups_the_photos_by_person_and_lists_what_it_skipped(
    stack: Stack, photos_dir: Path, capsys
) -> None:
    code, out, err = await facerec(stack, "cluster", "photos", "--json", capsys=capsys)

    assert code == exit_codes.OK, err
    document = json.loads(out)
    assert [[f["photo"] for f in c["faces"]] for c in document["clusters"]] == [
        ["photos/trip/day2/obama3.jpg", "photos/trip/obama.jpg"]
    ]
    face = document["clusters"][0]["faces"][0]
    assert document["clusters"][0]["person_id"] is None and face["face_index"] == 0
    assert set(face["box"]) == {"x", "y", "width", "height"} and face["box"]["width"] > 0
    assert [f["photo"] for f in document["noise"]] == ["photos/biden.jpg"]
    skipped = {s["photo"]: s["reason"] for s in document["skipped"]}
    assert set(skipped) == {"photos/notes.txt", "photos/broken.jpg", "photos/landscape.png"}
    assert "no face" in skipped["photos/landscape.png"]
    assert (document["photos"], document["faces"], document["threshold"], document["min_faces"]) == (5, 3, 0.5, 2)
    assert "cluster: embedding" in err, "progress goes to stderr"


async def test_cluster_prints_each_group_with_its_photos(stack: Stack, photos_dir: Path, capsys) -> None:
    code, out, _ = await facerec(stack, "cluster", "photos", "--min-faces", "1", capsys=capsys)

    assert code == exit_codes.OK
    lines = out.splitlines()
    assert lines[0].startswith("5 photo(s), 3 face(s): 2 group(s) of 1+ faces at threshold 0.5")
    assert lines[1] == "group 1 (2 faces):" and lines[2].startswith("  photos/trip/day2/obama3.jpg  face 0 at ")
    assert "group 2 (1 faces):" in lines and "skipped (3):" in lines


async def test_cluster_enroll_makes_people_that_identify_finds(
    stack: Stack, photos_dir: Path, samples_dir: Path, capsys
) -> None:
    collection = f"cluster-{uuid.uuid4().hex[:8]}"
    await facerec(stack, "collections", "create", collection, capsys=capsys)

    code, out, err = await facerec(
        stack, "cluster", "photos", "--enroll", "--collection", collection, "--prefix", "trip-", "--json",
        capsys=capsys,
    )  # fmt: skip

    assert code == exit_codes.OK, err
    document = json.loads(out)
    assert [c["person_id"] for c in document["clusters"]] == ["trip-1"]
    assert all(f["face_id"] for f in document["clusters"][0]["faces"])
    code, out, err = await facerec(
        stack, "identify", str(samples_dir / "obama2.jpg"), "--collection", collection, "--json", capsys=capsys
    )
    assert code == exit_codes.OK, err
    assert json.loads(out)["faces"][0]["match"]["person_id"] == "trip-1"


async def test_a_folder_without_photos_is_a_usage_error(stack: Stack, tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")

    code, out, err = await facerec(stack, "cluster", str(tmp_path / "empty"), "--json", capsys=capsys)

    assert code == exit_codes.USAGE and "no photos to cluster" in err
    assert json.loads(out)["error"]["code"] == "NO_PHOTOS"


def test_a_file_name_the_api_could_not_carry_is_sent_under_a_name_it_can(tmp_path: Path) -> None:
    folder = tmp_path / ("d" * 200)
    folder.mkdir()
    odd = folder / ("line\nbreak-" + "x" * 100 + ".jpg")
    odd.write_bytes(b"\xff\xd8\xff")
    run = ClusterRun()

    ((name, _),) = list(run.photos([str(odd)]))

    assert len(name) == 256 and name.isprintable() and name.endswith("x.jpg")
    assert run.sent == [str(odd)], "results name the file by its real path"
