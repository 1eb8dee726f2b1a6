"""Verification (a fixed threshold), detection and people, over fakes of the embedder and the registry."""

from __future__ import annotations

import pytest

from facerec.runtime import errors
from facerec.runtime.deadlines import Deadline
from facerec_gateway.decisions import DEFAULT_TARGET_FPIR
from facerec_gateway.domain import Model, PersonUpdate
from facerec_gateway.errors import DependencyUnavailable, InvalidRequest, NoFaceFound
from facerec_gateway.recognition import FaceRecognition
from facerec_gateway.verification import PersonReference, VerifyRequest
from tests.gateway.fakes import TENANT, FakeEmbedder, FakeRegistry, face, recognition, vector


def deadline() -> Deadline:
    return Deadline.after(5.0)


@pytest.fixture
def embedder() -> FakeEmbedder:
    embedder = FakeEmbedder()
    embedder.shows(b"ann", face(vector(1, 0, 0, 0)))
    embedder.shows(b"ann-again", face(vector(1, 0, 0, 0.3)))
    embedder.shows(b"bob", face(vector(0, 1, 0, 0)))
    embedder.shows(b"empty")
    return embedder


@pytest.fixture
def registry() -> FakeRegistry:
    registry = FakeRegistry()
    # A collection whose identification threshold follows its size: verification still uses its threshold.
    registry.add_collection("acme__staff", threshold=0.5, target_fpir=DEFAULT_TARGET_FPIR)
    registry.add_face("acme__staff", "ann", vector(1, 0, 0, 0.2), face_id="ann-1")
    registry.add_face("acme__staff", "ann", vector(1, 0, 0, 0.9), face_id="ann-2")
    return registry


@pytest.fixture
def service(embedder: FakeEmbedder, registry: FakeRegistry) -> FaceRecognition:
    return recognition(embedder, registry)


async def test_two_photos_of_one_person_are_the_same_person_at_the_default_threshold(service: FaceRecognition) -> None:
    verified = await service.verifier.verify(TENANT, VerifyRequest(b"ann", reference_image=b"ann-again"), deadline())

    assert verified.same_person and verified.threshold == pytest.approx(0.6)
    assert verified.distance == pytest.approx(0.3, abs=1e-6) and verified.similarity == pytest.approx(0.75, abs=1e-6)
    assert verified.probe_face.embedding is None and verified.reference_face is not None


async def test_two_people_are_not_the_same_person(service: FaceRecognition) -> None:
    verified = await service.verifier.verify(TENANT, VerifyRequest(b"ann", reference_image=b"bob"), deadline())

    assert not verified.same_person and verified.similarity < 0.5


async def test_against_an_enrolled_person_the_nearest_face_is_compared_at_the_collections_threshold(
    service: FaceRecognition, registry: FakeRegistry
) -> None:
    request = VerifyRequest(b"ann", person=PersonReference("staff", "ann"))

    verified = await service.verifier.verify(TENANT, request, deadline())

    assert verified.same_person and verified.reference_face_id == "ann-1"
    assert verified.threshold == pytest.approx(0.5)  # the collection's, not one derived from its size
    query = registry.searches[-1]
    assert (query.top_k, query.all_faces, query.person_id) == (1, True, "ann")


async def test_a_person_without_faces_is_not_found(service: FaceRecognition) -> None:
    with pytest.raises(errors.NotFound, match="'nobody' has no enrolled face"):
        await service.verifier.verify(
            TENANT, VerifyRequest(b"ann", person=PersonReference("staff", "nobody")), deadline()
        )


async def test_a_probe_without_a_face_is_a_failed_precondition(service: FaceRecognition) -> None:
    with pytest.raises(NoFaceFound, match="probe photo shows no face"):
        await service.verifier.verify(TENANT, VerifyRequest(b"empty", reference_image=b"ann"), deadline())


async def test_verify_needs_a_reference(service: FaceRecognition) -> None:
    with pytest.raises(InvalidRequest, match="needs a reference"):
        await service.verifier.verify(TENANT, VerifyRequest(b"ann"), deadline())


async def test_detection_leaves_descriptors_out_unless_asked_for(service: FaceRecognition) -> None:
    plain = await service.verifier.detect(b"ann", deadline(), include_embeddings=False)
    full = await service.verifier.detect(b"ann", deadline(), include_embeddings=True)

    assert plain.faces[0].embedding is None and full.faces[0].embedding is not None


async def test_people_are_read_changed_listed_and_erased_under_the_tenants_collection_name(
    service: FaceRecognition, registry: FakeRegistry
) -> None:
    ann = await service.people.get(TENANT, "staff", "ann", deadline())
    renamed = await service.people.update(TENANT, "staff", PersonUpdate("ann", "Ann", {"team": "x"}), deadline())
    page = await service.people.list_page(TENANT, "staff", 0, "", deadline())
    erased = await service.people.delete(TENANT, "staff", "ann", deadline())

    assert (ann.face_count, ann.collection) == (2, "staff")
    assert (renamed.display_name, dict(renamed.metadata), renamed.collection) == ("Ann", {"team": "x"}, "staff")
    assert [p.person_id for p in page.people] == ["ann"] and erased == 2
    with pytest.raises(errors.NotFound):
        await service.people.get(TENANT, "staff", "ann", deadline())


async def test_a_bad_person_id_is_refused(service: FaceRecognition) -> None:
    with pytest.raises(InvalidRequest, match="control characters"):
        await service.people.get(TENANT, "staff", "a\nb", deadline())


class _EmbedderDown(FakeEmbedder):
    """An embedder that has never answered since the gateway started: its model is unknown."""

    async def model(self, deadline: Deadline) -> Model:
        raise DependencyUnavailable("embedder is unavailable")


async def test_people_and_faces_are_read_and_erased_while_the_embedder_has_never_answered(
    registry: FakeRegistry,
) -> None:
    service = recognition(_EmbedderDown(), registry)

    ann = await service.people.get(TENANT, "staff", "ann", deadline())
    page = await service.people.list_page(TENANT, "staff", 0, "", deadline())
    faces = await service.faces.list_page(TENANT, "staff", "ann", 0, "", deadline())
    erased = await service.people.delete(TENANT, "staff", "ann", deadline())

    assert ann.face_count == 2 and [p.person_id for p in page.people] == ["ann"]
    assert len(faces.faces) == 2 and erased == 2
    # What compares new descriptors still needs the embedder's model, and says so.
    with pytest.raises(DependencyUnavailable, match="embedder"):
        await service.verifier.verify(TENANT, VerifyRequest(b"ann", person=PersonReference("staff", "ann")), deadline())
