"""Stores the registry's contract suite runs against.

- ``edge``: the embedded Qdrant Edge store on ``tmp_path`` (always).
- ``qdrant-local``: ``ServerFaceStore`` over qdrant-client's local mode, a pure-Python reference of Qdrant's
  semantics; it runs the server store's own code (requests, filters, facets) where no server can run.
- ``server``: a real Qdrant server, from ``QDRANT_URL`` (and ``QDRANT_API_KEY``) or a testcontainers
  container; skipped when neither is available.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from facerec_registry.registry import Registry
from facerec_registry.store.base import FaceStore, StoreConfig
from facerec_registry.store.edge import EdgeFaceStore
from facerec_registry.store.server import ServerFaceStore

# Pinned to the client's minor version (qdrant-client 1.20); testcontainers' own default is far older.
QDRANT_IMAGE = os.environ.get("FACEREC_QDRANT_IMAGE", "qdrant/qdrant:v1.20.0")
STORE_KINDS = ["edge", "qdrant-local", "server"]


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env().ping()
    except Exception:  # any failure means: no usable daemon here
        return False
    return True


@pytest.fixture(scope="session")
def qdrant_server_url() -> Iterator[str]:
    """URL of a real Qdrant server: ``QDRANT_URL``, else a container; skips when there is neither."""
    url = os.environ.get("QDRANT_URL")
    if url:
        yield url
        return
    if not _docker_answers():
        pytest.skip("no Qdrant server: QDRANT_URL is unset and no Docker daemon answers for testcontainers")
    from testcontainers.qdrant import QdrantContainer

    with QdrantContainer(image=QDRANT_IMAGE) as container:
        yield f"http://{container.get_container_host_ip()}:{container.exposed_rest_port}"


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    """Which store the test runs against."""
    return str(request.param)


@pytest.fixture
def open_face_store(
    store_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[], FaceStore]]:
    """A factory opening the same store again (after ``close``), for the parametrized store kind."""
    kind = store_kind
    opened: list[FaceStore] = []
    if kind == "edge":

        def factory() -> FaceStore:
            opened.append(EdgeFaceStore(StoreConfig(data_dir=tmp_path / "registry", optimize_threshold=1_000)))
            return opened[-1]

    elif kind == "qdrant-local":
        client = QdrantClient(location=":memory:")

        def factory() -> FaceStore:
            opened.append(ServerFaceStore(StoreConfig(), client=client))
            return opened[-1]

    else:
        url = request.getfixturevalue("qdrant_server_url")
        # A prefix per test keeps tests apart on a shared server.
        config = StoreConfig(
            qdrant_url=url,
            api_key=os.environ.get("QDRANT_API_KEY"),
            server_collection_prefix=f"t{uuid.uuid4().hex[:8]}_",
        )

        def factory() -> FaceStore:
            opened.append(ServerFaceStore(config))
            return opened[-1]

    yield factory
    if kind == "server":
        cleanup = opened[-1] if opened else None
        if cleanup is not None:
            for collection in cleanup.list_collections():
                cleanup.delete_collection(collection.name)
            if isinstance(cleanup, ServerFaceStore):  # the test prefix's audit record, on the shared server
                cleanup.audit.drop()
    for store in opened:
        if kind != "qdrant-local":
            store.close()


@pytest.fixture
def store(open_face_store: Callable[[], FaceStore]) -> FaceStore:
    """An open store of the parametrized kind."""
    return open_face_store()


@pytest.fixture
def registry(store: FaceStore) -> Registry:
    """A registry over the parametrized store."""
    return Registry(store)
