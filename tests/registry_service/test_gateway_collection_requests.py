"""What the gateway asks the registry: every registry call of an identification, counted on the real stack.

Steady identification costs the registry exactly one Search per photo (the collection comes from the gateway's
cache); the first use of the default collection costs a GetCollection (not found), a CreateCollection (which
returns the collection) and the Search. Identification asks for a collection's settings only, never for counts
(which cost the registry work that grows with the collection) unless its threshold follows its size; the public
GetCollection still gets them. A real registry (embedded store) records every call it serves; the gateway, the
embedder and Triton are real.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from google.protobuf.message import Message
from typing_extensions import override

from facerec.registry.v1 import registry_pb2, registry_pb2_grpc
from facerec.runtime.server import ServiceBinding, ServiceRunner
from facerec.sdk import AsyncClient
from facerec.v1 import facerec_pb2, facerec_pb2_grpc
from facerec_embedder.model import MODEL_ID
from facerec_gateway.app import GatewayApp
from facerec_registry.app import RegistryApp
from facerec_registry.domain import FaceRecord
from facerec_registry.servicer import RegistryServicer
from facerec_registry.settings import RegistrySettings
from tests.fixtures.stack import ALPHA_KEY, QUICK, gateway_settings, start, wait_serving
from tests.registry.faces import DIMENSION, gallery

COLLECTION = "staff"
REGISTRY_NAME = f"alpha__{COLLECTION}"
SIZED = "sized"  # the same gallery, its threshold following its size (a target FPIR)

Call = tuple[str, Message]


def _recording(servicer: RegistryServicer, calls: list[Call]) -> RegistryServicer:
    """``servicer`` with every RPC recording its name and a copy of its request first (all are unary)."""
    for method in registry_pb2.DESCRIPTOR.services_by_name["Registry"].methods:
        served: Callable[[Any, Any], Any] = getattr(servicer, method.name)

        async def record(request: Message, context: Any, _served: Any = served, _name: str = method.name) -> Any:
            copy = type(request)()
            copy.CopyFrom(request)
            calls.append((_name, copy))
            return await _served(request, context)

        setattr(servicer, method.name, record)
    return servicer


class RecordingRegistryApp(RegistryApp):
    """The registry process's app, whose servicer keeps every call it serves (name and request)."""

    def __init__(self, settings: RegistrySettings) -> None:
        super().__init__(settings)
        self.calls: list[Call] = []

    @override
    def bindings(self) -> Sequence[ServiceBinding]:
        return [
            ServiceBinding(
                registry_pb2.DESCRIPTOR.services_by_name["Registry"],
                _recording(RegistryServicer(self.registry), self.calls),
                registry_pb2_grpc.add_RegistryServicer_to_server,
            )
        ]

    def names(self) -> list[str]:
        """The RPCs served so far, in order."""
        return [name for name, _ in self.calls]

    def get_collection_requests(self) -> list[registry_pb2.GetCollectionRequest]:
        return [r for name, r in self.calls if isinstance(r, registry_pb2.GetCollectionRequest)]


@pytest.fixture
async def recording_registry(tmp_path: Path) -> AsyncIterator[tuple[RecordingRegistryApp, ServiceRunner]]:
    settings = RegistrySettings(**QUICK, data_dir=tmp_path / "registry")  # type: ignore[arg-type]
    app = RecordingRegistryApp(settings)
    runner = await start(app, settings)
    await wait_serving(runner.address)
    # The tenant's collections with 30 people, written straight into the registry.
    vectors, owners, _ = gallery(30, 3, np.random.default_rng(5))
    faces = [FaceRecord(f"f{i}", f"p{o}", v, MODEL_ID) for i, (v, o) in enumerate(zip(vectors, owners, strict=True))]
    app.registry.create_collection(REGISTRY_NAME, MODEL_ID, DIMENSION, 0.6, "alpha")
    app.registry.upsert_faces(REGISTRY_NAME, faces)
    app.registry.create_collection(f"alpha__{SIZED}", MODEL_ID, DIMENSION, 0.6, "alpha", target_fpir=0.01)
    app.registry.upsert_faces(f"alpha__{SIZED}", faces)
    yield app, runner
    await runner.stop(0)


AUTH = (("authorization", f"Bearer {ALPHA_KEY}"),)


async def _gateway(registry: ServiceRunner, embedder: ServiceRunner, *, cache_s: float | None) -> AsyncIterator[str]:
    """A gateway on ``registry`` (its collection cache kept ``cache_s``, or as usual): its address."""
    settings = gateway_settings(embedder.address, registry.address)
    app = GatewayApp(settings)
    if cache_s is not None:
        app.recognition.collections.cache.ttl_s = cache_s
    gateway = await start(app, settings)
    await wait_serving(gateway.address)
    yield gateway.address
    await gateway.stop(0)


@pytest.fixture
async def client(
    recording_registry: tuple[RecordingRegistryApp, ServiceRunner], embedder_service: ServiceRunner
) -> AsyncIterator[AsyncClient]:
    """A gateway on the recording registry, whose collection cache expires at once (every call asks)."""
    async for address in _gateway(recording_registry[1], embedder_service, cache_s=0.0):
        async with AsyncClient(address, ALPHA_KEY, timeout=60) as sdk:
            yield sdk


@pytest.fixture
async def cached_gateway(
    recording_registry: tuple[RecordingRegistryApp, ServiceRunner], embedder_service: ServiceRunner
) -> AsyncIterator[str]:
    """A gateway on the recording registry with its usual collection cache."""
    async for address in _gateway(recording_registry[1], embedder_service, cache_s=None):
        yield address


@pytest.fixture
async def cached_client(cached_gateway: str) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(cached_gateway, ALPHA_KEY, timeout=60) as sdk:
        yield sdk


@pytest.fixture
async def stub(cached_gateway: str) -> AsyncIterator[facerec_pb2_grpc.FaceRecognitionAsyncStub]:
    """The public API's stub on the cached gateway, for the RPCs a test calls by message."""
    async with grpc.aio.insecure_channel(cached_gateway) as channel:
        yield facerec_pb2_grpc.FaceRecognitionStub(channel)


async def test_identify_asks_the_registry_for_the_collections_settings_only(
    client: AsyncClient, recording_registry: tuple[RecordingRegistryApp, ServiceRunner], samples_dir: Path
) -> None:
    app, _ = recording_registry

    for _ in range(3):
        await client.identify(samples_dir / "obama2.jpg", collection=COLLECTION)

    requests = app.get_collection_requests()
    assert len(requests) == 3
    assert all(r.settings_only and r.name == REGISTRY_NAME for r in requests)


async def test_the_public_get_collection_still_reports_counts(
    client: AsyncClient, recording_registry: tuple[RecordingRegistryApp, ServiceRunner]
) -> None:
    app, _ = recording_registry

    collection = await client.get_collection(COLLECTION)

    assert (collection.face_count, collection.person_count) == (90, 30)
    assert [r.settings_only for r in app.get_collection_requests()] == [False]


async def test_steady_identification_costs_the_registry_exactly_one_search_per_photo(
    cached_client: AsyncClient, recording_registry: tuple[RecordingRegistryApp, ServiceRunner], samples_dir: Path
) -> None:
    app, _ = recording_registry
    await cached_client.identify(samples_dir / "obama2.jpg", collection=COLLECTION)  # reads the collection
    app.calls.clear()

    for _ in range(4):
        await cached_client.identify(samples_dir / "obama2.jpg", collection=COLLECTION)

    assert app.names() == ["Search"] * 4


async def test_first_use_of_the_default_collection_is_get_create_then_search(
    cached_client: AsyncClient, recording_registry: tuple[RecordingRegistryApp, ServiceRunner], samples_dir: Path
) -> None:
    app, _ = recording_registry

    await cached_client.identify(samples_dir / "obama2.jpg")

    assert app.names() == ["GetCollection", "CreateCollection", "Search"]
    created = app.calls[1][1]
    assert isinstance(created, registry_pb2.CreateCollectionRequest) and created.name == "alpha__default"


async def test_a_target_fpir_collection_is_read_with_its_counts_and_steady_identification_is_one_search(
    stub: facerec_pb2_grpc.FaceRecognitionAsyncStub,
    recording_registry: tuple[RecordingRegistryApp, ServiceRunner],
    samples_dir: Path,
) -> None:
    app, _ = recording_registry
    request = facerec_pb2.IdentifyRequest(collection=SIZED, image=(samples_dir / "obama2.jpg").read_bytes())

    first = await stub.Identify(request, metadata=AUTH)
    reads = app.get_collection_requests()
    app.calls.clear()
    for _ in range(3):
        await stub.Identify(request, metadata=AUTH)

    # A cold cache learns the target from the settings, then reads the counts once; then only searches.
    assert [r.settings_only for r in reads] == [True, False]
    assert app.names() == ["Search"] * 3
    assert first.applied.source == facerec_pb2.THRESHOLD_SOURCE_TARGET_FPIR and first.applied.gallery_size == 30
    assert first.threshold == pytest.approx(first.applied.threshold) and first.threshold <= 0.6


async def test_update_and_calibrate_collection_reach_the_registry(
    stub: facerec_pb2_grpc.FaceRecognitionAsyncStub, recording_registry: tuple[RecordingRegistryApp, ServiceRunner]
) -> None:
    app, _ = recording_registry

    updated = await stub.UpdateCollection(
        facerec_pb2.UpdateCollectionRequest(name=COLLECTION, target_fpir=0.05, min_margin=0.02), metadata=AUTH
    )
    calibration = await stub.CalibrateCollection(
        facerec_pb2.CalibrateCollectionRequest(name=COLLECTION, target_fmr=0.01, apply=True), metadata=AUTH
    )
    after = await stub.GetCollection(facerec_pb2.GetCollectionRequest(name=COLLECTION), metadata=AUTH)

    assert updated.target_fpir == 0.05 and updated.min_margin == pytest.approx(0.02)
    assert (calibration.faces, calibration.people, calibration.genuine_pairs) == (90, 30, 90)
    assert calibration.applied and 0 < calibration.threshold <= 2
    assert after.threshold == pytest.approx(calibration.threshold) and after.target_fpir == 0
    assert "ListFaces" in app.names() and app.names().count("UpdateCollection") == 2
