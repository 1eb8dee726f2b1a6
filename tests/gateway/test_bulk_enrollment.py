"""Bulk enrollment over fakes of the embedder and the registry: a wrong request is refused on its own, each
request has its own deadline, and only the call's own deadline ends the stream."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterable

import pytest

from facerec.runtime import errors
from facerec.runtime.deadlines import Deadline
from facerec_gateway.domain import EmbeddedPhoto
from facerec_gateway.enrollment import EnrollRequest, Photo
from facerec_gateway.recognition import FaceRecognition
from tests.gateway.fakes import POLICY, TENANT, FakeEmbedder, FakeRegistry, face, recognition, vector


@pytest.fixture
def embedder() -> FakeEmbedder:
    embedder = FakeEmbedder()
    for i in range(4):
        embedder.shows(f"p{i}".encode(), face(vector(1, i, 0, 0)))
    embedder.shows(b"empty")
    return embedder


@pytest.fixture
def registry() -> FakeRegistry:
    registry = FakeRegistry()
    registry.add_collection("acme__staff")
    return registry


async def stream(requests: Iterable[EnrollRequest]) -> AsyncIterator[EnrollRequest]:
    for request in requests:
        yield request


def person(person_id: str, *images: bytes) -> EnrollRequest:
    return EnrollRequest("staff", person_id, tuple(Photo(i, i.decode()) for i in images))


async def test_every_person_of_the_stream_is_enrolled_and_counted(
    embedder: FakeEmbedder, registry: FakeRegistry
) -> None:
    service = recognition(embedder, registry)
    requests = [person("ann", b"p0", b"p1"), person("bob", b"p2"), person("cid", b"p3")]

    summary = await service.bulk.bulk_enroll(TENANT, stream(requests), Deadline.after(5.0))

    assert (summary.requests, summary.photos, summary.faces_enrolled, summary.people_enrolled) == (3, 4, 4, 3)
    assert summary.rejected == []


async def test_a_wrong_request_is_refused_alone_and_rejected_photos_are_listed(
    embedder: FakeEmbedder, registry: FakeRegistry
) -> None:
    service = recognition(embedder, registry)
    requests = [person("ann", b"p0", b"empty"), person("", b"p1"), person("bob", b"p2")]

    summary = await service.bulk.bulk_enroll(TENANT, stream(requests), Deadline.after(5.0))

    assert (summary.faces_enrolled, summary.people_enrolled) == (2, 2)
    refused = {(r.request_index, r.person_id): r for r in summary.rejected}
    assert refused[(1, "")].error == "person_id is required" and refused[(1, "")].photo is None
    photo = refused[(0, "ann")].photo
    assert photo is not None and photo.photo_name == "empty" and not photo.enrolled


async def test_a_request_that_outlives_its_own_deadline_is_refused_and_the_stream_goes_on(
    embedder: FakeEmbedder, registry: FakeRegistry
) -> None:
    service = recognition(embedder, registry, policy=dataclasses.replace(POLICY, stream_message_timeout_s=0.1))
    embedder.delay_s[b"p1"] = 1.0
    requests = [person("ann", b"p0"), person("slow", b"p1"), person("bob", b"p2")]

    summary = await service.bulk.bulk_enroll(TENANT, stream(requests), Deadline.after(30.0))

    assert summary.people_enrolled == 2
    (late,) = summary.rejected
    assert late.person_id == "slow" and "each request: 0.1 s" in late.error


async def test_the_calls_own_deadline_ends_the_stream(embedder: FakeEmbedder, registry: FakeRegistry) -> None:
    service = recognition(embedder, registry)
    embedder.delay_s[b"p1"] = 1.0

    with pytest.raises(errors.DeadlineExceeded):
        await service.bulk.bulk_enroll(TENANT, stream([person("slow", b"p1")]), Deadline.after(0.1))


async def test_a_missing_collection_stops_the_stream(embedder: FakeEmbedder, registry: FakeRegistry) -> None:
    service = recognition(embedder, registry)
    requests = [dataclasses.replace(person("ann", b"p0"), collection="absent")]

    with pytest.raises(errors.NotFound, match="'absent' does not exist"):
        await service.bulk.bulk_enroll(TENANT, stream(requests), Deadline.after(5.0))


async def test_no_more_photos_than_the_budget_are_embedded_at_once(
    embedder: FakeEmbedder, registry: FakeRegistry
) -> None:
    service: FaceRecognition = recognition(embedder, registry)
    service.bulk.photos_in_flight = 2
    in_flight, most = 0, 0
    embed = embedder.embed_photo

    async def counting(image: bytes, deadline: Deadline, *, detect_only: bool = False) -> EmbeddedPhoto:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            return await embed(image, deadline, detect_only=detect_only)
        finally:
            in_flight -= 1

    embedder.embed_photo = counting  # type: ignore[method-assign]
    for i in range(4):
        embedder.delay_s[f"p{i}".encode()] = 0.02
    requests = [person(f"x{i}", f"p{i}".encode()) for i in range(4)]

    summary = await service.bulk.bulk_enroll(TENANT, stream(requests), Deadline.after(5.0))

    assert summary.faces_enrolled == 4 and most == 2
