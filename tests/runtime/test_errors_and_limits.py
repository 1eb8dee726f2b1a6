"""Domain errors reach the caller with the mapped status code; oversized messages are refused."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from facerec.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from facerec.runtime import errors
from facerec.runtime.server import ServiceRunner
from tests.runtime.conftest import probe_settings
from tests.runtime.probe import FaceNotEnrolled, ProbeApp, precondition_failure

EXPECTED = [
    (errors.InvalidArgument("bad image"), grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound("no such person"), grpc.StatusCode.NOT_FOUND),
    (errors.AlreadyExists("collection exists"), grpc.StatusCode.ALREADY_EXISTS),
    (errors.FailedPrecondition("no face"), grpc.StatusCode.FAILED_PRECONDITION),
    (errors.ResourceExhausted("too many pixels"), grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.Unavailable("Triton is down"), grpc.StatusCode.UNAVAILABLE),
    (errors.DeadlineExceeded("too slow"), grpc.StatusCode.DEADLINE_EXCEEDED),
    (errors.Unauthenticated("no key"), grpc.StatusCode.UNAUTHENTICATED),
    (errors.PermissionDenied("not yours"), grpc.StatusCode.PERMISSION_DENIED),
    (FaceNotEnrolled("person p1 has no face"), grpc.StatusCode.NOT_FOUND),
    (RuntimeError("a bug"), grpc.StatusCode.INTERNAL),
]


@pytest.mark.parametrize(("error", "code"), EXPECTED, ids=[type(e).__name__ for e, _ in EXPECTED])
async def test_domain_error_is_answered_with_its_status_code(probe, error: Exception, code: grpc.StatusCode) -> None:
    app, _runner, channel = probe
    app.raise_error = error
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await embedder_pb2_grpc.EmbedderStub(channel).GetModel(embedder_pb2.GetModelRequest(), timeout=5)
    assert raised.value.code() == code
    if isinstance(error, errors.FacerecError):
        assert raised.value.details() == error.message
    else:
        assert "a bug" not in (raised.value.details() or ""), "internal details must not leak to callers"


async def test_rpc_without_an_implementation_answers_unimplemented(probe) -> None:
    _app, _runner, channel = probe
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await embedder_pb2_grpc.EmbedderStub(channel).EmbedPhoto(embedder_pb2.EmbedPhotoRequest(), timeout=5)
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_error_details_travel_as_a_rich_status(probe) -> None:
    app, _runner, channel = probe
    app.raise_error = errors.FailedPrecondition("photo 0 has no face", [precondition_failure("photo 0", "no face")])
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await embedder_pb2_grpc.EmbedderStub(channel).GetModel(embedder_pb2.GetModelRequest(), timeout=5)
    trailers = dict(raised.value.trailing_metadata() or ())
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    assert status.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    failure = error_details_pb2.PreconditionFailure()
    assert status.details[0].Unpack(failure)
    assert failure.violations[0].subject == "photo 0"


async def test_error_table_covers_every_category() -> None:
    categories = {
        cls for cls in vars(errors).values() if isinstance(cls, type) and issubclass(cls, errors.FacerecError)
    }
    assert categories - {errors.FacerecError} == set(errors.STATUS_CODES)


async def test_message_over_the_size_limit_is_refused_with_resource_exhausted() -> None:
    app = ProbeApp()
    runner = ServiceRunner(app, probe_settings(max_message_bytes=64 * 1024))
    await runner.start()
    try:
        async with grpc.aio.insecure_channel(runner.address) as channel:
            stub = embedder_pb2_grpc.EmbedderStub(channel)
            small = embedder_pb2.EmbedChipsRequest(chips=[b"\0" * 1024])
            await stub.EmbedChips(small, timeout=5)
            large = embedder_pb2.EmbedChipsRequest(chips=[b"\0" * (128 * 1024)])
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.EmbedChips(large, timeout=5)
            assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        await runner.stop(0)


async def test_default_message_limit_is_32_mib() -> None:
    assert probe_settings().max_message_bytes == 32 * 1024 * 1024
