"""The registry's gRPC servicer on a real in-process aio server over the embedded store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from facerec.registry.v1 import registry_pb2 as pb
from facerec.registry.v1 import registry_pb2_grpc as pb_grpc
from facerec.v1 import audit_pb2
from facerec_registry.registry import Registry
from facerec_registry.servicer import RegistryServicer
from facerec_registry.store.base import StoreConfig
from facerec_registry.store.edge import EdgeFaceStore
from tests.registry.faces import DIMENSION, MODEL_ID, gallery


@pytest.fixture
async def stub(tmp_path: Path) -> AsyncIterator[pb_grpc.RegistryAsyncStub]:
    store = EdgeFaceStore(StoreConfig(data_dir=tmp_path))
    server = grpc.aio.server()
    pb_grpc.add_RegistryServicer_to_server(RegistryServicer(Registry(store)), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield pb_grpc.RegistryStub(channel)
    await server.stop(grace=None)
    store.close()


def _upsert_request(people: int, faces_per_person: int) -> tuple[pb.UpsertFacesRequest, np.ndarray]:
    vectors, owners, _ = gallery(people, faces_per_person, np.random.default_rng(4))
    faces = [
        pb.FaceRecord(
            face_id=f"f{i}", person_id=f"p{owner}", embedding=v.tolist(), model_id=MODEL_ID, metadata={"cam": "1"}
        )
        for i, (v, owner) in enumerate(zip(vectors, owners, strict=True))
    ]
    people_attributes = [pb.PersonAttributes(person_id="p0", display_name="Ada", metadata={"team": "x"})]
    return pb.UpsertFacesRequest(collection="staff", faces=faces, people=people_attributes), vectors


async def test_enrolled_faces_are_found_through_grpc(stub: pb_grpc.RegistryAsyncStub) -> None:
    created = await stub.CreateCollection(
        pb.CreateCollectionRequest(name="staff", model_id=MODEL_ID, dimension=DIMENSION, default_threshold=0.6)
    )
    request, vectors = _upsert_request(5, 2)

    upserted = await stub.UpsertFaces(request)
    response = await stub.Search(
        pb.SearchRequest(
            collection="staff", queries=[pb.QueryVector(values=vectors[0].tolist())], top_k=2, max_distance=0.6
        )
    )

    assert created.created_at.seconds > 0
    assert upserted.upserted == 10
    [result] = response.results
    assert [(m.person_id, m.face_id, m.display_name) for m in result.matches] == [("p0", "f0", "Ada")]
    assert result.matches[0].distance == pytest.approx(0.0, abs=1e-5)


async def test_people_counts_and_erasure_through_grpc(stub: pb_grpc.RegistryAsyncStub) -> None:
    await stub.CreateCollection(
        pb.CreateCollectionRequest(name="staff", model_id=MODEL_ID, dimension=DIMENSION, default_threshold=0.6)
    )
    request, _ = _upsert_request(5, 2)
    await stub.UpsertFaces(request)

    page = await stub.ListPeople(pb.ListPeopleRequest(collection="staff", page_size=2))
    updated = await stub.UpdatePerson(
        pb.UpdatePersonRequest(collection="staff", person_id="p0", metadata={"team": ""}, display_name="Ada L.")
    )
    erased = await stub.DeletePerson(pb.DeletePersonRequest(collection="staff", person_id="p1"))
    counts = await stub.Count(pb.CountRequest(collection="staff"))

    assert [p.person_id for p in page.people] == ["p0", "p1"]
    assert page.people[0].face_ids == ["f0", "f1"]
    assert page.next_page_token
    assert (updated.display_name, dict(updated.metadata), updated.face_count) == ("Ada L.", {}, 2)
    assert erased.faces_deleted == 2
    assert (counts.faces, counts.people) == (8, 4)


async def test_get_collection_counts_unless_settings_only_are_asked(stub: pb_grpc.RegistryAsyncStub) -> None:
    await stub.CreateCollection(
        pb.CreateCollectionRequest(name="staff", model_id=MODEL_ID, dimension=DIMENSION, default_threshold=0.6)
    )
    request, _ = _upsert_request(5, 2)
    await stub.UpsertFaces(request)

    full = await stub.GetCollection(pb.GetCollectionRequest(name="staff"))
    settings = await stub.GetCollection(pb.GetCollectionRequest(name="staff", settings_only=True))

    assert (full.face_count, full.person_count) == (10, 5)
    assert (settings.face_count, settings.person_count) == (0, 0)
    assert (settings.name, settings.model_id, settings.dimension) == ("staff", MODEL_ID, DIMENSION)
    assert settings.default_threshold == pytest.approx(0.6)
    assert settings.created_at == full.created_at


async def test_domain_errors_propagate_out_of_the_servicer(stub: pb_grpc.RegistryAsyncStub) -> None:
    # Without the shared error interceptor (the lead's), an escaping domain error is answered UNKNOWN;
    # the point here is that the servicer does not swallow it.
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetCollection(pb.GetCollectionRequest(name="absent"))

    assert "does not exist" in (raised.value.details() or "")


async def test_decision_settings_are_created_updated_and_read_through_grpc(stub: pb_grpc.RegistryAsyncStub) -> None:
    created = await stub.CreateCollection(
        pb.CreateCollectionRequest(
            name="staff", model_id=MODEL_ID, dimension=DIMENSION, default_threshold=0.6, target_fpir=0.01
        )
    )
    request, _ = _upsert_request(5, 2)
    await stub.UpsertFaces(request)

    updated = await stub.UpdateCollection(pb.UpdateCollectionRequest(name="staff", min_margin=0.05))
    got = await stub.GetCollection(pb.GetCollectionRequest(name="staff", settings_only=True))
    [listed] = (await stub.ListCollections(pb.ListCollectionsRequest())).collections

    assert (created.target_fpir, created.min_margin) == pytest.approx((0.01, 0.0))
    # Fields left unset keep their values; the answer carries the counts.
    assert (updated.default_threshold, updated.target_fpir, updated.min_margin) == pytest.approx((0.6, 0.01, 0.05))
    assert (updated.face_count, updated.person_count) == (10, 5)
    assert (got.target_fpir, got.min_margin) == pytest.approx((0.01, 0.05))
    assert (listed.target_fpir, listed.min_margin) == pytest.approx((0.01, 0.05))


async def test_updating_an_absent_collection_is_an_error_through_grpc(stub: pb_grpc.RegistryAsyncStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.UpdateCollection(pb.UpdateCollectionRequest(name="absent", target_fpir=0.01))


async def test_faces_are_listed_in_pages_with_descriptors_through_grpc(stub: pb_grpc.RegistryAsyncStub) -> None:
    await stub.CreateCollection(
        pb.CreateCollectionRequest(name="staff", model_id=MODEL_ID, dimension=DIMENSION, default_threshold=0.6)
    )
    request, vectors = _upsert_request(5, 2)
    await stub.UpsertFaces(request)

    first = await stub.ListFaces(pb.ListFacesRequest(collection="staff", page_size=3, include_embeddings=True))
    rest = await stub.ListFaces(
        pb.ListFacesRequest(collection="staff", page_size=100, page_token=first.next_page_token)
    )
    one = await stub.ListFaces(pb.ListFacesRequest(collection="staff", person_id="p1"))

    assert [(f.person_id, f.face_id) for f in first.faces] == [("p0", "f0"), ("p0", "f1"), ("p1", "f2")]
    np.testing.assert_allclose(first.faces[0].embedding, vectors[0], atol=1e-6)
    assert first.faces[0].enrolled_at.seconds > 0 and dict(first.faces[0].metadata) == {"cam": "1"}
    assert len(rest.faces) == 7 and not rest.next_page_token
    assert all(len(f.embedding) == 0 for f in rest.faces)
    assert [f.face_id for f in one.faces] == ["f2", "f3"]


async def test_faces_are_moved_and_deleted_through_grpc(stub: pb_grpc.RegistryAsyncStub) -> None:
    await stub.CreateCollection(
        pb.CreateCollectionRequest(name="staff", model_id=MODEL_ID, dimension=DIMENSION, default_threshold=0.6)
    )
    request, _ = _upsert_request(5, 2)
    await stub.UpsertFaces(request)

    moved = await stub.MoveFace(pb.MoveFaceRequest(collection="staff", face_id="f2", to_person_id="p0"))
    deleted = await stub.DeleteFace(pb.DeleteFaceRequest(collection="staff", face_id="f3"))
    absent = await stub.DeleteFace(pb.DeleteFaceRequest(collection="staff", face_id="f3"))
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await stub.MoveFace(pb.MoveFaceRequest(collection="staff", face_id="nope", to_person_id="p0"))

    assert (moved.from_person_id, moved.face.face_id, moved.face.person_id) == ("p1", "f2", "p0")
    assert len(moved.face.embedding) == 0 and moved.face.enrolled_at.seconds > 0
    assert (deleted.deleted, deleted.person_id) == (True, "p1")
    assert (absent.deleted, absent.person_id) == (False, "")
    assert "no face 'nope'" in (unknown.value.details() or "")


async def test_writes_are_recorded_with_the_callers_actor_and_read_back_through_grpc(
    stub: pb_grpc.RegistryAsyncStub,
) -> None:
    caller = (("x-facerec-actor", "key:0123456789abcdef"),)
    too_long = (("x-facerec-actor", "key:" + "x" * 200),)
    await stub.CreateCollection(
        pb.CreateCollectionRequest(
            name="acme__staff",
            model_id=MODEL_ID,
            dimension=DIMENSION,
            default_threshold=0.6,
            tenant="acme",
            retention_seconds=2_592_000,
        ),
        metadata=caller,
    )
    await stub.DeletePerson(pb.DeletePersonRequest(collection="acme__staff", person_id="p9"), metadata=too_long)
    updated = await stub.UpdateCollection(pb.UpdateCollectionRequest(name="acme__staff", retention_seconds=0))

    first = await stub.ListAuditEvents(pb.ListAuditEventsRequest(tenant="acme", page_size=2))
    rest = await stub.ListAuditEvents(pb.ListAuditEventsRequest(tenant="acme", page_token=first.next_page_token))
    since = await stub.ListAuditEvents(pb.ListAuditEventsRequest(tenant="acme", since=rest.events[0].time))
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.ListAuditEvents(pb.ListAuditEventsRequest(tenant="acme", page_token="forged"))

    events = [*first.events, *rest.events]
    assert updated.retention_seconds == 0
    assert [e.action for e in events] == [
        audit_pb2.AUDIT_COLLECTION_CREATE,
        audit_pb2.AUDIT_PERSON_DELETE,
        audit_pb2.AUDIT_COLLECTION_UPDATE,
    ]
    assert [e.actor for e in events] == ["key:0123456789abcdef", "", ""]  # one over 128 characters is left out
    assert "retention_seconds=2592000" in events[0].detail
    assert [e.sequence for e in events] == [1, 2, 3] and events[0].time.seconds > 0
    assert [e.sequence for e in since.events] == [3]


async def test_retention_and_transient_settings_are_created_and_read_through_grpc(
    stub: pb_grpc.RegistryAsyncStub,
) -> None:
    created = await stub.CreateCollection(
        pb.CreateCollectionRequest(
            name="work", model_id=MODEL_ID, dimension=DIMENSION, default_threshold=0.6, transient=True
        )
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.CreateCollection(
            pb.CreateCollectionRequest(
                name="staff", model_id=MODEL_ID, dimension=DIMENSION, default_threshold=0.6, retention_seconds=-5
            )
        )
    got = await stub.GetCollection(pb.GetCollectionRequest(name="work", settings_only=True))
    listed = await stub.ListCollections(pb.ListCollectionsRequest())

    assert created.transient and got.transient and got.retention_seconds == 0
    assert "retention_seconds" in (refused.value.details() or "")
    assert list(listed.collections) == []
