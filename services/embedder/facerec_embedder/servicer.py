"""The embedder's gRPC API: bytes in, the pipeline's faces out as messages.

Each work call is first admitted (``Admission``: refused at once with RESOURCE_EXHAUSTED past the in-flight
bound, one for photos and one for chips) and runs with the caller's deadline as the current call's, so its work
is dropped once the caller has given up. A caller that cancels (or whose deadline passes) gets its task
cancelled by gRPC, which cancels the pieces of its work not started yet.
"""

from __future__ import annotations

from typing import Any

import grpc

from facerec.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from facerec.runtime.deadlines import Deadline
from facerec.v1 import face_pb2
from facerec_embedder import model
from facerec_embedder.admission import Admission, call_deadline
from facerec_embedder.pipeline import DetectedFace, FacePipeline
from facerec_embedder.runtime import EmbeddingRuntime, chips_from_bytes

Context = grpc.aio.ServicerContext[Any, Any]


class EmbedderServicer(embedder_pb2_grpc.EmbedderServicer):
    def __init__(
        self, pipeline: FacePipeline, runtime: EmbeddingRuntime, admission: Admission, chip_admission: Admission
    ) -> None:
        self.pipeline = pipeline
        self.runtime = runtime
        self.admission = admission
        self.chip_admission = chip_admission

    async def EmbedPhoto(
        self, request: embedder_pb2.EmbedPhotoRequest, context: Context
    ) -> embedder_pb2.EmbedPhotoResponse:
        upsample = request.upsample if request.HasField("upsample") else None
        with self.admission.admitted(), call_deadline(_deadline_of(context)):
            found = await self.pipeline.analyze(request.image, upsample=upsample, detect_only=request.detect_only)
        response = embedder_pb2.EmbedPhotoResponse(
            faces=[face_message(face, index) for index, face in enumerate(found.faces)],
            image_size=face_pb2.ImageSize(width=found.image_size.width, height=found.image_size.height),
            model_id=model.MODEL_ID,
        )
        if request.include_chips:
            response.chips.extend(face.chip.tobytes() for face in found.faces)
        return response

    async def EmbedChips(
        self, request: embedder_pb2.EmbedChipsRequest, context: Context
    ) -> embedder_pb2.EmbedChipsResponse:
        chips = chips_from_bytes(list(request.chips))
        with self.chip_admission.admitted(), call_deadline(_deadline_of(context)):
            embeddings = await self.runtime.embed(chips)
        return embedder_pb2.EmbedChipsResponse(
            embeddings=[face_pb2.Embedding(values=row.tolist(), model_id=model.MODEL_ID) for row in embeddings]
        )

    async def GetModel(self, request: embedder_pb2.GetModelRequest, context: Context) -> embedder_pb2.ModelInfo:
        return model_info()


def _deadline_of(context: Context) -> Deadline | None:
    remaining = context.time_remaining()
    return None if remaining is None else Deadline.after(remaining)


def model_info() -> embedder_pb2.ModelInfo:
    return embedder_pb2.ModelInfo(
        model_id=model.MODEL_ID,
        dimension=model.EMBEDDING_DIM,
        chip_size=model.CHIP_SIZE,
        default_threshold=model.DEFAULT_THRESHOLD,
    )


def face_message(face: DetectedFace, index: int) -> face_pb2.Face:
    """The contract's ``Face`` for one detected face."""
    points = [face_pb2.Point(x=float(x), y=float(y)) for x, y in face.landmarks.points]
    message = face_pb2.Face(
        box=face_pb2.BoundingBox(x=face.box.x, y=face.box.y, width=face.box.width, height=face.box.height),
        landmarks=face_pb2.Landmarks(
            left_eye_outer=points[0],
            left_eye_inner=points[1],
            right_eye_outer=points[2],
            right_eye_inner=points[3],
            nose_base=points[4],
        ),
        detection_score=face.detection_score,
        quality=face_pb2.FaceQuality(
            face_size_px=face.quality.face_size_px,
            interocular_px=face.quality.interocular_px,
            sharpness=face.quality.sharpness,
            frontality=face.quality.frontality,
        ),
        index=index,
    )
    if face.embedding is not None:
        message.embedding.values.extend(face.embedding.tolist())
        message.embedding.model_id = model.MODEL_ID
    return message
