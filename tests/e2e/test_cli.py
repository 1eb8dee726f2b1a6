"""The `facerec` command line against the real stack: import, people, collections, JSON output, exit codes."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import sys
import uuid
from pathlib import Path

import pytest

from facerec.cli import exit_codes
from facerec.cli.main import main
from facerec.runtime.server import ServiceRunner
from facerec_gateway.app import GatewayApp
from tests.e2e.photos import faceless
from tests.fixtures.stack import ALPHA_KEY, BETA_KEY, Stack, gateway_settings, wait_serving


async def facerec(
    stack: Stack | str, *args: str, key: str = ALPHA_KEY, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    """Run one CLI command in a thread (the stack serves on this test's event loop), against the stack's gateway
    or the one at the address given."""
    capsys.readouterr()
    address = stack if isinstance(stack, str) else stack.gateway.address
    code = await asyncio.to_thread(main, ["--gateway", address, "--api-key", key, *args])
    out, err = capsys.readouterr()
    return code, out, err


async def people_in(stack: Stack, collection: str, capsys: pytest.CaptureFixture[str]) -> dict[str, int]:
    code, out, err = await facerec(stack, "people", "list", "--collection", collection, "--json", capsys=capsys)
    assert code == exit_codes.OK, err
    return {p["person_id"]: p["face_count"] for p in json.loads(out)["people"]}


@pytest.fixture
def people_dir(tmp_path: Path, samples_dir: Path) -> Path:
    """DIR/<person>/ folders as `facerec import` expects them, one photo without a face among them."""
    for person, photos in {"obama": ["obama.jpg", "obama3.jpg"], "biden": ["biden.jpg"]}.items():
        folder = tmp_path / "people" / person
        folder.mkdir(parents=True)
        for photo in photos:
            shutil.copy(samples_dir / photo, folder / photo)
    (tmp_path / "people" / "biden" / "landscape.png").write_bytes(faceless())
    return tmp_path / "people"


async def test_import_enrolls_each_folder_as_a_person_and_summarises_rejections(stack, people_dir, capsys) -> None:
    collection = f"cli-{uuid.uuid4().hex[:8]}"
    code, _, err = await facerec(stack, "import", str(people_dir), "--collection", collection, capsys=capsys)
    assert code == exit_codes.NOT_FOUND and "does not exist" in err, "a missing collection stops the import"
    assert "import [" not in err, "before any photo is sent"
    code, _, _ = await facerec(stack, "collections", "show", collection, capsys=capsys)
    assert code == exit_codes.NOT_FOUND, "and nothing was created"
    await facerec(stack, "collections", "create", collection, capsys=capsys)
    code, out, err = await facerec(
        stack, "import", str(people_dir), "--collection", collection, "--json", capsys=capsys
    )
    assert code == exit_codes.OK, err
    summary = json.loads(out)
    assert summary["faces_enrolled"] == 3 and summary["people_enrolled"] == 2, json.dumps(summary)
    assert [r["person_id"] for r in summary["rejected"]] == ["biden"]
    code, out, _ = await facerec(stack, "people", "list", "--collection", collection, "--json", capsys=capsys)
    assert sorted(p["person_id"] for p in json.loads(out)["people"]) == ["biden", "obama"]
    code, _, _ = await facerec(stack, "import", str(people_dir), "--collection", collection, "--strict", capsys=capsys)
    assert code == exit_codes.REJECTED


async def test_identify_json_has_the_documented_shape(stack, samples_dir, capsys) -> None:
    collection = f"cli-{uuid.uuid4().hex[:8]}"
    await facerec(stack, "collections", "create", collection, capsys=capsys)
    code, _, err = await facerec(
        stack, "enroll", "obama", str(samples_dir / "obama.jpg"), "--collection", collection, capsys=capsys
    )
    assert code == exit_codes.OK, err
    code, out, _ = await facerec(
        stack, "identify", str(samples_dir / "obama2.jpg"), "--collection", collection, "--json", capsys=capsys
    )
    document = json.loads(out)
    face = document["faces"][0]
    assert len(face["box"]) == 4 and all(isinstance(v, int) for v in face["box"])
    assert face["match"]["person_id"] == "obama" and 0 < face["match"]["distance"] < 0.6
    assert face["candidates"][0]["person_id"] == "obama"


async def test_collections_are_created_listed_shown_and_deleted(stack, capsys) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    assert (await facerec(stack, "collections", "create", name, "--threshold", "0.5", capsys=capsys))[0] == 0
    code, out, _ = await facerec(stack, "collections", "show", name, "--json", capsys=capsys)
    assert json.loads(out)["threshold"] == 0.5
    code, out, _ = await facerec(stack, "collections", "list", "--json", capsys=capsys)
    assert name in [c["name"] for c in json.loads(out)["collections"]]
    assert (await facerec(stack, "collections", "delete", name, capsys=capsys))[0] == 0
    code, _, err = await facerec(stack, "collections", "show", name, capsys=capsys)
    assert code == exit_codes.NOT_FOUND and "does not exist" in err


async def test_exit_codes_follow_the_status(stack, tmp_path, capsys) -> None:
    code, _, _ = await facerec(stack, "enroll", "nobody", str(tmp_path / "missing.jpg"), capsys=capsys)
    assert code == exit_codes.USAGE
    landscape = tmp_path / "landscape.png"
    landscape.write_bytes(faceless())
    code, _, err = await facerec(stack, "enroll", "nobody", str(landscape), capsys=capsys)
    assert code == exit_codes.REJECTED and "no face" in err
    code, _, _ = await facerec(stack, "people", "show", "nobody-at-all", capsys=capsys)
    assert code == exit_codes.NOT_FOUND
    code, _, _ = await facerec(stack, "people", "list", "--collection", "not-on-the-list", key=BETA_KEY, capsys=capsys)
    assert code == exit_codes.AUTH
    code, _, _ = await facerec(stack, "people", "list", key="wrong-key", capsys=capsys)
    assert code == exit_codes.AUTH


async def test_import_with_create_makes_the_collection_and_shows_rate_and_eta(stack, people_dir, capsys) -> None:
    collection = f"cli-{uuid.uuid4().hex[:8]}"
    code, out, err = await facerec(
        stack, "import", str(people_dir), "--collection", collection, "--create", capsys=capsys
    )
    assert code == exit_codes.OK, err
    assert f"import into {collection} (created): 2 people, 4 photo(s) sent" in out
    assert "photos/s, ETA" in err
    assert await people_in(stack, collection, capsys) == {"biden": 1, "obama": 2}


async def test_import_again_sends_only_the_people_not_yet_complete(stack, people_dir, samples_dir, capsys) -> None:
    collection = f"cli-{uuid.uuid4().hex[:8]}"
    argv = ["import", str(people_dir), "--collection", collection, "--create", "--json"]
    assert (await facerec(stack, *argv, capsys=capsys))[0] == exit_codes.OK
    (people_dir / "obama2").mkdir()
    shutil.copy(samples_dir / "obama2.jpg", people_dir / "obama2" / "obama2.jpg")
    code, out, err = await facerec(stack, *argv, capsys=capsys)
    assert code == exit_codes.OK, err
    summary = json.loads(out)
    # obama's two photos are both enrolled: complete. biden's faceless photo keeps biden incomplete: sent again.
    assert summary["already_complete"] == ["obama"] and summary["people_sent"] == 2
    assert summary["faces_enrolled"] == 2
    assert await people_in(stack, collection, capsys) == {"biden": 1, "obama": 2, "obama2": 1}, "nothing twice"


async def test_import_recognises_extensionless_gif_photos_by_their_content(stack, shared_faces_dir, tmp_path, capsys):
    """Yale faces: greyscale GIFs named ``subject01.happy``."""
    for subject in ("subject01", "subject02"):
        (tmp_path / subject).mkdir()
        for expression in ("happy", "normal", "sleepy"):
            source = shared_faces_dir / "yalefaces" / subject / f"{subject}.{expression}"
            (tmp_path / subject / source.name).symlink_to(source)
    collection = f"cli-{uuid.uuid4().hex[:8]}"
    code, out, err = await facerec(
        stack, "import", str(tmp_path), "--collection", collection, "--create", "--json", capsys=capsys
    )
    assert code == exit_codes.OK, err
    summary = json.loads(out)
    assert summary["skipped_files"] == [] and (summary["people_sent"], summary["photos_sent"]) == (2, 6)
    assert [r for r in summary["rejected"] if r["photo"]["rejections"][0]["reason"] == "INVALID_IMAGE"] == []
    assert summary["people_enrolled"] == 2


async def test_a_broken_import_stream_ends_with_what_was_written(stack, people_dir, capsys) -> None:
    # A gateway taking messages of at most 1 MiB: the last person's request (2 MiB) breaks their stream.
    settings = gateway_settings(stack.embedder.address, stack.registry.address, max_message_bytes=1024 * 1024)
    gateway = ServiceRunner(GatewayApp(settings), settings)
    await gateway.start()
    await wait_serving(gateway.address)
    (people_dir / "zz-large").mkdir()
    (people_dir / "zz-large" / "huge.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(2 * 1024 * 1024))
    collection = f"cli-{uuid.uuid4().hex[:8]}"
    try:
        code, out, err = await facerec(
            gateway.address, "import", str(people_dir), "--collection", collection, "--create", "--json", capsys=capsys
        )
    finally:
        await gateway.stop(0)
    assert code == exit_codes.ERROR, err
    summary = json.loads(out)
    assert summary["complete"] is False and summary["error"]["code"] == "RESOURCE_EXHAUSTED"
    assert summary["people_sent"] == 3 and summary["unconfirmed"] == ["biden", "obama", "zz-large"]
    assert summary["people_written"] == await people_in(stack, collection, capsys), "what the collection holds"
    assert "RESOURCE_EXHAUSTED" in err


async def test_copies_of_a_photo_in_a_folder_are_one_face_and_do_not_keep_the_person_incomplete(
    stack, samples_dir, tmp_path, capsys
) -> None:
    # Yale faces holds 9 byte-identical pairs: the copies must neither refuse the person nor be sent forever.
    (tmp_path / "obama").mkdir()
    for name in ("obama.jpg", "obama-copy.jpg"):
        shutil.copy(samples_dir / "obama.jpg", tmp_path / "obama" / name)
    shutil.copy(samples_dir / "obama2.jpg", tmp_path / "obama" / "obama2.jpg")
    collection = f"cli-{uuid.uuid4().hex[:8]}"
    argv = ["import", str(tmp_path), "--collection", collection, "--create", "--json"]
    code, out, err = await facerec(stack, *argv, capsys=capsys)
    assert code == exit_codes.OK, err
    summary = json.loads(out)
    assert (summary["faces_enrolled"], summary["rejected"]) == (2, [])
    assert await people_in(stack, collection, capsys) == {"obama": 2}
    code, out, _ = await facerec(stack, *argv, capsys=capsys)
    assert json.loads(out)["already_complete"] == ["obama"] and json.loads(out)["people_sent"] == 0


async def test_ctrl_c_during_an_import_prints_what_was_done_and_a_rerun_finishes(
    stack, shared_faces_dir: Path, tmp_path: Path, capsys
) -> None:
    yale = shared_faces_dir / "yalefaces"
    if not yale.is_dir():
        pytest.skip(f"{yale} is missing")
    collection = f"cli-{uuid.uuid4().hex[:8]}"
    command = [
        str(Path(sys.executable).parent / "facerec"),
        *("--gateway", stack.gateway.address, "--api-key", ALPHA_KEY),
        *("import", str(yale), "--collection", collection, "--create", "--json"),
    ]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None and process.stdout is not None
    # The progress line is printed once the gateway has answered for some photos: interrupt then.
    while b"import [" not in (line := await asyncio.wait_for(process.stderr.readline(), 120)):
        assert line, "the import ended before it showed any progress"
    process.send_signal(signal.SIGINT)
    interrupted_out, _ = await asyncio.wait_for(process.communicate(), 60)

    assert process.returncode == exit_codes.INTERRUPTED
    summary = json.loads(interrupted_out)
    assert summary["interrupted"] is True and summary["complete"] is False
    code, out, err = await facerec(stack, "import", str(yale), "--collection", collection, "--json", capsys=capsys)
    assert code == exit_codes.OK, err
    assert json.loads(out)["already_complete"], "people finished before the interrupt are not sent again"
    enrolled = await people_in(stack, collection, capsys)
    assert len(enrolled) == 15
    assert sum(enrolled.values()) == 155  # 164 photos, 9 of them byte-identical copies stored once
