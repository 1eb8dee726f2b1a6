"""Erasure on every store (the embedded one's index and files: tests/erasure/): once ``delete_person`` returns, no
search, listing or read returns the person, and the others are found as before."""

from __future__ import annotations

import time

import numpy as np
import pytest

from facerec.runtime.errors import NotFound
from facerec_registry.domain import FaceRecord, SearchQuery
from facerec_registry.registry import Registry
from tests.registry.faces import DIMENSION, MODEL_ID, gallery

pytestmark = [
    pytest.mark.filterwarnings("ignore:Local mode performs exact:UserWarning"),
    pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning"),
]

STAFF = "staff"


def _returned(registry: Registry, person: str, vectors: np.ndarray) -> dict[str, bool]:
    def searched(**options: object) -> bool:
        results = registry.search(STAFF, SearchQuery(list(vectors), top_k=10, **options))  # type: ignore[arg-type]
        return any(match.person_id == person for result in results for match in result)

    try:
        registry.get_person(STAFF, person)
        got = True
    except NotFound:
        got = False
    everyone = registry.list_faces(STAFF, page_size=1000).faces
    return {
        "all faces": searched(all_faces=True),
        "one per person": searched(),
        "filtered to the person": searched(person_id=person, all_faces=True),
        "metadata filter": searched(metadata_filter={"cam": "1"}, all_faces=True),
        "ListFaces of the person": bool(registry.list_faces(STAFF, person_id=person).faces),
        "ListFaces of everyone": any(face.person_id == person for face in everyone),
        "ListPeople": person in [p.person_id for p in registry.list_people(STAFF, page_size=1000).people],
        "GetPerson": got,
    }


def test_no_search_or_listing_returns_an_erased_person_once_delete_person_returns(registry: Registry) -> None:
    registry.create_collection(STAFF, MODEL_ID, DIMENSION, 0.6)
    vectors, owners, _ = gallery(40, 5, np.random.default_rng(21))
    registry.upsert_faces(
        STAFF,
        [
            FaceRecord(f"f{i}", f"p{owner}", vector, MODEL_ID, metadata={"cam": "1"})
            for i, (vector, owner) in enumerate(zip(vectors, owners, strict=True))
        ],
    )
    victim, kept = vectors[owners == 3], vectors[owners == 4]
    assert all(_returned(registry, "p3", victim).values())

    assert registry.delete_person(STAFF, "p3") == 5
    returned = time.perf_counter()
    after = _returned(registry, "p3", victim)
    checked_s = time.perf_counter() - returned

    assert not any(after.values()), after
    assert checked_s < 1.0
    assert all(_returned(registry, "p4", kept).values())
    assert (registry.count(STAFF).faces, registry.count(STAFF).people) == (195, 39)
