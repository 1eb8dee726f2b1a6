"""The `facerec` command line against the real stack: import, people, collections, JSON output, exit codes."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from pathlib import Path

import pytest

from facerec.cli import exit_codes
from facerec.cli.main import main
from tests.e2e.photos import faceless
from tests.fixtures.stack import ALPHA_KEY, BETA_KEY, Stack


async def facerec(
    stack: Stack, *args: str, key: str = ALPHA_KEY, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    """Run one CLI command in a thread (the stack serves on this test's event loop)."""
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["--gateway", stack.gateway.address, "--api-key", key, *args])
    out, err = capsys.readouterr()
    return code, out, err


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
    await facerec(stack, "collections", "create", collection, capsys=capsys)
    code, out, err = await facerec(
        stack, "import", str(people_dir), "--collection", collection, "--json", capsys=capsys
    )
    assert code == exit_codes.OK, err
    summary = json.loads(out)
    assert summary["faces_enrolled"] == 3 and summary["people_enrolled"] == 2
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
