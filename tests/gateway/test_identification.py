"""Identification over fakes of the embedder and the registry: one identity per photo, the decision and margin
per face, the threshold that applied, and what one identification costs the registry."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from facerec.runtime.deadlines import Deadline
from facerec_gateway.auth import Tenant
from facerec_gateway.decisions import DEFAULT_TARGET_FPIR, Decision, ThresholdSource
from facerec_gateway.domain import Vector
from facerec_gateway.enrollment import EnrollRequest, Photo
from facerec_gateway.errors import CollectionNotAllowed, InvalidRequest
from facerec_gateway.identification import MIN_PEOPLE_SEARCHED, IdentifyRequest
from facerec_gateway.recognition import FaceRecognition
from tests.gateway.fakes import TENANT, Clock, FakeEmbedder, FakeRegistry, face, recognition, vector

STAFF = "acme__staff"
ANN, BOB, CID = vector(1, 0, 0, 0), vector(0, 1, 0, 0), vector(0, 0, 1, 0)


def deadline() -> Deadline:
    return Deadline.after(5.0)


@pytest.fixture
def embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def registry() -> FakeRegistry:
    registry = FakeRegistry()
    registry.add_collection(STAFF, threshold=0.6, target_fpir=0.0)
    for person, descriptor in [("ann", ANN), ("bob", BOB), ("cid", CID)]:
        registry.add_face(STAFF, person, descriptor)
    return registry


@pytest.fixture
def service(embedder: FakeEmbedder, registry: FakeRegistry) -> FaceRecognition:
    return recognition(embedder, registry, clock=Clock())


def near(base: Vector, offset: float) -> Vector:
    """A descriptor ``offset`` away from ``base`` along the last axis (where no person lies)."""
    return base + vector(0, 0, 0, offset)


async def test_each_face_is_its_nearest_person_under_the_threshold(
    service: FaceRecognition, embedder: FakeEmbedder
) -> None:
    photo = embedder.shows(b"two", face(near(ANN, 0.3), x=0), face(near(BOB, 0.4), x=200))

    result = await service.identifier.identify(TENANT, IdentifyRequest("staff", photo), deadline())

    assert [f.decision for f in result.faces] == [Decision.MATCHED, Decision.MATCHED]
    assert [f.match.person_id if f.match else None for f in result.faces] == ["ann", "bob"]
    assert result.faces[0].match is not None and result.faces[0].match.distance == pytest.approx(0.3, abs=1e-6)
    assert result.faces[0].match.similarity == pytest.approx(0.75, abs=1e-6)


async def test_one_identity_per_photo_gives_a_contested_person_to_the_nearer_face(
    service: FaceRecognition, embedder: FakeEmbedder
) -> None:
    photo = embedder.shows(b"twins", face(near(ANN, 0.2), x=0), face(near(ANN, 0.3), x=200))

    result = await service.identifier.identify(TENANT, IdentifyRequest("staff", photo), deadline())

    assert [f.decision for f in result.faces] == [Decision.MATCHED, Decision.UNKNOWN]
    assert result.faces[0].match is not None and result.faces[0].match.person_id == "ann"
    assert result.faces[1].match is None


async def test_a_face_far_from_everyone_is_unknown_with_its_candidates_and_margin(
    service: FaceRecognition, embedder: FakeEmbedder
) -> None:
    photo = embedder.shows(b"stranger", face(vector(0, 0, 0, 1)))

    result = await service.identifier.identify(TENANT, IdentifyRequest("staff", photo, top_k=3), deadline())

    (stranger,) = result.faces
    assert stranger.decision is Decision.UNKNOWN and stranger.match is None
    assert len(stranger.candidates) == 3 and all(c.similarity < 0.5 for c in stranger.candidates)
    assert stranger.margin == pytest.approx(0.0, abs=1e-6)  # equally far from all three


async def test_a_face_too_close_to_two_people_is_ambiguous_under_a_minimum_margin(
    service: FaceRecognition, embedder: FakeEmbedder
) -> None:
    photo = embedder.shows(b"between", face(vector(0.5, 0.5, 0, 0)))  # 0.71 from both ann and bob
    request = IdentifyRequest("staff", photo, threshold=0.8, min_margin=0.2)

    result = await service.identifier.identify(TENANT, request, deadline())

    (unsure,) = result.faces
    assert unsure.decision is Decision.AMBIGUOUS and unsure.match is None
    assert unsure.margin is not None and unsure.margin < 0.2
    assert result.applied.min_margin == pytest.approx(0.2)


async def test_the_margin_needs_two_people_so_two_are_searched_while_top_k_are_returned(
    service: FaceRecognition, embedder: FakeEmbedder, registry: FakeRegistry
) -> None:
    photo = embedder.shows(b"ann", face(near(ANN, 0.3)))

    result = await service.identifier.identify(TENANT, IdentifyRequest("staff", photo, top_k=1), deadline())

    assert registry.searches[-1].top_k == MIN_PEOPLE_SEARCHED
    (ann,) = result.faces
    assert [c.person_id for c in ann.candidates] == ["ann"]
    assert ann.margin is not None and ann.margin > 0.5


async def test_the_request_threshold_overrides_the_collection_and_says_so(
    service: FaceRecognition, embedder: FakeEmbedder
) -> None:
    photo = embedder.shows(b"ann", face(near(ANN, 0.3)))

    result = await service.identifier.identify(TENANT, IdentifyRequest("staff", photo, threshold=0.25), deadline())

    assert result.applied.source is ThresholdSource.REQUEST and result.applied.threshold == pytest.approx(0.25)
    assert result.faces[0].decision is Decision.UNKNOWN


async def test_a_fixed_threshold_collection_decides_with_its_threshold(
    service: FaceRecognition, embedder: FakeEmbedder
) -> None:
    photo = embedder.shows(b"ann", face(near(ANN, 0.3)))

    result = await service.identifier.identify(TENANT, IdentifyRequest("staff", photo), deadline())

    assert result.applied.source is ThresholdSource.COLLECTION and result.applied.threshold == pytest.approx(0.6)


async def test_a_target_fpir_collection_decides_at_the_threshold_of_its_cached_size(
    service: FaceRecognition, embedder: FakeEmbedder, registry: FakeRegistry
) -> None:
    registry.add_collection("acme__big", threshold=0.6, target_fpir=DEFAULT_TARGET_FPIR)
    for i in range(50):
        registry.add_face("acme__big", f"p{i}", vector(1, i / 50, 0, 0))
    photo = embedder.shows(b"ann", face(near(ANN, 0.3)))

    result = await service.identifier.identify(TENANT, IdentifyRequest("big", photo), deadline())

    applied = result.applied
    assert applied.source is ThresholdSource.TARGET_FPIR and applied.gallery_size == 50
    assert applied.target_fpir == pytest.approx(DEFAULT_TARGET_FPIR) and applied.threshold <= 0.6
    assert "50 enrolled people" in applied.reason


async def test_steady_identification_costs_the_registry_one_search(
    service: FaceRecognition, embedder: FakeEmbedder, registry: FakeRegistry
) -> None:
    registry.add_collection("acme__big", target_fpir=DEFAULT_TARGET_FPIR)
    registry.add_face("acme__big", "ann", ANN)
    photo = embedder.shows(b"ann", face(near(ANN, 0.3)))
    await service.identifier.identify(TENANT, IdentifyRequest("big", photo), deadline())
    registry.calls.clear()

    for _ in range(5):
        await service.identifier.identify(TENANT, IdentifyRequest("big", photo), deadline())

    assert registry.calls == ["Search"] * 5


async def test_first_identification_in_the_default_collection_is_get_create_search(
    service: FaceRecognition, embedder: FakeEmbedder, registry: FakeRegistry
) -> None:
    photo = embedder.shows(b"ann", face(near(ANN, 0.3)))

    result = await service.identifier.identify(TENANT, IdentifyRequest("", photo), deadline())

    assert registry.calls == ["GetCollection(settings)", "CreateCollection", "Search"]
    assert result.faces[0].decision is Decision.UNKNOWN  # nobody is enrolled there yet
    assert result.applied.source is ThresholdSource.TARGET_FPIR and result.applied.gallery_size == 0


async def test_the_gallery_size_follows_this_gateways_own_enrollments_and_erasures_at_once(
    service: FaceRecognition, embedder: FakeEmbedder, registry: FakeRegistry
) -> None:
    registry.add_collection("acme__fpir", target_fpir=DEFAULT_TARGET_FPIR)
    registry.add_face("acme__fpir", "ann", ANN)
    probe = embedder.shows(b"probe", face(near(ANN, 0.1)))
    before = await service.identifier.identify(TENANT, IdentifyRequest("fpir", probe), deadline())

    photo = embedder.shows(b"bob", face(BOB))
    await service.enroller.enroll(TENANT, EnrollRequest("fpir", "bob", (Photo(photo),)), deadline())
    after_enrollment = await service.identifier.identify(TENANT, IdentifyRequest("fpir", probe), deadline())
    await service.people.delete(TENANT, "fpir", "bob", deadline())
    after_erasure = await service.identifier.identify(TENANT, IdentifyRequest("fpir", probe), deadline())

    # Within the cache's lifetime (the fake clock never moves), yet each answer counts the people enrolled now.
    sizes = [r.applied.gallery_size for r in (before, after_enrollment, after_erasure)]
    assert sizes == [1, 2, 1]
    assert "2 enrolled people" in after_enrollment.applied.reason


async def test_a_photo_without_a_face_is_not_searched(
    service: FaceRecognition, embedder: FakeEmbedder, registry: FakeRegistry
) -> None:
    photo = embedder.shows(b"empty")

    result = await service.identifier.identify(TENANT, IdentifyRequest("staff", photo), deadline())

    assert result.faces == () and "Search" not in registry.calls
    assert result.applied.threshold == pytest.approx(0.6)


async def test_descriptors_are_left_out_unless_asked_for(service: FaceRecognition, embedder: FakeEmbedder) -> None:
    photo = embedder.shows(b"ann", face(near(ANN, 0.3)))

    plain = await service.identifier.identify(TENANT, IdentifyRequest("staff", photo), deadline())
    full = await service.identifier.identify(
        TENANT, IdentifyRequest("staff", photo, include_embeddings=True), deadline()
    )

    assert plain.faces[0].face.embedding is None and full.faces[0].face.embedding is not None


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (IdentifyRequest("staff", b"x", top_k=101), "top_k"),
        (IdentifyRequest("staff", b"x", threshold=3.0), "threshold"),
        (IdentifyRequest("staff", b"x", min_margin=-0.1), "min_margin"),
        (IdentifyRequest("staff", b""), "image is empty"),
    ],
)
async def test_bad_requests_are_refused_before_any_work(
    service: FaceRecognition, embedder: FakeEmbedder, registry: FakeRegistry, request_: IdentifyRequest, field: str
) -> None:
    with pytest.raises(InvalidRequest, match=field):
        await service.identifier.identify(TENANT, request_, deadline())
    assert embedder.calls == 0 and registry.calls == []


async def test_a_collection_the_key_may_not_use_is_refused_before_any_work(
    service: FaceRecognition, embedder: FakeEmbedder
) -> None:
    photo = embedder.shows(b"ann", face(ANN))

    narrow = Tenant("acme", frozenset({"other"}))

    with pytest.raises(CollectionNotAllowed):
        await service.identifier.identify(narrow, IdentifyRequest("staff", photo), deadline())
    assert embedder.calls == 0


async def test_a_stream_answers_every_frame_in_order(service: FaceRecognition, embedder: FakeEmbedder) -> None:
    embedder.shows(b"ann", face(near(ANN, 0.3)))
    embedder.shows(b"bob", face(near(BOB, 0.3)))
    embedder.delay_s[b"ann"] = 0.05  # the first frame finishes last

    async def frames() -> AsyncIterator[IdentifyRequest]:
        for i, image in enumerate([b"ann", b"bob", b"ann"]):
            yield IdentifyRequest("staff", image, frame_id=str(i))

    answers = [a async for a in service.identifier.identify_stream(TENANT, frames(), Deadline.after(5.0))]

    assert [a.frame_id for a in answers] == ["0", "1", "2"]
    assert [a.faces[0].match.person_id for a in answers if a.faces[0].match] == ["ann", "bob", "ann"]
