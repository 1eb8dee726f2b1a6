"""The seam between the registry and its vector store: a small ``FaceStore`` protocol and its settings.

Two stores satisfy it: ``EdgeFaceStore`` (Qdrant Edge embedded in the process, the default on one machine)
and ``ServerFaceStore`` (a Qdrant server or cluster, in production). The ``Registry`` holds the rules
(validation, one result per person, paging); a store only keeps and finds faces.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import NamedTuple, Protocol

from facerec_registry.audit import AuditLog
from facerec_registry.domain import Collection, FaceRecord, PersonAttributes, Vector


@dataclass(frozen=True)
class StoreConfig:
    """How to open the vector store. Without ``qdrant_url`` the embedded Qdrant Edge store is used."""

    data_dir: Path = Path("data/registry")
    qdrant_url: str | None = None
    # gRPC port of the server (the URL names the REST port; with prefer_grpc the client uses this one).
    grpc_port: int = 6334
    api_key: str | None = None
    # None: follow the URL's scheme; True/False force TLS on or off.
    https: bool | None = None
    timeout_s: int = 10
    # Graph degree. Faces come in tight clusters (a person's faces), which a degree of 16 links poorly:
    # measured on face-like data (benchmarks/registry.py), recall@10 people at 1M faces and ef 128 is 0.91
    # with m 16, 0.95 with m 32; at 200k m 32 needs about half the ef of m 16 for 0.99 (index build +10%).
    hnsw_m: int = 32
    hnsw_ef_construct: int = 128
    # Search-time beam widths (Edge searches with at least limit * oversampling candidates), measured with
    # benchmarks/registry.py on face-like data, m 32, 2 cores.
    # Nearest faces (each face counted separately), 1M faces: recall@10 0.98-0.99 at ef 16-20, 0.991-0.993
    # at 24, 0.995-0.999 at 32 (two index builds); the Edge query with the hits' payloads takes about 0.16 /
    # 0.17 / 0.19 ms at ef 20 / 24 / 32. 32 keeps 0.99 with margin.
    hnsw_ef: int = 32
    # One face per person (identification's candidates): the search must get past the query's own person's
    # faces to the nearest strangers, which a graph reaches late. Recall@10 people at 200k faces: 0.983 /
    # 0.993 / 0.996 at ef 128 / 192 / 256; at 1M: 0.949 / 0.983 / 0.990 / 0.995 at ef 128 / 256 / 320 / 384
    # (0.93 / - / 1.0 / 1.15 ms). 384 keeps 0.99 at 1M with some margin. The nearest person is found at any
    # of these (top-1 accuracy 1.0).
    people_hnsw_ef: int = 384
    int8_quantization: bool = True
    # Candidates scored on int8 vectors per result wanted, then rescored on the originals.
    quantization_oversampling: float = 2.0
    shard_number: int = 1
    replication_factor: int = 1
    # Embedded store: build the HNSW index (in a child process) once this many points, or a tenth of the
    # collection if more, are not indexed yet; segments smaller than this are searched exactly.
    optimize_threshold: int = 20_000
    server_collection_prefix: str = "facerec_"

    def search_ef(self, distinct_people: bool) -> int:
        """The beam width of a search: the wider one when the caller keeps one face per person."""
        return self.people_hnsw_ef if distinct_people else self.hnsw_ef


@dataclass(frozen=True)
class StoredFace:
    """A face as the store keeps it: the record plus its person's attributes, copied on every face."""

    face: FaceRecord
    person: PersonAttributes


@dataclass(frozen=True)
class VectorQuery:
    """One nearest-neighbour request, each face counted separately."""

    vector: Vector
    limit: int
    max_distance: float | None = None
    metadata_filter: Mapping[str, str] = field(default_factory=dict)
    # Faces of these people are skipped (used to find further distinct people).
    exclude_people: frozenset[str] = frozenset()
    # When not empty, only faces of this person.
    person_id: str = ""
    # The caller keeps one face per person from the result (searched with the wider ``people_hnsw_ef``).
    distinct_people: bool = False


class ScoredFace(NamedTuple):
    """A stored face and its euclidean distance to a query, nearest first in results.

    A named tuple rather than a frozen dataclass: a search makes tens of these per query, and a tuple is
    made about twice as fast (measured: ~0.5 us less per face, ~20 us of a 40-face search).
    """

    face_id: str
    person_id: str
    distance: float
    display_name: str


@dataclass(frozen=True)
class FaceSummary:
    """A stored face without its descriptor."""

    face_id: str
    person: PersonAttributes


class FaceStore(Protocol):
    """What the registry needs from a vector store. Every write is durable when the call returns.

    ``exclusive``: whether every change to the store's collections goes through this object (one process owns
    the data, as with the embedded store). The registry then keeps collection settings for as long as it
    likes; otherwise (a server shared by replicas) only briefly, since another replica may change them.
    ``audit``: the audit record, kept where the data is (so that replicas sharing a server share one record).
    """

    exclusive: bool

    @property
    def audit(self) -> AuditLog:
        """The store's audit record."""
        ...

    def create_collection(self, collection: Collection) -> Collection:
        """Creates the collection, or returns the existing one of that name unchanged."""
        ...

    def get_collection(self, name: str) -> Collection | None:
        """The collection, or ``None`` when absent."""
        ...

    def list_collections(self) -> list[Collection]:
        """Every collection, in no particular order."""
        ...

    def update_collection(self, collection: Collection) -> Collection | None:
        """Replaces the settings of the collection of that name; returns them, or ``None`` when absent."""
        ...

    def delete_collection(self, name: str) -> int:
        """Deletes a collection and its faces; returns how many faces it held (0 when absent)."""
        ...

    def upsert_faces(self, name: str, faces: Sequence[StoredFace]) -> None:
        """Inserts or replaces faces by face id (idempotent)."""
        ...

    def set_person_attributes(self, name: str, person: PersonAttributes) -> None:
        """Writes the person's attributes onto every face of theirs."""
        ...

    def search(self, name: str, queries: Sequence[VectorQuery]) -> list[list[ScoredFace]]:
        """For each query, the nearest faces (nearest first), answered in order; ``CollectionNotFound`` when the
        collection is gone (the registry may have searched with settings it kept)."""
        ...

    def face(self, name: str, face_id: str) -> FaceRecord | None:
        """The face of that id as stored, with its descriptor; ``None`` when absent."""
        ...

    def delete_face(self, name: str, face_id: str) -> str | None:
        """Deletes one face; returns whose it was, or ``None`` when no face had that id."""
        ...

    def delete_person(self, name: str, person_id: str) -> int:
        """Deletes every face of a person; returns how many there were."""
        ...

    def expired_people(self, name: str, cutoff: datetime, limit: int) -> list[str]:
        """Up to ``limit`` people whose newest face was enrolled before ``cutoff``, ascending.

        Found from the faces enrolled before the cut-off (a range on the indexed enrollment time), then each
        candidate's newer faces: the work grows with the old faces, not with the collection."""
        ...

    def purge_person(self, name: str, person_id: str, cutoff: datetime) -> int:
        """Deletes the person's faces enrolled before ``cutoff`` if they have none since; returns how many
        (0 when they were enrolled again meanwhile, or are gone already)."""
        ...

    def compact(self, name: str) -> bool:
        """Starts rewriting the collection's files without the faces erased since the last rewrite, when there
        are such; returns whether it started (a store whose server does this itself returns ``False``)."""
        ...

    def count_people(self, name: str) -> int:
        """Number of people with at least one face in the collection (cheap at any size)."""
        ...

    def people_after(self, name: str, after: str | None, limit: int) -> list[str]:
        """Up to ``limit`` ids of people with a face, greater than ``after`` (from the first when ``None``),
        ascending: keyset paging that never scans every person."""
        ...

    def faces_of(self, name: str, person_ids: Sequence[str]) -> list[FaceSummary]:
        """Every face of these people (any order)."""
        ...

    def face_records(self, name: str, person_ids: Sequence[str], with_embeddings: bool) -> list[FaceRecord]:
        """Every face of these people as stored (any order), with their descriptors when asked (else empty)."""
        ...

    def count_faces(self, name: str) -> int:
        """Number of faces in the collection (cheap at any size)."""
        ...

    def close(self) -> None:
        """Flushes and releases the store."""
        ...
