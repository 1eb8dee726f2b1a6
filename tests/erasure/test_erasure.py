"""Provable erasure on the embedded store, through the registry's gRPC service.

1. After DeletePerson returns, no search returns any of the person's faces: approximate (the HNSW index is
   built and used), exact, one per person, all faces, filtered to the person; nor does ListFaces or GetPerson.
   The time from DeletePerson's return until every one of them has left the person out is measured (< 1 s).
2. The person's descriptors are gone from every file under the store's data folder once the collection has
   been rewritten (``Registry.compact_erased``, which the registry's upkeep runs every round): the exact
   little-endian float32 bytes of each vector (segments) and their CBOR form (each value ``0xfa`` + big-endian
   float32: how the WAL holds an upsert) are searched for, while a kept person's vector is found before and after.
"""

from __future__ import annotations

import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import numpy.typing as npt
import pytest
import qdrant_edge as edge

from facerec.registry.v1 import registry_pb2 as pb
from facerec.registry.v1 import registry_pb2_grpc as pb_grpc
from facerec.runtime.interceptors import server_interceptors
from facerec_registry.domain import FaceRecord
from facerec_registry.registry import Registry
from facerec_registry.servicer import RegistryServicer
from facerec_registry.store.base import StoreConfig
from facerec_registry.store.edge import EdgeFaceStore
from tests.registry.faces import DIMENSION, MODEL_ID, gallery

GALLERY = "acme__staff"
PEOPLE, FACES_PER_PERSON = 300, 10
VICTIM, KEPT = "p7", "p8"
Vectors = npt.NDArray[np.float32]


@dataclass
class Enrolled:
    store: EdgeFaceStore
    registry: Registry
    stub: pb_grpc.RegistryAsyncStub
    data_dir: Path
    vectors: Vectors
    owners: npt.NDArray[np.int64]

    def of(self, person: str) -> Vectors:
        return self.vectors[self.owners == int(person[1:])]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EdgeFaceStore]:
    # A low threshold so that 3,000 faces get an HNSW index (built in the background, as in production).
    opened = EdgeFaceStore(StoreConfig(data_dir=tmp_path / "registry", optimize_threshold=1_000))
    yield opened
    opened.close()


@pytest.fixture
async def enrolled(store: EdgeFaceStore, tmp_path: Path) -> AsyncIterator[Enrolled]:
    registry = Registry(store)
    server = grpc.aio.server(interceptors=server_interceptors("registry"))
    pb_grpc.add_RegistryServicer_to_server(RegistryServicer(registry), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    vectors, owners, _ = gallery(PEOPLE, FACES_PER_PERSON, np.random.default_rng(14), spectrum="facelike")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.RegistryStub(channel)
        await stub.CreateCollection(
            pb.CreateCollectionRequest(
                name=GALLERY, model_id=MODEL_ID, dimension=DIMENSION, default_threshold=0.6, tenant="acme"
            )
        )
        # One request: one background index build covers every face.
        faces = [
            pb.FaceRecord(face_id=f"f{i}", person_id=f"p{owner}", embedding=vector.tolist(), model_id=MODEL_ID)
            for i, (vector, owner) in enumerate(zip(vectors, owners, strict=True))
        ]
        await stub.UpsertFaces(pb.UpsertFacesRequest(collection=GALLERY, faces=faces))
        store.wait_for_indexing(GALLERY, timeout_s=120)
        yield Enrolled(store, registry, stub, tmp_path / "registry", vectors, owners)
    await server.stop(grace=None)


def _exact_people(store: EdgeFaceStore, vectors: Vectors) -> set[str]:
    """People among the 10 nearest faces of each vector by an exact (brute-force) search of the shard."""
    found: set[str] = set()
    with store._collection(GALLERY).reading() as shard:
        for vector in vectors:
            request = edge.QueryRequest(
                limit=10,
                query=edge.Query.Nearest(vector.tolist()),
                with_payload=["person_id"],
                params=edge.SearchParams(exact=True),
            )
            found |= {str((point.payload or {})["person_id"]) for point in shard.query(request)}
    return found


async def _searched_people(stub: pb_grpc.RegistryAsyncStub, vectors: Vectors, **options: object) -> set[str]:
    queries = [pb.QueryVector(values=v.tolist()) for v in vectors]
    response = await stub.Search(pb.SearchRequest(collection=GALLERY, queries=queries, top_k=10, **options))  # type: ignore[arg-type]
    return {match.person_id for result in response.results for match in result.matches}


async def _listed_people(stub: pb_grpc.RegistryAsyncStub) -> set[str]:
    people: set[str] = set()
    token = ""
    while True:
        page = await stub.ListFaces(pb.ListFacesRequest(collection=GALLERY, page_size=1000, page_token=token))
        people |= {face.person_id for face in page.faces}
        token = page.next_page_token
        if not token:
            return people


def _views(enrolled: Enrolled, person: str) -> dict[str, Callable[[], Awaitable[bool]]]:
    """Each kind of search or listing, as a check of whether it still returns ``person``."""
    vectors = enrolled.of(person)
    stub = enrolled.stub

    async def get_person() -> bool:
        try:
            await stub.GetPerson(pb.GetPersonRequest(collection=GALLERY, person_id=person))
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.NOT_FOUND
            return False
        return True

    async def own_faces() -> bool:
        return bool((await stub.ListFaces(pb.ListFacesRequest(collection=GALLERY, person_id=person))).faces)

    async def exact() -> bool:
        return person in _exact_people(enrolled.store, vectors)

    async def everyone() -> bool:
        return person in await _listed_people(stub)

    async def searched(**options: object) -> bool:
        return person in await _searched_people(stub, vectors, **options)

    return {
        "approximate, all faces": lambda: searched(all_faces=True),
        "approximate, one per person": lambda: searched(),
        "filtered to the person": lambda: searched(person_id=person, all_faces=True),
        "exact": exact,
        "ListFaces of the person": own_faces,
        "ListFaces of everyone": everyone,
        "GetPerson": get_person,
    }


async def _returned_by(enrolled: Enrolled, person: str) -> dict[str, bool]:
    return {name: await check() for name, check in _views(enrolled, person).items()}


async def test_no_search_returns_an_erased_person_once_delete_person_returns(enrolled: Enrolled) -> None:
    assert enrolled.store.unindexed_points(GALLERY) == 0, "the searches must go through the HNSW index"
    assert all((await _returned_by(enrolled, VICTIM)).values()), "before erasure every view finds the person"
    views = _views(enrolled, VICTIM)

    erased = await enrolled.stub.DeletePerson(pb.DeletePersonRequest(collection=GALLERY, person_id=VICTIM))
    returned = time.perf_counter()
    # For each view: how long after DeletePerson returned its first answer without the person came back.
    gone_after_s: dict[str, float] = {}
    checks: dict[str, int] = {}
    for name, check in views.items():
        checks[name] = 1
        while await check() and time.perf_counter() - returned < 5:
            checks[name] += 1
        gone_after_s[name] = time.perf_counter() - returned

    report = ", ".join(f"{name} {seconds * 1000:.1f} ms" for name, seconds in gone_after_s.items())
    print(f"erased person left out, after DeletePerson returned: {report}")
    assert erased.faces_deleted == FACES_PER_PERSON
    assert checks == dict.fromkeys(views, 1), "every view left the person out at its first check"
    assert max(gone_after_s.values()) < 1.0
    assert all((await _returned_by(enrolled, KEPT)).values()), "the others are still found"


def _encodings(vector: npt.NDArray[np.float32]) -> dict[str, bytes]:
    """The forms a stored descriptor's bytes take in the store's files."""
    return {
        "float32 little-endian": vector.astype("<f4").tobytes(),
        "float32 little-endian, first 16 values": vector[:16].astype("<f4").tobytes(),
        "CBOR float32 (WAL)": b"".join(b"\xfa" + struct.pack(">f", float(x)) for x in vector),
        "CBOR float32 (WAL), first 16 values": b"".join(b"\xfa" + struct.pack(">f", float(x)) for x in vector[:16]),
    }


def _found_in_files(data_dir: Path, vectors: Vectors) -> list[str]:
    """'file: encoding' for each form of each vector found in any file under ``data_dir``."""
    wanted = [(form, pattern) for vector in vectors for form, pattern in _encodings(vector).items()]
    hits = []
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        content = path.read_bytes()
        hits += [f"{path.relative_to(data_dir)}: {form}" for form, pattern in wanted if pattern in content]
    return sorted(set(hits))


async def test_erased_vectors_leave_the_files_once_the_collection_is_rewritten(enrolled: Enrolled) -> None:
    victim, kept = enrolled.of(VICTIM), enrolled.of(KEPT)[:1]
    assert _found_in_files(enrolled.data_dir, victim), "the scan must see stored vectors"
    assert any("CBOR" in hit for hit in _found_in_files(enrolled.data_dir, victim)), "and the WAL's form of them"

    await enrolled.stub.DeletePerson(pb.DeletePersonRequest(collection=GALLERY, person_id=VICTIM))
    # Deleted points are only marked: their descriptors are still in the files until the rewrite.
    assert _found_in_files(enrolled.data_dir, victim)
    assert enrolled.store.erasures_pending(GALLERY)

    started = time.perf_counter()
    assert enrolled.registry.compact_erased() == [GALLERY]
    enrolled.store.wait_for_indexing(GALLERY, timeout_s=120)
    rewrite_s = time.perf_counter() - started

    print(f"rewrite of {PEOPLE * FACES_PER_PERSON - FACES_PER_PERSON} faces without the erased ones: {rewrite_s:.1f} s")
    assert enrolled.store.rewrites(GALLERY) == 1
    assert _found_in_files(enrolled.data_dir, victim) == []
    assert len(_found_in_files(enrolled.data_dir, kept)) >= 2, "a kept person's vector is still stored"
    assert not enrolled.store.erasures_pending(GALLERY)
    assert enrolled.registry.compact_erased() == [], "nothing erased since: no rewrite"
    # The rewritten collection serves as before, through its index.
    assert enrolled.store.unindexed_points(GALLERY) == 0
    assert (await enrolled.stub.Count(pb.CountRequest(collection=GALLERY))).faces == 2_990
    assert KEPT in await _searched_people(enrolled.stub, kept)


def test_a_pending_rewrite_survives_a_restart(tmp_path: Path) -> None:
    config = StoreConfig(data_dir=tmp_path)
    store = EdgeFaceStore(config)
    registry = Registry(store)
    registry.create_collection(GALLERY, MODEL_ID, DIMENSION, 0.6)
    vectors, owners, _ = gallery(20, 2, np.random.default_rng(5))
    registry.upsert_faces(
        GALLERY,
        [FaceRecord(f"f{i}", f"p{o}", v, MODEL_ID) for i, (v, o) in enumerate(zip(vectors, owners, strict=True))],
    )
    registry.delete_face(GALLERY, "f0")
    store.close()

    reopened = EdgeFaceStore(config)
    try:
        assert reopened.erasures_pending(GALLERY)
        assert Registry(reopened).compact_erased() == [GALLERY]
        reopened.wait_for_indexing(GALLERY, timeout_s=60)
        assert not reopened.erasures_pending(GALLERY)
        assert _found_in_files(tmp_path, vectors[:1]) == []
        assert Registry(reopened).count(GALLERY).faces == 39
    finally:
        reopened.close()
