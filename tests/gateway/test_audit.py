"""Reading the audit record through the gateway (the tenant's own, under its own collection names) and naming the
caller's key on every downstream call (the actor), over fakes of the registry and a real loopback channel."""

from __future__ import annotations

import asyncio
import contextvars
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from facerec.api_keys import hash_key, key_fingerprint
from facerec.runtime import context
from facerec.runtime.channels import open_channel
from facerec.runtime.deadlines import Deadline
from facerec.v1 import audit_pb2, facerec_pb2
from facerec_gateway.audit import AuditQuery
from facerec_gateway.auth import ApiKeys, Tenant
from facerec_gateway.domain import AuditAction, AuditEvent
from facerec_gateway.errors import CollectionNotAllowed, InvalidRequest
from facerec_gateway.recognition import FaceRecognition
from facerec_gateway.servicer import FaceRecognitionServicer
from tests.gateway.fakes import TENANT, FakeEmbedder, FakeRegistry, recognition

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
ALICE = key_fingerprint("alice-key")


def deadline() -> Deadline:
    return Deadline.after(5.0)


def event(sequence: int, collection: str, action: AuditAction, **fields: Any) -> AuditEvent:
    return AuditEvent(sequence, T0 + timedelta(minutes=sequence), action, collection, **fields)


@pytest.fixture
def registry() -> FakeRegistry:
    registry = FakeRegistry()
    registry.audit = [
        event(1, "acme__staff", AuditAction.COLLECTION_CREATE, actor=ALICE, request_id="r1"),
        event(2, "acme__staff", AuditAction.ENROLL, person_id="ann", faces=3, actor=ALICE, request_id="r2"),
        event(3, "globex__staff", AuditAction.ENROLL, person_id="eve", faces=1),
        event(4, "acme__visitors", AuditAction.ENROLL, person_id="vic", faces=1, actor=ALICE),
        event(5, "acme__staff", AuditAction.FACE_MOVE, person_id="bob", face_id="f3", faces=1, detail="from ann"),
        event(6, "acme__staff", AuditAction.RETENTION_PURGE, person_id="bob", faces=1, actor="registry:retention"),
        event(7, "acme__gone", AuditAction.COLLECTION_DELETE, faces=4, actor=ALICE),
    ]
    return registry


@pytest.fixture
def service(registry: FakeRegistry) -> FaceRecognition:
    return recognition(FakeEmbedder(), registry)


async def test_the_tenant_reads_its_own_record_under_its_own_collection_names(
    service: FaceRecognition, registry: FakeRegistry
) -> None:
    page = await service.audit.list_page(TENANT, AuditQuery(), deadline())

    assert [e.sequence for e in page.events] == [1, 2, 4, 5, 6, 7]
    assert [e.collection for e in page.events] == ["staff", "staff", "visitors", "staff", "staff", "gone"]
    assert page.events[1] == event(
        2, "staff", AuditAction.ENROLL, person_id="ann", faces=3, actor=ALICE, request_id="r2"
    )
    assert registry.audit_queries[-1]["tenant"] == "acme"


async def test_a_collection_filter_names_the_collection_as_the_tenant_does_even_once_deleted(
    service: FaceRecognition, registry: FakeRegistry
) -> None:
    staff = await service.audit.list_page(TENANT, AuditQuery(collection="staff"), deadline())
    gone = await service.audit.list_page(TENANT, AuditQuery(collection="gone"), deadline())

    assert [e.sequence for e in staff.events] == [1, 2, 5, 6]
    assert registry.audit_queries[0]["collection"] == "acme__staff"
    assert [(e.sequence, e.collection, e.action) for e in gone.events] == [(7, "gone", AuditAction.COLLECTION_DELETE)]


async def test_events_since_a_time_and_pages_pass_through(service: FaceRecognition, registry: FakeRegistry) -> None:
    first = await service.audit.list_page(TENANT, AuditQuery(since=T0 + timedelta(minutes=4), page_size=2), deadline())
    rest = await service.audit.list_page(
        TENANT, AuditQuery(since=T0 + timedelta(minutes=4), page_size=2, page_token=first.next_page_token), deadline()
    )

    assert [e.sequence for e in first.events] == [4, 5] and first.next_page_token
    assert [e.sequence for e in rest.events] == [6, 7] and rest.next_page_token == ""
    assert registry.audit_queries[0]["since"] == T0 + timedelta(minutes=4)


async def test_a_key_limited_to_some_collections_sees_only_their_events(service: FaceRecognition) -> None:
    staff_only = Tenant("acme", frozenset({"staff"}))

    page = await service.audit.list_page(staff_only, AuditQuery(), deadline())

    assert {e.collection for e in page.events} == {"staff"}
    with pytest.raises(CollectionNotAllowed):
        await service.audit.list_page(staff_only, AuditQuery(collection="visitors"), deadline())


@pytest.mark.parametrize(
    "query",
    [
        AuditQuery(collection="bad name"),
        AuditQuery(page_size=1001),
        AuditQuery(page_size=-1),
        AuditQuery(page_token="x" * 9000),
    ],
)
async def test_bad_queries_are_invalid(service: FaceRecognition, registry: FakeRegistry, query: AuditQuery) -> None:
    with pytest.raises(InvalidRequest):
        await service.audit.list_page(TENANT, query, deadline())
    assert registry.audit_queries == []


# ------------------------------------------------------------------------------------------ the actor


class _Context:
    def __init__(self, key: str) -> None:
        self._metadata = (("authorization", f"Bearer {key}"),)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def time_remaining(self) -> float:
        return 5.0


def keys(*entries: tuple[str, str]) -> ApiKeys:
    return ApiKeys.from_document(
        {"keys": [{"sha256": hash_key(key), "tenant": tenant, "collections": ["*"]} for key, tenant in entries]}
    )


def test_an_authenticated_call_acts_for_its_keys_fingerprint_never_the_key() -> None:
    known = keys(("alice-key", "acme"), ("bob-key", "acme"))

    def authenticated(key: str) -> tuple[Tenant, str]:
        tenant = known.authenticate([("authorization", f"Bearer {key}")])
        return tenant, context.actor.get()

    alice, alice_actor = contextvars.copy_context().run(authenticated, "alice-key")
    bob, bob_actor = contextvars.copy_context().run(authenticated, "bob-key")

    assert alice_actor == alice.fingerprint == ALICE == f"key:{hash_key('alice-key')[:16]}"
    assert bob_actor == key_fingerprint("bob-key") != alice_actor and alice.id == bob.id
    assert "alice-key" not in alice_actor


async def test_the_audit_rpc_answers_the_record_as_public_messages(service: FaceRecognition) -> None:
    servicer = FaceRecognitionServicer(service, keys(("alice-key", "acme")), default_timeout_s=5.0)
    request = facerec_pb2.ListAuditEventsRequest(collection="staff")
    request.since.FromDatetime(T0 + timedelta(minutes=2))
    ctx: Any = _Context("alice-key")

    response = await servicer.ListAuditEvents(request, ctx)

    assert [e.sequence for e in response.events] == [2, 5, 6] and response.next_page_token == ""
    enroll, move, purge = response.events
    assert (enroll.action, enroll.collection, enroll.person_id, enroll.faces) == (
        audit_pb2.AUDIT_ENROLL,
        "staff",
        "ann",
        3,
    )
    assert (enroll.actor, enroll.request_id) == (ALICE, "r2")
    assert enroll.time.ToDatetime(tzinfo=UTC) == T0 + timedelta(minutes=2)
    assert (move.action, move.face_id, move.detail) == (audit_pb2.AUDIT_FACE_MOVE, "f3", "from ann")
    assert (purge.action, purge.actor) == (audit_pb2.AUDIT_RETENTION_PURGE, "registry:retention")


class _RecordingHealth(health.HealthServicer):
    def __init__(self) -> None:
        super().__init__()
        self.metadata: list[dict[str, str]] = []

    def Check(self, request: health_pb2.HealthCheckRequest, context: Any) -> health_pb2.HealthCheckResponse:
        self.metadata.append({k: str(v) for k, v in context.invocation_metadata()})
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


async def test_every_downstream_call_carries_the_actor_next_to_the_request_id() -> None:
    recorder = _RecordingHealth()
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(recorder, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = open_channel(f"127.0.0.1:{port}", max_message_bytes=1 << 20)
    try:

        async def call(who: str) -> None:
            context.request_id.set("req-1")
            context.actor.set(who)
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)

        await asyncio.create_task(call(ALICE))  # each task in a copy of this context, as each call is served
        await asyncio.create_task(call(""))
    finally:
        await channel.close()
        await server.stop(0)

    assert recorder.metadata[0][context.ACTOR_HEADER] == ALICE
    assert recorder.metadata[0][context.REQUEST_ID_HEADER] == "req-1"
    assert context.ACTOR_HEADER not in recorder.metadata[1], "no actor, no header"
