"""``facerec.v1.Face`` messages and the domain's :class:`Face`, both ways.

The one protobuf type the public API and the embedder share: the embedder's client reads faces with
:func:`face_from_message`, the servicer answers with :func:`face_message`.
"""

from __future__ import annotations

import numpy as np

from facerec.v1 import face_pb2
from facerec_gateway.domain import Box, Embedding, Face, FaceQuality, ImageSize, Landmarks, Point


def _point(message: face_pb2.Point) -> Point:
    return Point(message.x, message.y)


def _point_message(point: Point) -> face_pb2.Point:
    return face_pb2.Point(x=point.x, y=point.y)


def face_from_message(message: face_pb2.Face) -> Face:
    """The domain face of a message; no descriptor when the message carries none."""
    box, quality = message.box, message.quality
    landmarks = None
    if message.HasField("landmarks"):
        marks = message.landmarks
        landmarks = Landmarks(
            _point(marks.left_eye_outer),
            _point(marks.left_eye_inner),
            _point(marks.right_eye_outer),
            _point(marks.right_eye_inner),
            _point(marks.nose_base),
        )
    embedding = None
    if message.embedding.values:
        values = np.asarray(message.embedding.values, dtype=np.float32)
        embedding = Embedding(values, message.embedding.model_id)
    return Face(
        box=Box(box.x, box.y, box.width, box.height),
        landmarks=landmarks,
        detection_score=message.detection_score,
        quality=FaceQuality(quality.face_size_px, quality.interocular_px, quality.sharpness, quality.frontality),
        embedding=embedding,
        index=message.index,
    )


def face_message(face: Face) -> face_pb2.Face:
    """The message of a domain face (with its descriptor when it has one)."""
    quality = face.quality
    message = face_pb2.Face(
        box=face_pb2.BoundingBox(x=face.box.x, y=face.box.y, width=face.box.width, height=face.box.height),
        detection_score=face.detection_score,
        quality=face_pb2.FaceQuality(
            face_size_px=quality.face_size_px,
            interocular_px=quality.interocular_px,
            sharpness=quality.sharpness,
            frontality=quality.frontality,
        ),
        index=face.index,
    )
    if face.landmarks is not None:
        marks = face.landmarks
        message.landmarks.CopyFrom(
            face_pb2.Landmarks(
                left_eye_outer=_point_message(marks.left_eye_outer),
                left_eye_inner=_point_message(marks.left_eye_inner),
                right_eye_outer=_point_message(marks.right_eye_outer),
                right_eye_inner=_point_message(marks.right_eye_inner),
                nose_base=_point_message(marks.nose_base),
            )
        )
    if face.embedding is not None:
        message.embedding.values.extend(face.embedding.values.tolist())
        message.embedding.model_id = face.embedding.model_id
    return message


def image_size_from_message(message: face_pb2.ImageSize) -> ImageSize:
    """The domain size of an ``ImageSize`` message."""
    return ImageSize(message.width, message.height)


def image_size_message(size: ImageSize) -> face_pb2.ImageSize:
    """The message of a domain image size."""
    return face_pb2.ImageSize(width=size.width, height=size.height)
