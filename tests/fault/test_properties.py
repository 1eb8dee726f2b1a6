"""Property-based tests (hypothesis) of every public request message against the real gateway over gRPC.

Hypothesis generates the fields of every RPC of ``facerec.v1.FaceRecognition``: collection names, person ids,
display names, metadata, top_k, thresholds, margins, FPIR and FMR targets, page sizes and tokens, frame ids, face
selections and images (none, random bytes, damaged encodings of every accepted format, headers declaring huge
dimensions, a photo without a face, now and then a real face), under three kinds of caller (a tenant that may use
every collection, one limited to two, and no or a wrong key). Valid values come from small pools, so calls reach
the registry and the embedder too, race on a few collections, and leave the store small.

The promise: no call ends UNKNOWN or INTERNAL, none runs past its deadline (none hangs), and no status is lost on
the way ("Stream removed": a status too large for gRPC's metadata). Target: 0 of at least 10,000 requests
(``FACEREC_FAULT_FULL=1``; CI sends 3,000, see ``tests.fault.scale``). The requests are cheap (small images,
invalid input, people and collection calls) and sent 16 at a time.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facerec.runtime.metrics import REQUESTS
from facerec.v1 import facerec_pb2 as pb
from facerec.v1 import facerec_pb2_grpc
from tests.e2e.photos import faceless
from tests.embedder_domain.test_decoding_properties import FACE_SEEDS, huge, mutated
from tests.fault.scale import scaled
from tests.fixtures.stack import ALPHA_KEY, BETA_KEY, Stack

REQUESTS_WANTED = scaled(ci=3_000, full=10_000)
BATCH = 25
IN_FLIGHT = 16
DEADLINE_S = 20.0
FORBIDDEN = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DEADLINE_EXCEEDED}
# grpcio's asyncio client (grpc/grpc#36066, fix proposed in grpc/grpc#43486) may report a client-streaming call that
# the server ended early (e.g. UNAUTHENTICATED before reading the stream) as INTERNAL "Internal error from Core",
# overwriting the status the server sent. The server's own answers are counted from its metrics instead.
CLIENT_STREAM_ARTIFACT = "Internal error from Core"
CLIENT_STREAMING = {"BulkEnroll", "IdentifyStream", "ClusterFaces"}

# --- field values ----------------------------------------------------------------------------------------

# A few valid collections (raced on by create, delete and every other call), the default one, and bad names.
COLLECTIONS = ["props-a", "props-b", "beta-staff", "default", ""]
PEOPLE = ["ann", "bob", "José García", "名前"]


def repeated(alphabet: st.SearchStrategy[str], most: int) -> st.SearchStrategy[str]:
    """A character repeated up to ``most`` times: long input without generating it character by character."""
    return st.builds(lambda c, n: c * n, alphabet, st.integers(0, most))


# Any character a protobuf string can carry: UTF-8, so no lone surrogate (the client cannot even encode one).
CHARACTERS = st.characters(exclude_categories=["Cs"])
TEXT = st.one_of(
    st.text(CHARACTERS, max_size=80),
    repeated(CHARACTERS, 12_000),
    st.text(alphabet=st.characters(codec="ascii"), max_size=80),
    st.sampled_from(["", " ", "\x00", "a\nb", "\u202e", "../etc", "%s%n", "'\"", "a" * 48, "a" * 49, "a" * 129]),
)
NAMES = st.one_of(st.sampled_from(COLLECTIONS), st.sampled_from(COLLECTIONS), TEXT)
PERSON_IDS = st.one_of(st.sampled_from(PEOPLE), st.sampled_from(PEOPLE), TEXT)
KEYS = st.one_of(st.from_regex(r"[A-Za-z0-9_.-]{1,64}", fullmatch=True), TEXT)
METADATA = st.one_of(
    st.dictionaries(KEYS, st.one_of(TEXT, repeated(CHARACTERS, 3000)), max_size=6),
    st.sampled_from([63, 64, 65, 1000, 20_000]).map(lambda n: {f"k{i}": "v" for i in range(n)}),
)
INT32 = st.one_of(st.integers(-5, 1_100), st.integers(-(2**31), 2**31 - 1))
FLOATS = st.one_of(st.floats(width=32), st.floats(0, 2, width=32), st.sampled_from([0.0, 0.6, 2.0, 2.5, -0.0]))
OPTIONAL_FLOATS = st.one_of(st.none(), FLOATS)
RATES = st.one_of(st.none(), st.floats(), st.floats(0, 0.6), st.sampled_from([0.0, 1e-4, 0.01, 0.5]))


def _token(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


PAGE_TOKENS = st.one_of(
    st.just(""),
    TEXT,
    st.builds(lambda after: _token({"v": 1, "after": after}), PERSON_IDS),
    st.builds(
        _token, st.one_of(st.integers(), st.lists(st.integers()), st.dictionaries(st.text(CHARACTERS), st.integers()))
    ),
)
SMALL_FACELESS = faceless(48, 48)
IMAGES = st.one_of(
    st.just(b""),
    st.just(SMALL_FACELESS),
    st.binary(max_size=256),
    mutated(),
    huge(),
    *([st.sampled_from(sorted(FACE_SEEDS.values()))] if FACE_SEEDS else []),
)
PHOTOS = st.lists(st.builds(pb.Photo, image=IMAGES, name=TEXT), max_size=3)


def _optional(message: Any, **values: object) -> Any:
    """``message`` with the optional fields whose value is not None set."""
    for name, value in values.items():
        if value is not None:
            setattr(message, name, value)
    return message


RETENTIONS = st.one_of(
    st.none(), st.integers(-5, 5), st.sampled_from([3153600000, 3153600001]), st.integers(-(2**63), 2**63 - 1)
)
collection_settings = {
    "threshold": OPTIONAL_FLOATS,
    "target_fpir": RATES,
    "min_margin": OPTIONAL_FLOATS,
    "retention_seconds": RETENTIONS,
}

enroll_requests = st.builds(
    lambda display_name, **fields: _optional(pb.EnrollRequest(**fields), display_name=display_name),
    collection=NAMES,
    person_id=PERSON_IDS,
    display_name=st.one_of(st.none(), TEXT),
    metadata=METADATA,
    photos=PHOTOS,
    face_selection=st.integers(0, 2),
)
identify_requests = st.builds(
    lambda threshold, min_margin, **fields: _optional(
        pb.IdentifyRequest(**fields), threshold=threshold, min_margin=min_margin
    ),
    collection=NAMES,
    image=IMAGES,
    top_k=INT32,
    threshold=OPTIONAL_FLOATS,
    min_margin=OPTIONAL_FLOATS,
    frame_id=TEXT,
    include_embeddings=st.booleans(),
)


def _verify(image: bytes, reference: bytes | pb.PersonReference, threshold: float | None) -> pb.VerifyRequest:
    request = pb.VerifyRequest(image=image)
    if isinstance(reference, bytes):
        request.reference_image = reference
    else:
        request.person.CopyFrom(reference)
    return _optional(request, threshold=threshold)


def _since(seconds: int | None) -> Timestamp | None:
    if seconds is None:
        return None
    return Timestamp(seconds=seconds)


def _audit(since: int | None, **fields: Any) -> pb.ListAuditEventsRequest:
    request = pb.ListAuditEventsRequest(**fields)
    stamp = _since(since)
    if stamp is not None:
        request.since.CopyFrom(stamp)
    return request


def _cluster(options: pb.ClusterOptions | None, photos: list[pb.Photo], options_last: bool) -> list[pb.ClusterRequest]:
    messages = [pb.ClusterRequest(photo=photo) for photo in photos]
    if options is not None:
        first = pb.ClusterRequest(options=options)
        messages = [*messages, first] if options_last else [first, *messages]
    return messages


cluster_requests = st.builds(
    _cluster,
    st.one_of(
        st.none(),
        st.builds(
            pb.ClusterOptions,
            collection=NAMES,
            threshold=FLOATS,
            min_faces=INT32,
            enroll=st.booleans(),
            person_id_prefix=st.one_of(st.just(""), TEXT),
        ),
    ),
    PHOTOS,
    st.booleans(),
)
FACE_IDS = st.one_of(TEXT, st.sampled_from(["", "f" * 64, "0" * 32]))
# Seconds of a Timestamp, inside and outside its valid range (years 1-9999).
SINCE = st.one_of(st.none(), st.integers(-62135596800, 253402300799), st.integers(-(2**63), 2**63 - 1))

verify_requests = st.builds(
    _verify,
    IMAGES,
    st.one_of(IMAGES, st.builds(pb.PersonReference, collection=NAMES, person_id=PERSON_IDS)),
    OPTIONAL_FLOATS,
)


class Call:
    """One generated call: the RPC, its request (a list of them for a stream) and who calls."""

    def __init__(self, method: str, request: Any, caller: tuple[tuple[str, str], ...]) -> None:
        self.method = method
        self.request = request
        self.caller = caller

    def __repr__(self) -> str:  # hypothesis prints failing calls: keep huge fields short
        return f"Call({self.method}, {str(self.request)[:300]!r}, {self.caller})"


ALPHA = (("authorization", f"Bearer {ALPHA_KEY}"),)
BETA = (("x-api-key", BETA_KEY),)
# Mostly a tenant whose calls go deep; now and then one limited to two collections, a wrong key and none.
CALLERS = st.sampled_from([ALPHA] * 6 + [BETA] * 2 + [(("authorization", "Bearer nope"),), ()])

MESSAGES: dict[str, st.SearchStrategy[Any]] = {
    "CreateCollection": st.builds(
        lambda name, model_id, threshold, target_fpir, min_margin, retention_seconds: _optional(
            pb.CreateCollectionRequest(name=name, model_id=model_id),
            threshold=threshold,
            target_fpir=target_fpir,
            min_margin=min_margin,
            retention_seconds=retention_seconds,
        ),
        NAMES,
        st.one_of(st.just(""), TEXT),
        **collection_settings,
    ),
    "GetCollection": st.builds(pb.GetCollectionRequest, name=NAMES),
    "ListCollections": st.just(pb.ListCollectionsRequest()),
    "UpdateCollection": st.builds(
        lambda name, **values: _optional(pb.UpdateCollectionRequest(name=name), **values), NAMES, **collection_settings
    ),
    "DeleteCollection": st.builds(pb.DeleteCollectionRequest, name=NAMES),
    "CalibrateCollection": st.builds(
        pb.CalibrateCollectionRequest, name=NAMES, target_fmr=st.floats(), apply=st.booleans()
    ),
    "Enroll": enroll_requests,
    "BulkEnroll": st.lists(enroll_requests, max_size=3),
    "Identify": identify_requests,
    "IdentifyStream": st.lists(identify_requests, max_size=3),
    "Verify": verify_requests,
    "Detect": st.builds(pb.DetectRequest, image=IMAGES, include_embeddings=st.booleans()),
    "GetPerson": st.builds(pb.GetPersonRequest, collection=NAMES, person_id=PERSON_IDS),
    "ListPeople": st.builds(pb.ListPeopleRequest, collection=NAMES, page_size=INT32, page_token=PAGE_TOKENS),
    "UpdatePerson": st.builds(
        lambda display_name, **fields: _optional(pb.UpdatePersonRequest(**fields), display_name=display_name),
        collection=NAMES,
        person_id=PERSON_IDS,
        display_name=st.one_of(st.none(), TEXT),
        metadata=METADATA,
        replace_metadata=st.booleans(),
    ),
    "DeletePerson": st.builds(pb.DeletePersonRequest, collection=NAMES, person_id=PERSON_IDS),
    "ListFaces": st.builds(
        pb.ListFacesRequest, collection=NAMES, person_id=PERSON_IDS, page_size=INT32, page_token=PAGE_TOKENS
    ),
    "DeleteFace": st.builds(pb.DeleteFaceRequest, collection=NAMES, face_id=FACE_IDS),
    "MoveFace": st.builds(pb.MoveFaceRequest, collection=NAMES, face_id=FACE_IDS, to_person_id=PERSON_IDS),
    "ClusterFaces": cluster_requests,
    "ListAuditEvents": st.builds(
        _audit, SINCE, collection=st.one_of(st.just(""), NAMES), page_size=INT32, page_token=PAGE_TOKENS
    ),
}
# Creating and deleting collections writes store shards: fewer of those, so the store stays small and fast.
WEIGHTS = {"CreateCollection": 1, "DeleteCollection": 1, "CalibrateCollection": 1, "ClusterFaces": 1}


@st.composite
def calls(draw: st.DrawFn) -> Call:
    methods = [m for m in MESSAGES for _ in range(WEIGHTS.get(m, 3))]
    method = draw(st.sampled_from(methods))
    return Call(method, draw(MESSAGES[method]), draw(CALLERS))


# --- running them ----------------------------------------------------------------------------------------


@dataclass
class Tally:
    """Outcomes of every call sent, by status code, and the slowest call."""

    codes: Counter[str] = field(default_factory=Counter)
    slowest_s: float = 0.0
    bad: list[str] = field(default_factory=list)
    client_artifacts: int = 0

    @property
    def requests(self) -> int:
        return sum(self.codes.values())


async def _stream(messages: list[Any]) -> AsyncIterator[Any]:
    for message in messages:
        yield message


async def send(stub: facerec_pb2_grpc.FaceRecognitionStub, call: Call) -> tuple[grpc.StatusCode, str]:
    """The call's final status code and message."""
    method: Callable[..., Any] = getattr(stub, call.method)
    try:
        if call.method in ("IdentifyStream", "ClusterFaces"):
            async for _ in method(_stream(call.request), metadata=call.caller, timeout=DEADLINE_S):
                pass
        elif call.method == "BulkEnroll":
            await method(_stream(call.request), metadata=call.caller, timeout=DEADLINE_S)
        else:
            await method(call.request, metadata=call.caller, timeout=DEADLINE_S)
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


async def send_all(stub: facerec_pb2_grpc.FaceRecognitionStub, batch: list[Call], tally: Tally) -> None:
    limit = asyncio.Semaphore(IN_FLIGHT)

    async def one(call: Call) -> None:
        async with limit:
            started = time.perf_counter()
            code, details = await send(stub, call)
            elapsed = time.perf_counter() - started
        tally.codes[code.name] += 1
        tally.slowest_s = max(tally.slowest_s, elapsed)
        if code == grpc.StatusCode.INTERNAL and details == CLIENT_STREAM_ARTIFACT and call.method in CLIENT_STREAMING:
            tally.client_artifacts += 1
        elif code in FORBIDDEN or "Stream removed" in details:
            tally.bad.append(f"{call!r} -> {code.name}: {details[:300]}")

    await asyncio.gather(*(one(call) for call in batch))


@pytest.fixture(scope="module")
async def gateway(stack: Stack) -> AsyncIterator[facerec_pb2_grpc.FaceRecognitionStub]:
    options = [
        ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ]
    async with grpc.aio.insecure_channel(stack.gateway.address, options=options) as channel:
        stub = facerec_pb2_grpc.FaceRecognitionStub(channel)
        # Something to find: a collection with a person enrolled (when the sample faces are here).
        await stub.CreateCollection(pb.CreateCollectionRequest(name="props-a"), metadata=ALPHA, timeout=30)
        if FACE_SEEDS:
            photo = pb.Photo(image=FACE_SEEDS["face jpeg"], name="face.jpg")
            await stub.Enroll(pb.EnrollRequest(collection="props-a", person_id="ann", photos=[photo]), metadata=ALPHA)
        yield stub


def run_generated(loop: asyncio.AbstractEventLoop, stub: facerec_pb2_grpc.FaceRecognitionStub, tally: Tally) -> None:
    """Hypothesis in this (worker) thread; each batch of generated calls sent on the test's event loop."""
    examples = math.ceil(REQUESTS_WANTED / BATCH) + 20  # a few examples come out invalid (too much data drawn)

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.lists(calls(), min_size=BATCH, max_size=BATCH))
    def batch_ends_without_unknown_or_internal(batch: list[Call]) -> None:
        before = len(tally.bad)
        asyncio.run_coroutine_threadsafe(send_all(stub, batch, tally), loop).result(timeout=DEADLINE_S * BATCH)
        assert len(tally.bad) == before, "\n".join(tally.bad[before:])

    batch_ends_without_unknown_or_internal()


def server_failures() -> int:
    """Calls any service of the in-process stack has answered UNKNOWN or INTERNAL so far (from its metrics)."""
    return int(
        sum(
            sample.value
            for metric in REQUESTS.collect()
            for sample in metric.samples
            if sample.name.endswith("_total") and sample.labels.get("code") in ("UNKNOWN", "INTERNAL")
        )
    )


async def test_no_generated_request_ends_unknown_or_internal_or_hangs(gateway) -> None:
    tally = Tally()
    failures_before = server_failures()
    started = time.perf_counter()

    await asyncio.to_thread(run_generated, asyncio.get_running_loop(), gateway, tally)

    elapsed = time.perf_counter() - started
    answered_badly = server_failures() - failures_before
    print(
        f"\n{tally.requests} generated requests in {elapsed:.1f} s ({tally.requests / elapsed:.0f}/s, {IN_FLIGHT} "
        f"in flight), slowest {tally.slowest_s:.2f} s; by code: {dict(tally.codes.most_common())}; "
        f"UNKNOWN/INTERNAL answered by the services: {answered_badly}; INTERNAL made by grpcio's client on streams "
        f"the server ended early: {tally.client_artifacts}"
    )
    assert tally.bad == []
    assert answered_badly == 0
    assert tally.requests >= REQUESTS_WANTED
    assert tally.slowest_s < DEADLINE_S


def test_every_public_rpc_is_generated() -> None:
    service = pb.DESCRIPTOR.services_by_name["FaceRecognition"]

    assert set(MESSAGES) == {method.name for method in service.methods}
