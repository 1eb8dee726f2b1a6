"""ClusterFaces on the real stack with the real labelled photos: the quality targets, bad input, and the call's
working collection gone from the registry however the call ends."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from benchmarks.cluster import TARGET_PRECISION, TARGET_RECALL, labelled, labelled_scores
from facerec.cli import exit_codes
from facerec.cli.main import main
from facerec.registry.v1 import registry_pb2, registry_pb2_grpc
from facerec.sdk import AsyncClient, ClusterProgress, ClusterStage, InvalidArgument, PermissionDenied
from facerec.v1 import facerec_pb2, facerec_pb2_grpc
from facerec_gateway.clustering import WORKING_COLLECTION_MARK
from tests.e2e.photos import faceless
from tests.fixtures.stack import ALPHA_KEY, Stack
from tests.paths import REPO_ROOT, SHARED_FACES_DIR


async def working_collections(stack: Stack) -> list[str]:
    """The clustering working collections the registry holds: the folders of its embedded store (the registry
    leaves transient collections out of ListCollections), and any it lists all the same."""
    async with grpc.aio.insecure_channel(stack.registry.address) as channel:
        response = await registry_pb2_grpc.RegistryStub(channel).ListCollections(
            registry_pb2.ListCollectionsRequest(), timeout=10
        )
    listed = [c.name for c in response.collections if WORKING_COLLECTION_MARK in c.name]
    folder = Path(stack.registry.settings.data_dir) / "collections"  # type: ignore[attr-defined]
    stored = [p.name for p in folder.iterdir() if WORKING_COLLECTION_MARK in p.name] if folder.is_dir() else []
    return sorted({*listed, *stored})


async def no_working_collection_within(stack: Stack, seconds: float) -> bool:
    ends = time.monotonic() + seconds
    while await working_collections(stack):
        if time.monotonic() > ends:
            return False
        await asyncio.sleep(0.1)
    return True


@pytest.mark.parametrize("set_name", ["dlib_johns", "deepface"])
async def test_a_labelled_set_clusters_at_the_precision_and_recall_targets(
    stack: Stack, alpha: AsyncClient, shared_faces_dir, set_name: str
) -> None:
    paths, labels = labelled(set_name)
    stages: list[ClusterStage] = []

    result = await alpha.cluster(
        [(str(p.relative_to(SHARED_FACES_DIR)), p) for p in paths],
        on_progress=lambda event: stages.append(event.stage),
    )

    precision, recall, scored = labelled_scores(result, labels)
    print(
        f"{set_name}: {len(paths)} photos, {result.faces} faces, {len(result.clusters)} groups, precision "
        f"{precision:.4f}, recall {recall:.4f} over {scored} labelled faces"
    )
    assert precision >= TARGET_PRECISION and recall >= TARGET_RECALL
    assert result.photos == len(paths) and result.threshold == pytest.approx(0.5) and result.min_faces == 2
    assert stages[0] is ClusterStage.EMBEDDING and stages[-1] is ClusterStage.GROUPING
    assert await working_collections(stack) == [], "the result comes once the working collection is deleted"


@pytest.mark.parametrize(
    ("options", "refusal", "message"),
    [
        ({"threshold": 3}, InvalidArgument, "threshold 3.0 is out of range: it must be in (0, 2]"),
        ({"min_faces": -1}, InvalidArgument, "min_faces must be at least 1 (0 means 2), got -1"),
        ({"enroll": True, "collection": "elsewhere"}, PermissionDenied, "elsewhere"),
    ],
)
async def test_options_the_gateway_refuses_end_the_call_before_any_photo_is_sent(
    stack: Stack, beta: AsyncClient, samples_dir, options, refusal, message
) -> None:
    sent: list[int] = []

    def photos() -> Iterator[Path]:
        for i in range(3):
            sent.append(i)
            yield samples_dir / "obama.jpg"

    with pytest.raises(refusal) as refused:
        await beta.cluster(photos(), **options)

    assert message in refused.value.message and sent == []
    assert await no_working_collection_within(stack, 5)


async def test_options_after_a_photo_are_refused(stack: Stack, samples_dir) -> None:
    photo = facerec_pb2.Photo(image=(samples_dir / "obama.jpg").read_bytes(), name="obama.jpg")
    messages = [
        facerec_pb2.ClusterRequest(photo=photo),
        facerec_pb2.ClusterRequest(options=facerec_pb2.ClusterOptions()),
    ]
    async with grpc.aio.insecure_channel(stack.gateway.address) as channel:
        call = facerec_pb2_grpc.FaceRecognitionStub(channel).ClusterFaces(
            iter(messages), metadata=(("authorization", f"Bearer {ALPHA_KEY}"),), timeout=60
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            async for _ in call:
                pass

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "ClusterOptions must be the first message of the stream" in (refused.value.details() or "")
    assert await no_working_collection_within(stack, 5)


async def test_an_unreadable_photo_is_skipped_and_the_others_clustered(alpha: AsyncClient, samples_dir) -> None:
    photos = [
        ("obama.jpg", samples_dir / "obama.jpg"),
        ("truncated.jpg", (samples_dir / "obama2.jpg").read_bytes()[:400]),
        ("landscape.png", faceless()),
        ("obama3.jpg", samples_dir / "obama3.jpg"),
    ]

    result = await alpha.cluster(photos)

    assert [[f.photo_name for f in c.faces] for c in result.clusters] == [["obama.jpg", "obama3.jpg"]]
    skipped = {s.photo_name: [r.reason.value for r in s.rejections] for s in result.skipped}
    assert skipped == {"truncated.jpg": ["INVALID_IMAGE"], "landscape.png": ["NO_FACE"]}


async def test_a_cancelled_call_leaves_no_working_collection(stack: Stack, alpha: AsyncClient, samples_dir) -> None:
    photos = [samples_dir / "obama.jpg"] * 40
    progressed = asyncio.Event()

    def seen(event: ClusterProgress) -> None:
        if event.done > 0:
            progressed.set()

    call = asyncio.ensure_future(alpha.cluster(photos, on_progress=seen))
    await asyncio.wait_for(progressed.wait(), timeout=60)
    assert await working_collections(stack), "the call is working in its working collection"
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call

    assert await no_working_collection_within(stack, 10)


def readme_block(language: str) -> list[str]:
    """The lines of the first ``language`` block of the README's Clustering section."""
    section = (REPO_ROOT / "README.md").read_text().split("### Clustering", 1)[1]
    block = re.search(rf"```{language}\n(.*?)```", section, re.S)
    assert block is not None, f"no {language} block in the README's Clustering section"
    return block.group(1).splitlines()


async def test_the_readme_commands_run_as_written(
    stack: Stack, samples_dir, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO_ROOT)
    outputs: dict[str, str] = {}
    for line in readme_block("sh"):
        command = line.split("#", 1)[0].strip()
        argv = shlex.split(command)
        assert argv[0] == ".venv/bin/facerec", command
        capsys.readouterr()
        code = await asyncio.to_thread(main, ["--gateway", stack.gateway.address, "--api-key", ALPHA_KEY, *argv[1:]])
        out, err = capsys.readouterr()
        assert code == exit_codes.OK, f"{command!r} exited {code}: {err}"
        outputs[command] = out

    listed = outputs[".venv/bin/facerec cluster .cache/samples"].splitlines()
    assert listed[0].startswith("7 photo(s), 7 face(s): 1 group(s)") and "group 1 (6 faces):" in listed
    document = json.loads(outputs[".venv/bin/facerec cluster .cache/samples --json --min-faces 1"])
    assert [len(c["faces"]) for c in document["clusters"]] == [6, 1]
    assert document["clusters"][1]["faces"][0]["photo"] == ".cache/samples/biden.jpg"
    identified = outputs[".venv/bin/facerec identify .cache/samples/obama2.jpg --collection sample-people"]
    assert "sample-1" in identified


async def test_the_readme_sdk_example_runs_as_written(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.setenv("FACEREC_GATEWAY", stack.gateway.address)
    monkeypatch.setenv("FACEREC_API_KEY", ALPHA_KEY)
    capsys.readouterr()

    await asyncio.to_thread(exec, "\n".join(readme_block("python")), {})

    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "EMBEDDING 0 0" and "LINKING 3 3" in lines
    assert lines[-1] == "[['obama.jpg', 'obama3.jpg']] 1"
