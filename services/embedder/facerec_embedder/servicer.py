"""The embedder's gRPC API: bytes in, the pipeline's faces out as messages. Nothing else."""

from __future__ import annotations

from typing import Any

import grpc

from facerec.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from facerec.v1 import face_pb2
from facerec_embedder import model
from facerec_embedder.pipeline import DetectedFace, FacePipeline
from facerec_embedder.runtime import EmbeddingRuntime, chips_from_bytes

Context = grpc.aio.ServicerContext[Any, Any]


class EmbedderServicer(embedder_pb2_grpc.EmbedderServicer):
    def __init__(self, pipeline: FacePipeline, runtime: EmbeddingRuntime) -> None:
        self.pipeline = pipeline
        self.runtime = runtime

    async def EmbedPhoto(
        self, request: embedder_pb2.EmbedPhotoRequest, context: Context
    ) -> embedder_pb2.EmbedPhotoResponse:
        upsample = request.upsample if request.HasField("upsample") else None
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
        embeddings = await self.runtime.embed(chips_from_bytes(list(request.chips)))
        return embedder_pb2.EmbedChipsResponse(
            embeddings=[face_pb2.Embedding(values=row.tolist(), model_id=model.MODEL_ID) for row in embeddings]
        )

    async def GetModel(self, request: embedder_pb2.GetModelRequest, context: Context) -> embedder_pb2.ModelInfo:
        return model_info()


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
