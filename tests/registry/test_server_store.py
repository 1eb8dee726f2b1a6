"""The Qdrant server store's production settings, read from the request objects it would send.

No Qdrant server runs here: the requests are inspected, and an unreachable server is a real fault (a
closed port), not a fake.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from facerec_registry.domain import Collection, FaceRecord, PersonAttributes
from facerec_registry.errors import StoreUnavailable
from facerec_registry.store import open_store
from facerec_registry.store.base import StoreConfig, StoredFace
from facerec_registry.store.edge import EdgeFaceStore
from facerec_registry.store.server import (
    ServerFaceStore,
    client_options,
    collection_options,
    payload_indexes,
    search_params,
)

PRODUCTION = StoreConfig(
    qdrant_url="https://qdrant.internal:6333",
    api_key="secret",
    hnsw_m=16,
    hnsw_ef_construct=128,
    hnsw_ef=64,
    int8_quantization=True,
    shard_number=6,
    replication_factor=2,
)
# Constructing a client asks the server for its version; with nothing listening it warns.
pytestmark = pytest.mark.filterwarnings("ignore:Failed to obtain server version:UserWarning")

GALLERY = Collection("staff", "dlib-resnet-v1", 128, 0.6, "acme", datetime(2026, 1, 2, tzinfo=UTC))


def test_client_prefers_grpc_with_the_api_key_and_tls() -> None:
    options = client_options(PRODUCTION)

    assert options["prefer_grpc"] is True
    assert options["api_key"] == "secret"
    assert options["url"] == "https://qdrant.internal:6333"
    assert options["timeout"] == PRODUCTION.timeout_s
    assert options["grpc_port"] == 6334


def test_collection_uses_euclidean_distance_on_descriptors_of_its_dimension() -> None:
    vectors = collection_options(GALLERY, PRODUCTION)["vectors_config"]

    assert (vectors.size, vectors.distance) == (128, qm.Distance.EUCLID)


def test_collection_index_is_hnsw_with_m_16_and_ef_construct_in_100_to_200() -> None:
    hnsw = collection_options(GALLERY, PRODUCTION)["hnsw_config"]

    assert hnsw.m == 16
    assert 100 <= hnsw.ef_construct <= 200


def test_collection_keeps_int8_quantized_vectors_in_ram_at_quantile_099() -> None:
    quantization = collection_options(GALLERY, PRODUCTION)["quantization_config"]

    assert isinstance(quantization, qm.ScalarQuantization)
    assert quantization.scalar.type == qm.ScalarType.INT8
    assert quantization.scalar.quantile == pytest.approx(0.99)
    assert quantization.scalar.always_ram is True


def test_quantization_can_be_turned_off() -> None:
    config = StoreConfig(qdrant_url="http://q:6333", int8_quantization=False)

    assert collection_options(GALLERY, config)["quantization_config"] is None
    assert search_params(config).quantization is None


def test_collection_takes_shards_and_replicas_from_the_config() -> None:
    options = collection_options(GALLERY, PRODUCTION)

    assert (options["shard_number"], options["replication_factor"]) == (6, 2)


def test_collection_records_the_registry_settings_in_its_metadata() -> None:
    recorded = collection_options(GALLERY, PRODUCTION)["metadata"]["facerec_collection"]

    assert recorded["model_id"] == "dlib-resnet-v1"
    assert recorded["dimension"] == 128
    assert recorded["tenant"] == "acme"


def test_searches_rescore_twice_oversampled_quantized_candidates() -> None:
    params = search_params(PRODUCTION)

    assert params.hnsw_ef == 64
    assert params.quantization is not None
    assert params.quantization.rescore is True
    assert params.quantization.oversampling == pytest.approx(2.0)


def test_person_id_and_metadata_pairs_get_keyword_indexes_and_the_enrollment_time_a_datetime_one() -> None:
    indexes = payload_indexes()

    assert set(indexes) == {"person_id", "metadata_pairs", "enrolled_at"}
    assert indexes["person_id"].type == indexes["metadata_pairs"].type == qm.KeywordIndexType.KEYWORD
    assert indexes["enrolled_at"].type == qm.DatetimeIndexType.DATETIME


def test_open_store_picks_the_server_store_when_a_url_is_set() -> None:
    store = open_store(StoreConfig(qdrant_url="http://127.0.0.1:1", grpc_port=1))
    try:
        assert isinstance(store, ServerFaceStore)
    finally:
        store.close()


def test_open_store_picks_the_embedded_store_without_a_url(tmp_path: Path) -> None:
    store = open_store(StoreConfig(data_dir=tmp_path))
    try:
        assert isinstance(store, EdgeFaceStore)
    finally:
        store.close()


def test_an_unreachable_server_is_reported_as_unavailable() -> None:
    # Nothing listens on port 1, neither for REST nor for gRPC.
    store = ServerFaceStore(StoreConfig(qdrant_url="http://127.0.0.1:1", grpc_port=1, timeout_s=2))
    try:
        with pytest.raises(StoreUnavailable):
            store.get_collection("staff")
    finally:
        store.close()


def test_searches_for_distinct_people_use_the_wider_beam() -> None:
    assert search_params(PRODUCTION, distinct_people=True).hnsw_ef == PRODUCTION.people_hnsw_ef
    assert PRODUCTION.people_hnsw_ef > PRODUCTION.hnsw_ef


def test_a_gallery_made_before_people_directories_gets_one_built_from_its_faces() -> None:
    client = QdrantClient(location=":memory:")
    before = ServerFaceStore(StoreConfig(), client=client)
    before.create_collection(GALLERY)
    faces = [
        StoredFace(
            FaceRecord(str(uuid.uuid4()), person, np.full(128, i + n, np.float32), "dlib-resnet-v1"),
            PersonAttributes(person),
        )
        for n, person in enumerate(["carol", "alice", "bob"])
        for i in range(3)
    ]
    before.upsert_faces("staff", faces)
    client.delete_collection("facerec_staff.people")  # as a gallery of an earlier release has it

    upgraded = ServerFaceStore(StoreConfig(), client=client)
    assert upgraded.get_collection("staff") == GALLERY

    assert upgraded.count_people("staff") == 3
    assert upgraded.people_after("staff", None, 10) == ["alice", "bob", "carol"]
    assert upgraded.people_after("staff", "alice", 1) == ["bob"]


def test_a_gallery_made_before_decision_settings_reads_as_fixed_threshold_without_margin() -> None:
    client = QdrantClient(location=":memory:")
    store = ServerFaceStore(StoreConfig(), client=client)
    store.create_collection(GALLERY)
    # As an earlier release wrote the metadata: no target_fpir, no min_margin.
    old = dict((client.get_collection("facerec_staff").config.metadata or {})["facerec_collection"])
    del old["target_fpir"], old["min_margin"]
    client.update_collection("facerec_staff", metadata={"facerec_collection": old})

    read = ServerFaceStore(StoreConfig(), client=client).get_collection("staff")

    assert read == GALLERY
    assert read is not None and (read.target_fpir, read.min_margin) == (0.0, 0.0)
