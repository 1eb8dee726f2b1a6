"""Unbounded input against the real stack (gateway, embedder on Triton, registry on embedded Qdrant), over gRPC.

Each field a caller sends has a limit (``facerec.limits``): past it the call ends INVALID_ARGUMENT naming the field
and the limit, before any work is done, and the message quotes at most a short prefix of the input. Internal
callers of the registry are bounded by the same rules. Whatever a message would say, its status fits gRPC's
metadata: the caller sees the error, never "Stream removed".
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass

import grpc
import pytest

from facerec.registry.v1 import registry_pb2, registry_pb2_grpc
from facerec.v1 import facerec_pb2, facerec_pb2_grpc
from tests.e2e.photos import faceless
from tests.fixtures.stack import ALPHA_KEY, Stack

AUTH = (("authorization", f"Bearer {ALPHA_KEY}"),)
# A reply's message should read as a sentence, not carry the caller's input back.
SHORT = 400


@pytest.fixture(scope="module")
async def gateway(stack: Stack) -> AsyncIterator[facerec_pb2_grpc.FaceRecognitionStub]:
    async with grpc.aio.insecure_channel(stack.gateway.address) as channel:
        yield facerec_pb2_grpc.FaceRecognitionStub(channel)


@pytest.fixture(scope="module")
async def registry(stack: Stack) -> AsyncIterator[registry_pb2_grpc.RegistryStub]:
    async with grpc.aio.insecure_channel(stack.registry.address) as channel:
        yield registry_pb2_grpc.RegistryStub(channel)


@dataclass(frozen=True)
class Refusal:
    """How a call ended: its status code, message and trailing metadata."""

    code: grpc.StatusCode
    message: str
    trailers: dict[str, str | bytes]


async def refused(call: Awaitable[object]) -> Refusal:
    """How the awaited ``call`` ends (it must fail)."""
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    error = raised.value
    return Refusal(error.code(), error.details() or "", dict(error.trailing_metadata() or ()))


def enroll(**fields: object) -> facerec_pb2.EnrollRequest:
    values: dict[str, object] = {
        "collection": f"limits-{uuid.uuid4().hex[:8]}",
        "person_id": "ann",
        "photos": [facerec_pb2.Photo(image=faceless(64, 64), name="a.png")],
    }
    values.update(fields)
    return facerec_pb2.EnrollRequest(**values)  # type: ignore[arg-type]


async def test_a_10000_character_collection_name_gives_a_short_invalid_argument(gateway) -> None:
    error = await refused(gateway.GetCollection(facerec_pb2.GetCollectionRequest(name="n" * 10_000), metadata=AUTH))

    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "Stream removed" not in error.message
    assert "1-48 characters" in error.message
    assert "…(10000 characters)" in error.message
    assert len(error.message) < SHORT


async def test_identify_in_a_10000_character_collection_gives_a_short_invalid_argument(gateway) -> None:
    request = facerec_pb2.IdentifyRequest(collection="é" * 10_000, image=faceless(64, 64))

    error = await refused(gateway.Identify(request, metadata=AUTH))

    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert len(error.message) < SHORT


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"metadata": {f"k{i}": "v" for i in range(20_000)}}, "metadata has 20000 entries; the maximum is 64"),
        (
            {"metadata": {"notes": "x" * 5_000_000}},
            "metadata['notes'] is 5000000 bytes long (UTF-8); the maximum is 1024",
        ),
        ({"metadata": {"k" * 10_000: "v"}}, "metadata key 'kkkk"),
        ({"metadata": {"bad key!": "v"}}, "metadata key 'bad key!' is not 1-64 characters"),
        ({"display_name": "d" * 10_000}, "display_name is 10000 characters long; the maximum is 256"),
        ({"person_id": "p" * 10_000}, "person_id is 10000 characters long; the maximum is 128"),
        (
            {"photos": [facerec_pb2.Photo(image=b"x", name="f" * 10_000)]},
            "photos[0].name is 10000 characters long; the maximum is 256",
        ),
        (
            {"photos": [facerec_pb2.Photo(image=b"x")] * 65},
            "65 photos in one enrollment; the maximum is 64",
        ),
    ],
    ids=["20000 entries", "5 MB value", "long key", "bad key", "display name", "person id", "photo name", "65 photos"],
)
async def test_enroll_past_a_limit_is_invalid_argument_naming_the_field_and_the_limit(
    gateway, fields: dict[str, object], message: str
) -> None:
    error = await refused(gateway.Enroll(enroll(**fields), metadata=AUTH, timeout=30))

    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert message in error.message
    assert len(error.message) < SHORT


async def test_update_person_past_a_limit_is_invalid_argument(gateway) -> None:
    too_many = facerec_pb2.UpdatePersonRequest(person_id="ann", metadata={f"k{i}": "v" for i in range(65)})
    too_long = facerec_pb2.UpdatePersonRequest(person_id="ann", display_name="d" * 257)

    for request in (too_many, too_long):
        error = await refused(gateway.UpdatePerson(request, metadata=AUTH, timeout=30))
        assert error.code == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_long_frame_id_and_page_token_are_invalid_argument(gateway) -> None:
    identify = facerec_pb2.IdentifyRequest(image=faceless(64, 64), frame_id="f" * 129)
    listing = facerec_pb2.ListPeopleRequest(page_token="t" * 10_000)

    error = await refused(gateway.Identify(identify, metadata=AUTH, timeout=30))
    assert (error.code, "frame_id is 129 characters long") == (grpc.StatusCode.INVALID_ARGUMENT, error.message[:31])
    error = await refused(gateway.ListPeople(listing, metadata=AUTH, timeout=30))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token is 10000 characters long; the maximum is 8192" in error.message


async def test_a_long_model_id_is_quoted_as_a_prefix(gateway) -> None:
    request = facerec_pb2.CreateCollectionRequest(name="limits-model", model_id="m" * 10_000)

    error = await refused(gateway.CreateCollection(request, metadata=AUTH, timeout=30))

    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "…(10000 characters)" in error.message
    assert len(error.message) < SHORT


async def test_an_enrollment_refusing_64_long_named_photos_still_reaches_the_caller(gateway) -> None:
    # 64 reasons, each naming a 256-character photo, made a message and details far over gRPC's 8 KiB of metadata.
    photos = [facerec_pb2.Photo(image=faceless(48, 48), name=f"{i:03d}" + "n" * 253) for i in range(64)]

    request = enroll(photos=photos)
    await gateway.CreateCollection(facerec_pb2.CreateCollectionRequest(name=request.collection), metadata=AUTH)

    error = await refused(gateway.Enroll(request, metadata=AUTH, timeout=60))

    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert error.message.startswith("nothing enrolled; 000nnn")
    assert "more characters)" in error.message
    assert "grpc-status-details-bin" in error.trailers, "the first reasons still travel as details"


async def test_the_registry_bounds_its_internal_callers_too(registry) -> None:
    name = f"alpha__limits-{uuid.uuid4().hex[:8]}"
    await registry.CreateCollection(
        registry_pb2.CreateCollectionRequest(name=name, model_id="m", dimension=2, default_threshold=0.6), timeout=10
    )
    face = registry_pb2.FaceRecord(face_id="f1", person_id="p1", embedding=[0.6, 0.8], model_id="m")
    cases = [
        registry_pb2.UpsertFacesRequest(
            collection=name, faces=[face], people=[registry_pb2.PersonAttributes(person_id="p1", metadata=big)]
        )
        for big in ({f"k{i}": "v" for i in range(20_000)}, {"notes": "x" * 5_000_000})
    ]
    oversized_face = registry_pb2.FaceRecord()
    oversized_face.CopyFrom(face)
    oversized_face.metadata["photo"] = "x" * 2000
    cases.append(registry_pb2.UpsertFacesRequest(collection=name, faces=[oversized_face]))

    for request in cases:
        error = await refused(registry.UpsertFaces(request, timeout=30))
        assert error.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "maximum" in error.message
        assert len(error.message) < SHORT

    await registry.UpsertFaces(registry_pb2.UpsertFacesRequest(collection=name, faces=[face]), timeout=10)
    update = registry_pb2.UpdatePersonRequest(
        collection=name, person_id="p1", metadata={f"k{i}": "v" for i in range(65)}
    )
    error = await refused(registry.UpdatePerson(update, timeout=10))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT


async def test_the_registry_counts_metadata_entries_after_an_update_is_merged(registry) -> None:
    name = f"alpha__limits-{uuid.uuid4().hex[:8]}"
    await registry.CreateCollection(
        registry_pb2.CreateCollectionRequest(name=name, model_id="m", dimension=2, default_threshold=0.6), timeout=10
    )
    face = registry_pb2.FaceRecord(face_id="f1", person_id="p1", embedding=[0.6, 0.8], model_id="m")
    person = registry_pb2.PersonAttributes(person_id="p1", metadata={f"old{i}": "v" for i in range(60)})
    await registry.UpsertFaces(registry_pb2.UpsertFacesRequest(collection=name, faces=[face], people=[person]))
    more = {f"new{i}": "v" for i in range(10)}

    error = await refused(
        registry.UpdatePerson(registry_pb2.UpdatePersonRequest(collection=name, person_id="p1", metadata=more))
    )
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "the person would have 70 metadata entries; the maximum is 64" in error.message

    replaced = registry_pb2.UpdatePersonRequest(collection=name, person_id="p1", metadata=more, replace_metadata=True)
    assert len((await registry.UpdatePerson(replaced, timeout=10)).metadata) == 10
