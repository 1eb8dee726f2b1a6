"""The registry as its own process: acknowledged upserts survive `kill -9`; a second registry cannot open the
same data folder; through gRPC, bad input gets a clear status and writes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from facerec.registry.v1 import registry_pb2
from tests.registry_service.process import RegistryProcess, serving

DIM = 128


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "registry"


def faces(start: int, count: int) -> list[registry_pb2.FaceRecord]:
    rng = np.random.default_rng(start)
    return [
        registry_pb2.FaceRecord(
            face_id=f"face-{i}", person_id=f"person-{i // 2}", embedding=rng.normal(0, 0.1, DIM).tolist(), model_id="m"
        )
        for i in range(start, start + count)
    ]


async def test_acknowledged_upserts_survive_kill_9(data_dir: Path) -> None:
    first = RegistryProcess(data_dir)
    try:
        stub = await serving(first)
        await stub.CreateCollection(
            registry_pb2.CreateCollectionRequest(name="c", model_id="m", dimension=DIM, default_threshold=0.6),
            timeout=10,
        )
        acknowledged: list[registry_pb2.FaceRecord] = []
        for batch in range(10):
            records = faces(batch * 50, 50)
            await stub.UpsertFaces(registry_pb2.UpsertFacesRequest(collection="c", faces=records), timeout=10)
            acknowledged.extend(records)
        first.kill()  # no flush, no graceful shutdown
    finally:
        first.stop()

    second = RegistryProcess(data_dir)
    try:
        stub = await serving(second)
        count = await stub.Count(registry_pb2.CountRequest(collection="c"), timeout=10)
        assert count.faces == len(acknowledged) == 500
        probe = acknowledged[-1]
        found = await stub.Search(
            registry_pb2.SearchRequest(
                collection="c", queries=[registry_pb2.QueryVector(values=probe.embedding)], top_k=1, all_faces=True
            ),
            timeout=10,
        )
        assert found.results[0].matches[0].face_id == probe.face_id
        assert found.results[0].matches[0].distance == pytest.approx(0.0, abs=1e-4)
    finally:
        second.stop()


async def test_counts_and_listing_after_kill_9_match_the_acknowledged_writes(data_dir: Path) -> None:
    first = RegistryProcess(data_dir)
    try:
        stub = await serving(first)
        await stub.CreateCollection(
            registry_pb2.CreateCollectionRequest(name="c", model_id="m", dimension=DIM, default_threshold=0.6),
            timeout=10,
        )
        await stub.UpsertFaces(registry_pb2.UpsertFacesRequest(collection="c", faces=faces(0, 200)), timeout=10)
        # Writes that change who has faces: a face moved to another person, one deleted, one person erased.
        moved = faces(10, 1)[0]
        moved.person_id = "person-0"
        await stub.UpsertFaces(registry_pb2.UpsertFacesRequest(collection="c", faces=[moved]), timeout=10)
        await stub.DeleteFace(registry_pb2.DeleteFaceRequest(collection="c", face_id="face-11"), timeout=10)
        await stub.DeletePerson(registry_pb2.DeletePersonRequest(collection="c", person_id="person-7"), timeout=10)
        before = await stub.GetCollection(registry_pb2.GetCollectionRequest(name="c"), timeout=10)
        first.kill()  # no flush, no graceful shutdown
    finally:
        first.stop()

    second = RegistryProcess(data_dir)
    try:
        stub = await serving(second)
        after = await stub.GetCollection(registry_pb2.GetCollectionRequest(name="c"), timeout=10)
        listed = await stub.ListPeople(registry_pb2.ListPeopleRequest(collection="c", page_size=1000), timeout=10)
        # person-5 lost both faces (one moved, one deleted), person-7 was erased.
        assert (before.face_count, before.person_count) == (197, 98)
        assert (after.face_count, after.person_count) == (197, 98)
        expected = sorted({f"person-{i // 2}" for i in range(200)} - {"person-5", "person-7"})
        assert [p.person_id for p in listed.people] == expected
        assert next(p for p in listed.people if p.person_id == "person-0").face_count == 3
    finally:
        second.stop()


async def test_a_second_registry_cannot_open_the_same_data_folder(data_dir: Path) -> None:
    first = RegistryProcess(data_dir)
    try:
        await serving(first)
        second = RegistryProcess(data_dir)
        try:
            code = await asyncio.to_thread(second.process.wait, 60)
        finally:
            second.stop()
        assert code != 0, "the second registry must refuse to start"
    finally:
        first.stop()


async def test_bad_input_is_refused_with_a_status_and_writes_nothing(data_dir: Path) -> None:
    registry = RegistryProcess(data_dir)
    try:
        stub = await serving(registry)
        await stub.CreateCollection(
            registry_pb2.CreateCollectionRequest(name="c", model_id="m", dimension=DIM, default_threshold=0.6),
            timeout=10,
        )
        good = faces(0, 3)
        bad = registry_pb2.FaceRecord(face_id="nan", person_id="p", embedding=[float("nan")] * DIM, model_id="m")
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.UpsertFaces(registry_pb2.UpsertFacesRequest(collection="c", faces=[*good, bad]), timeout=10)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.UpsertFaces(registry_pb2.UpsertFacesRequest(collection="nope", faces=good), timeout=10)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as top_k:
            query = registry_pb2.QueryVector(values=good[0].embedding)
            await stub.Search(registry_pb2.SearchRequest(collection="c", queries=[query], top_k=1000), timeout=10)
        assert top_k.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (await stub.Count(registry_pb2.CountRequest(collection="c"), timeout=10)).faces == 0
    finally:
        registry.stop()


async def test_collection_settings_and_face_listing_answer_with_clear_statuses(data_dir: Path) -> None:
    registry = RegistryProcess(data_dir)
    try:
        stub = await serving(registry)
        # The longest name a tenant's collection can map to (32-character tenant, '__', 48-character name).
        name = "t" * 32 + "__" + "c" * 48
        await stub.CreateCollection(
            registry_pb2.CreateCollectionRequest(
                name=name, model_id="m", dimension=DIM, default_threshold=0.6, target_fpir=0.01
            ),
            timeout=10,
        )
        await stub.UpsertFaces(registry_pb2.UpsertFacesRequest(collection=name, faces=faces(0, 4)), timeout=10)

        updated = await stub.UpdateCollection(
            registry_pb2.UpdateCollectionRequest(name=name, min_margin=0.05), timeout=10
        )
        listed = await stub.ListFaces(registry_pb2.ListFacesRequest(collection=name, page_size=3), timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as out_of_range:
            await stub.UpdateCollection(registry_pb2.UpdateCollectionRequest(name=name, target_fpir=0.9), timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as absent:
            await stub.UpdateCollection(registry_pb2.UpdateCollectionRequest(name="nope", min_margin=0.1), timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as bad_token:
            await stub.ListFaces(registry_pb2.ListFacesRequest(collection=name, page_token="x"), timeout=10)

        assert (updated.target_fpir, updated.min_margin) == pytest.approx((0.01, 0.05))
        assert [f.face_id for f in listed.faces] == ["face-0", "face-1", "face-2"] and listed.next_page_token
        assert out_of_range.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "target_fpir" in (out_of_range.value.details() or "")
        assert absent.value.code() == grpc.StatusCode.NOT_FOUND
        assert bad_token.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        registry.stop()
