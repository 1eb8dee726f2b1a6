"""Corrections, the audit record and retention on the real stack (real Triton, model, embedder, registry on Qdrant
Edge, gateway) with the labelled photos of ``$FACEREC_FACES_DIR/deepface``:

- a person enrolled from several photos lists each face with its photo, time and quality; a face moved to another
  person identifies as that person from then on; a deleted face is gone and the person keeps the others;
- the audit record lists every enrollment, move, deletion, erasure and collection change with its request id and
  the caller's key fingerprint, never a descriptor, only to its own tenant, and it survives a restart of the
  registry that writes it;
- a collection with a 2 s retention loses its person by itself, and the purge is in the record;
- the README's commands for these run as written.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from facerec.api_keys import key_fingerprint
from facerec.cli import exit_codes
from facerec.cli.main import main
from facerec.runtime.context import REQUEST_ID_HEADER
from facerec.runtime.net import free_port
from facerec.runtime.server import ServiceRunner
from facerec.sdk import AsyncClient, AuditAction, AuditEvent, FaceSelection, NotFound, PermissionDenied
from facerec.v1 import facerec_pb2, facerec_pb2_grpc
from facerec_gateway.app import GatewayApp
from facerec_registry.app import RegistryApp
from facerec_registry.settings import RegistrySettings
from tests.fixtures.stack import ALPHA_KEY, QUICK, Stack, gateway_settings, start, wait_serving
from tests.paths import REPO_ROOT

ALPHA = key_fingerprint(ALPHA_KEY)
# deepface's identities.csv: img1, img2, img4 show person01; img12, img3 person02.
PERSON_1 = ("img1.jpg", "img2.jpg", "img4.jpg")
PERSON_2 = ("img12.jpg", "img3.jpg")
# A run of 8 or more numbers with decimals, the way a descriptor would read in any text form.
DESCRIPTOR_LIKE = re.compile(r"(?:-?\d+\.\d+[,;\s\]]+){8,}")


@pytest.fixture(scope="module")
def deepface(shared_faces_dir: Path) -> Path:
    folder = shared_faces_dir / "deepface"
    if not all((folder / name).is_file() for name in PERSON_1 + PERSON_2):
        pytest.skip(f"{folder} lacks the photos {PERSON_1 + PERSON_2}")
    return folder


def new_collection() -> str:
    return f"audit-{uuid.uuid4().hex[:8]}"


def assert_no_biometric_data(events: list[AuditEvent]) -> None:
    """Only ids, counts, times and short words: nothing that could be a descriptor or an image."""
    for event in events:
        text = json.dumps(
            [event.collection, event.person_id, event.face_id, event.request_id, event.actor, event.detail]
        )
        assert not DESCRIPTOR_LIKE.search(text), f"descriptor-like content in {event}"
        assert len(event.detail) <= 256, f"an event's detail is words, not data: {event.detail[:80]!r}..."


async def all_events(client: AsyncClient, collection: str = "", since: datetime | None = None) -> list[AuditEvent]:
    return [e async for e in client.iter_audit_events(since=since, collection=collection)]


@pytest.fixture
async def enrolled(alpha: AsyncClient, deepface: Path) -> str:
    """A collection with p1 (three photos of deepface's person01) and p2 (two of person02)."""
    collection = new_collection()
    await alpha.create_collection(collection)
    for person, photos in (("p1", PERSON_1), ("p2", PERSON_2)):
        result = await alpha.enroll(
            person, [deepface / p for p in photos], collection=collection, face_selection=FaceSelection.LARGEST
        )
        assert result.faces_enrolled == len(photos)
    return collection


# ------------------------------------------------------------------------------------------ faces of a person


async def test_a_persons_faces_are_listed_with_photo_time_and_quality(alpha: AsyncClient, enrolled: str) -> None:
    faces = [f async for f in alpha.iter_faces("p1", collection=enrolled)]

    assert sorted(f.photo_name for f in faces) == sorted(PERSON_1)
    assert [f.face_id for f in faces] == sorted(f.face_id for f in faces), "ordered by face id"
    now = datetime.now(UTC)
    for face in faces:
        assert face.person_id == "p1"
        assert face.enrolled_at is not None and now - timedelta(minutes=5) < face.enrolled_at <= now
        assert face.quality is not None and face.quality.face_size_px >= 20 and face.quality.frontality > 0.3
        assert face.box is not None and face.box.width > 20 and face.box.height > 20
    with pytest.raises(NotFound):
        await alpha.list_faces("nobody", collection=enrolled)


async def test_a_moved_face_identifies_as_its_new_person_and_a_deleted_one_is_gone(
    alpha: AsyncClient, enrolled: str, deepface: Path
) -> None:
    moved_photo, deleted_photo = deepface / PERSON_1[2], PERSON_1[1]
    before = await alpha.identify(moved_photo, collection=enrolled)
    assert before.faces[0].match is not None and before.faces[0].match.person_id == "p1"
    faces = {f.photo_name: f for f in (await alpha.list_faces("p1", collection=enrolled)).items}

    moved = await alpha.move_face(faces[moved_photo.name].face_id, "p2", collection=enrolled)

    assert (moved.from_person_id, moved.face.person_id, moved.face.photo_name) == ("p1", "p2", moved_photo.name)
    after = await alpha.identify(moved_photo, collection=enrolled)
    assert after.faces[0].match is not None and after.faces[0].match.person_id == "p2"
    assert after.faces[0].match.distance < 0.01, "the photo's own face, now p2's"
    assert sorted(f.photo_name for f in (await alpha.list_faces("p2", collection=enrolled)).items) == sorted(
        [*PERSON_2, moved_photo.name]
    )

    deleted = await alpha.delete_face(faces[deleted_photo].face_id, collection=enrolled)

    assert (deleted.person_id, deleted.faces_left) == ("p1", 1)
    assert [f.photo_name for f in (await alpha.list_faces("p1", collection=enrolled)).items] == [PERSON_1[0]]
    assert (await alpha.get_collection(enrolled)).face_count == 4
    with pytest.raises(NotFound):
        await alpha.delete_face(faces[deleted_photo].face_id, collection=enrolled)


async def test_another_tenant_cannot_list_move_or_delete_the_faces(
    alpha: AsyncClient, beta: AsyncClient, enrolled: str
) -> None:
    face = (await alpha.list_faces("p1", collection=enrolled)).items[0]
    with pytest.raises(PermissionDenied):
        await beta.list_faces("p1", collection=enrolled)
    with pytest.raises(PermissionDenied):
        await beta.move_face(face.face_id, "p2", collection=enrolled)
    with pytest.raises(PermissionDenied):
        await beta.delete_face(face.face_id, collection=enrolled)
    assert len((await alpha.list_faces("p1", collection=enrolled)).items) == 3


# ------------------------------------------------------------------------------------------ the audit record


async def test_every_change_is_in_the_record_with_its_request_id_and_key_fingerprint(
    stack: Stack, alpha: AsyncClient, beta: AsyncClient, enrolled: str
) -> None:
    faces = {f.photo_name: f.face_id for f in (await alpha.list_faces("p1", collection=enrolled)).items}
    await alpha.move_face(faces[PERSON_1[2]], "p2", collection=enrolled)
    await alpha.delete_face(faces[PERSON_1[1]], collection=enrolled)
    await alpha.update_person("p1", collection=enrolled, display_name="Person One")
    async with grpc.aio.insecure_channel(stack.gateway.address) as channel:
        metadata = (("authorization", f"Bearer {ALPHA_KEY}"), (REQUEST_ID_HEADER, "e2e-erase-p2"))
        request = facerec_pb2.DeletePersonRequest(collection=enrolled, person_id="p2")
        erased = await facerec_pb2_grpc.FaceRecognitionStub(channel).DeletePerson(
            request, metadata=metadata, timeout=30
        )
    assert erased.faces_deleted == 3
    await alpha.update_collection(enrolled, min_margin=0.05)

    events = await all_events(alpha, enrolled)

    actions = [e.action for e in events]
    assert actions[0] == AuditAction.COLLECTION_CREATE and actions[-1] == AuditAction.COLLECTION_UPDATE
    enrolls = [e for e in events if e.action == AuditAction.ENROLL]
    assert {e.person_id for e in enrolls} == {"p1", "p2"}
    assert sum(e.faces for e in enrolls if e.person_id == "p1") == 3
    assert sum(e.faces for e in enrolls if e.person_id == "p2") == 2
    (move,) = [e for e in events if e.action == AuditAction.FACE_MOVE]
    assert move.face_id == faces[PERSON_1[2]] and move.faces == 1 and "p2" in (move.person_id + move.detail)
    (deletion,) = [e for e in events if e.action == AuditAction.FACE_DELETE]
    assert (deletion.face_id, deletion.person_id, deletion.faces) == (faces[PERSON_1[1]], "p1", 1)
    (erasure,) = [e for e in events if e.action == AuditAction.PERSON_DELETE]
    assert (erasure.person_id, erasure.faces, erasure.request_id) == ("p2", 3, "e2e-erase-p2")
    assert AuditAction.PERSON_UPDATE in actions
    assert all(e.collection == enrolled for e in events)
    assert all(e.actor == ALPHA for e in events), {e.actor for e in events}
    assert all(e.request_id for e in events), "every change names the call that made it"
    assert len({move.request_id, deletion.request_id, erasure.request_id}) == 3, "each call its own request id"
    assert [e.sequence for e in events] == sorted(e.sequence for e in events)
    assert all(e.time is not None for e in events)
    assert [e.time for e in events] == sorted(e.time for e in events if e.time is not None)
    assert_no_biometric_data(events)

    since = await all_events(alpha, enrolled, since=events[-2].time)
    assert [e.sequence for e in since] == [e.sequence for e in events if e.time >= events[-2].time]  # type: ignore[operator]
    assert enrolled not in {e.collection for e in await all_events(beta)}, "only the tenant's own record"
    with pytest.raises(PermissionDenied):
        await beta.list_audit_events(collection=enrolled)


async def test_a_deleted_collections_history_stays_readable(alpha: AsyncClient, enrolled: str) -> None:
    assert await alpha.delete_collection(enrolled) == 5

    events = await all_events(alpha, enrolled)

    assert events[-1].action == AuditAction.COLLECTION_DELETE and events[-1].faces == 5
    assert events[-1].collection == enrolled and events[-1].actor == ALPHA


# ------------------------------------------------------------------------------------------ the CLI and the README


async def facerec(address: str, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """One CLI command in a thread (the stack serves on this test's event loop)."""
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["--gateway", address, "--api-key", ALPHA_KEY, *args])
    out, err = capsys.readouterr()
    return code, out, err


async def test_the_cli_lists_moves_and_deletes_faces_and_reads_the_record(
    stack: Stack, enrolled: str, capsys: pytest.CaptureFixture[str]
) -> None:
    address = stack.gateway.address
    code, out, err = await facerec(address, "faces", "list", "p1", "--collection", enrolled, "--json", capsys=capsys)
    assert code == exit_codes.OK, err
    listed = json.loads(out)["faces"]
    assert sorted(f["photo_name"] for f in listed) == sorted(PERSON_1)
    assert all(len(f["box"]) == 4 and f["quality"]["face_size_px"] >= 20 for f in listed)
    face = next(f["face_id"] for f in listed if f["photo_name"] == PERSON_1[2])

    code, out, err = await facerec(
        address, "faces", "move", face, "--to", "p2", "--collection", enrolled, capsys=capsys
    )
    assert code == exit_codes.OK and "from p1 to p2" in out, err
    code, out, err = await facerec(address, "faces", "delete", face, "--collection", enrolled, capsys=capsys)
    assert code == exit_codes.OK and "of p2" in out and "2 face(s) left" in out, err
    code, _, err = await facerec(address, "faces", "delete", face, "--collection", enrolled, capsys=capsys)
    assert code == exit_codes.NOT_FOUND and face in err

    code, out, err = await facerec(address, "audit", "--since", "1h", "--collection", enrolled, "--json", capsys=capsys)
    assert code == exit_codes.OK, err
    actions = [e["action"] for e in json.loads(out)["events"]]
    assert actions[0] == "AUDIT_COLLECTION_CREATE" and actions[-2:] == ["AUDIT_FACE_MOVE", "AUDIT_FACE_DELETE"]
    code, out, _ = await facerec(address, "audit", "--collection", enrolled, capsys=capsys)
    assert "face_move" in out and ALPHA in out
    code, out, _ = await facerec(address, "audit", "--since", "2999-01-01", "--collection", enrolled, capsys=capsys)
    assert code == exit_codes.OK and out.strip().endswith("0 event(s)")


README_HEADING = "### Faces of a person, audit and retention"


def readme_block(language: str) -> str:
    """The first ``language`` block of the README's section on faces, audit and retention."""
    section = (REPO_ROOT / "README.md").read_text().split(README_HEADING, 1)[1]
    block = re.search(rf"```{language}\n(.*?)```", section, re.S)
    assert block is not None, f"no {language} block after {README_HEADING!r}"
    return block.group(1)


async def test_the_readme_commands_run_as_written(
    stack: Stack, alpha: AsyncClient, samples_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [c for line in readme_block("sh").splitlines() if (c := line.split("#", 1)[0].strip())]
    assert lines and all(line.startswith(".venv/bin/facerec ") for line in lines)
    with contextlib.suppress(NotFound):
        await alpha.delete_collection("photos-2024")  # the README's own collection, fresh for this run
    for line in lines:
        arguments = shlex.split(line)[1:]
        arguments = [str(REPO_ROOT / a) if a.startswith(".cache/") else a for a in arguments]
        code, _, err = await facerec(stack.gateway.address, *arguments, capsys=capsys)
        assert code == exit_codes.OK, f"{line!r} exited {code}: {err}"
    collection = await alpha.get_collection("photos-2024")
    assert collection.retention_seconds == 0, "the README ends by removing the retention"
    events = await all_events(alpha, "photos-2024")
    assert {AuditAction.COLLECTION_CREATE, AuditAction.ENROLL, AuditAction.COLLECTION_UPDATE} <= {
        e.action for e in events
    }


# ------------------------------------------------------------------------------------------ retention, restarts


@dataclass
class OwnStack:
    """A registry of its own (a retention sweep every 0.2 s, on a fixed port so it can be restarted in place) and a
    gateway over it, sharing the session's embedder."""

    data_dir: Path
    registry_port: int
    registry: ServiceRunner
    gateway: ServiceRunner
    client: AsyncClient

    def registry_settings(self) -> RegistrySettings:
        return registry_settings(self.data_dir, self.registry_port)


def registry_settings(data_dir: Path, port: int) -> RegistrySettings:
    if "retention_interval_s" not in RegistrySettings.model_fields:
        pytest.skip("the registry has no FACEREC_REGISTRY_RETENTION_INTERVAL_S setting yet")
    values: dict[str, object] = {**QUICK, "port": port, "data_dir": data_dir, "retention_interval_s": 0.2}
    return RegistrySettings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def own_stack(stack: Stack, tmp_path: Path) -> AsyncIterator[OwnStack]:
    port = free_port()
    registry = await start(RegistryApp(settings := registry_settings(tmp_path / "registry", port)), settings)
    await wait_serving(registry.address)
    gateway_config = gateway_settings(stack.embedder.address, registry.address)
    gateway = await start(GatewayApp(gateway_config), gateway_config)
    await wait_serving(gateway.address)
    async with AsyncClient(gateway.address, ALPHA_KEY, timeout=60) as client:
        own = OwnStack(tmp_path / "registry", port, registry, gateway, client)
        yield own
    await gateway.stop(0)
    await own.registry.stop(0)


async def test_a_person_past_the_retention_period_is_purged_by_itself_and_the_purge_is_audited(
    own_stack: OwnStack, deepface: Path
) -> None:
    client = own_stack.client
    created = await client.create_collection("short-lived", retention_seconds=2)
    assert created.retention_seconds == 2 and (await client.get_collection("short-lived")).retention_seconds == 2
    await client.enroll("p1", [deepface / p for p in PERSON_1], collection="short-lived", face_selection="largest")
    enrolled_at = time.monotonic()

    while True:
        try:
            await client.get_person("p1", collection="short-lived")
        except NotFound:
            break
        assert time.monotonic() - enrolled_at < 15, "the purge did not happen within 15 s of a 2 s retention"
        await asyncio.sleep(0.2)
    purged_after = time.monotonic() - enrolled_at

    assert purged_after >= 1.5, f"purged after {purged_after:.1f} s, before its retention ran out"
    assert (await client.get_collection("short-lived")).face_count == 0
    events = await all_events(client, "short-lived")
    (purge,) = [e for e in events if e.action == AuditAction.RETENTION_PURGE]
    assert (purge.person_id, purge.faces, purge.actor, purge.request_id) == ("p1", 3, "registry:retention", "")
    assert_no_biometric_data(events)

    kept = await client.update_collection("short-lived", retention_seconds=0)
    assert kept.retention_seconds == 0
    await client.enroll("p1", deepface / PERSON_1[0], collection="short-lived")
    await asyncio.sleep(2.5)
    assert (await client.get_person("p1", collection="short-lived")).face_count == 1, "no retention, no purge"


async def test_the_record_survives_a_restart_of_the_registry(own_stack: OwnStack, deepface: Path) -> None:
    client = own_stack.client
    await client.create_collection("kept")
    await client.enroll("p2", [deepface / p for p in PERSON_2], collection="kept", face_selection="largest")
    await client.delete_person("p2", collection="kept")
    before = await all_events(client, "kept")
    assert [e.action for e in before] == [AuditAction.COLLECTION_CREATE, AuditAction.ENROLL, AuditAction.PERSON_DELETE]

    await own_stack.registry.stop(0)
    settings = own_stack.registry_settings()
    own_stack.registry = await start(RegistryApp(settings), settings)
    await wait_serving(own_stack.registry.address)
    await wait_serving(own_stack.gateway.address)

    assert await all_events(client, "kept") == before
    await client.create_collection("kept-after")
    after = await all_events(client)
    assert after[:-1] == before, "the record goes on where it was"
    assert after[-1].action == AuditAction.COLLECTION_CREATE and after[-1].sequence > before[-1].sequence


async def test_the_readme_sdk_example_runs_as_written(stack: Stack, samples_dir: Path) -> None:
    env = {**os.environ, "FACEREC_GATEWAY": stack.gateway.address, "FACEREC_API_KEY": ALPHA_KEY}
    command = [sys.executable, "-c", readme_block("python")]
    result = await asyncio.to_thread(
        subprocess.run, command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stderr
    created, enrolled, moved = result.stdout.splitlines()
    assert created.startswith("COLLECTION_CREATE") and "retention" in created
    assert enrolled.startswith(f"ENROLL obama 2 {ALPHA}")
    assert moved.startswith(f"FACE_MOVE obama 1 {ALPHA}") and "'biden'" in moved, "from obama, to biden"
