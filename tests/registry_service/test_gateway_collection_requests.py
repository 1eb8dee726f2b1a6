"""What the gateway asks the registry about a collection: identification asks for its settings only, never for
counts (which cost the registry work that grows with the collection); the public GetCollection still gets
them. A real registry (embedded store) records every GetCollection request it serves; the gateway, the
embedder and Triton are real."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from typing_extensions import override

from facerec.registry.v1 import registry_pb2, registry_pb2_grpc
from facerec.runtime.server import ServiceBinding, ServiceRunner
from facerec.sdk import AsyncClient
from facerec_embedder.model import MODEL_ID
from facerec_gateway import recognition
from facerec_gateway.app import GatewayApp
from facerec_registry.app import RegistryApp
from facerec_registry.domain import FaceRecord
from facerec_registry.servicer import Context, RegistryServicer
from facerec_registry.settings import RegistrySettings
from tests.fixtures.stack import ALPHA_KEY, QUICK, gateway_settings, start, wait_serving
from tests.registry.faces import DIMENSION, gallery

COLLECTION = "staff"


class RecordingRegistryApp(RegistryApp):
    """The registry process's app, whose servicer keeps a copy of every GetCollection request."""

    def __init__(self, settings: RegistrySettings) -> None:
        super().__init__(settings)
        self.get_collection_requests: list[registry_pb2.GetCollectionRequest] = []

    @override
    def bindings(self) -> Sequence[ServiceBinding]:
        requests = self.get_collection_requests

        class RecordingServicer(RegistryServicer):
            @override
            async def GetCollection(
                self, request: registry_pb2.GetCollectionRequest, context: Context
            ) -> registry_pb2.Collection:
                copy = registry_pb2.GetCollectionRequest()
                copy.CopyFrom(request)
                requests.append(copy)
                return await super().GetCollection(request, context)

        return [
            ServiceBinding(
                registry_pb2.DESCRIPTOR.services_by_name["Registry"],
                RecordingServicer(self.registry),
                registry_pb2_grpc.add_RegistryServicer_to_server,
            )
        ]


@pytest.fixture
async def recording_registry(tmp_path: Path) -> AsyncIterator[tuple[RecordingRegistryApp, ServiceRunner]]:
    settings = RegistrySettings(**QUICK, data_dir=tmp_path / "registry")  # type: ignore[arg-type]
    app = RecordingRegistryApp(settings)
    runner = await start(app, settings)
    await wait_serving(runner.address)
    yield app, runner
    await runner.stop(0)


@pytest.fixture
async def client(
    recording_registry: tuple[RecordingRegistryApp, ServiceRunner],
    embedder_service: ServiceRunner,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[AsyncClient]:
    """A gateway on the recording registry, whose collection cache expires at once (every call asks)."""
    monkeypatch.setattr(recognition, "_COLLECTION_CACHE_S", 0.0)
    app, registry = recording_registry
    # The tenant's collection with 30 people, written straight into the registry.
    name = f"alpha__{COLLECTION}"
    app.registry.create_collection(name, MODEL_ID, DIMENSION, 0.6, "alpha")
    vectors, owners, _ = gallery(30, 3, np.random.default_rng(5))
    app.registry.upsert_faces(
        name,
        [FaceRecord(f"f{i}", f"p{o}", v, MODEL_ID) for i, (v, o) in enumerate(zip(vectors, owners, strict=True))],
    )
    settings = gateway_settings(embedder_service.address, registry.address)
    gateway = await start(GatewayApp(settings), settings)
    await wait_serving(gateway.address)
    async with AsyncClient(gateway.address, ALPHA_KEY, timeout=60) as sdk:
        yield sdk
    await gateway.stop(0)


async def test_identify_asks_the_registry_for_the_collections_settings_only(
    client: AsyncClient, recording_registry: tuple[RecordingRegistryApp, ServiceRunner], samples_dir: Path
) -> None:
    app, _ = recording_registry

    for _ in range(3):
        await client.identify(samples_dir / "obama2.jpg", collection=COLLECTION)

    assert len(app.get_collection_requests) == 3
    assert all(r.settings_only and r.name == f"alpha__{COLLECTION}" for r in app.get_collection_requests)


async def test_the_public_get_collection_still_reports_counts(
    client: AsyncClient, recording_registry: tuple[RecordingRegistryApp, ServiceRunner]
) -> None:
    app, _ = recording_registry

    collection = await client.get_collection(COLLECTION)

    assert (collection.face_count, collection.person_count) == (90, 30)
    assert [r.settings_only for r in app.get_collection_requests] == [False]
