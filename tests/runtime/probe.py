"""A service that exists only to exercise the runtime's plumbing (health, errors, request ids, sizes).

It serves the Embedder interface because any generated service will do; its answers are not embeddings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.rpc import error_details_pb2

from facerec.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from facerec.runtime import errors
from facerec.runtime.channels import open_channel
from facerec.runtime.context import request_id
from facerec.runtime.server import ServiceBinding


class FaceNotEnrolled(errors.NotFound):
    """A domain error of the kind a service defines."""


class ProbeServicer(embedder_pb2_grpc.EmbedderServicer):
    def __init__(self, app: ProbeApp) -> None:
        self.app = app

    async def GetModel(self, request: embedder_pb2.GetModelRequest, context: Any) -> embedder_pb2.ModelInfo:
        """Answers with the request id it saw; forwards to `app.forward_to` first when set."""
        self.app.seen_request_ids.append(request_id.get())
        if self.app.unavailable_calls > 0:
            self.app.unavailable_calls -= 1
            raise errors.Unavailable("the probe's own dependency is down")
        if self.app.raise_error is not None:
            raise self.app.raise_error
        if self.app.forward_to:
            channel = open_channel(self.app.forward_to, max_message_bytes=1 << 20)
            async with channel:
                await embedder_pb2_grpc.EmbedderStub(channel).GetModel(request, timeout=5)
        return embedder_pb2.ModelInfo(model_id=request_id.get())

    async def EmbedPhoto(
        self, request: embedder_pb2.EmbedPhotoRequest, context: Any
    ) -> embedder_pb2.EmbedPhotoResponse:
        raise NotImplementedError  # as the generated bases do for RPCs a service does not implement

    async def EmbedChips(
        self, request: embedder_pb2.EmbedChipsRequest, context: Any
    ) -> embedder_pb2.EmbedChipsResponse:
        return embedder_pb2.EmbedChipsResponse()


class ProbeApp:
    name = "probe"

    def __init__(self) -> None:
        self.is_ready = False
        self.seen_request_ids: list[str] = []
        self.raise_error: Exception | None = None
        # This many calls are answered UNAVAILABLE by the service itself (as an embedder whose Triton is down).
        self.unavailable_calls = 0
        self.forward_to = ""
        self.closed = False

    def bindings(self) -> Sequence[ServiceBinding]:
        return [
            ServiceBinding(
                embedder_pb2.DESCRIPTOR.services_by_name["Embedder"],
                ProbeServicer(self),
                embedder_pb2_grpc.add_EmbedderServicer_to_server,
            )
        ]

    async def start(self) -> None:
        return None

    async def ready(self) -> bool:
        return self.is_ready

    async def close(self) -> None:
        self.closed = True


def precondition_failure(subject: str, description: str) -> error_details_pb2.PreconditionFailure:
    failure = error_details_pb2.PreconditionFailure()
    failure.violations.add(type="NO_FACE", subject=subject, description=description)
    return failure
