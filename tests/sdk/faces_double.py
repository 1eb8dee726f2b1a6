"""A gateway double for the faces of a person and the audit record: one person ("ann", 5 faces, the last
enrolled before quality was stored) and 3 audit events, paged as the gateway pages them; served by a real
(threaded) gRPC server on 127.0.0.1:0. The real RPCs are tested end to end in tests/e2e."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc

from facerec.v1 import audit_pb2, face_pb2, facerec_pb2, facerec_pb2_grpc
from tests.sdk.gateway_double import RecordingGateway

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
FACES = [f"face-{i}" for i in range(5)]


class FacesGateway(RecordingGateway):
    """The double with the faces of one person ("ann", 5 faces, the last enrolled before quality was stored) and
    an audit record of 3 events."""

    def ListFaces(self, request: facerec_pb2.ListFacesRequest, context: grpc.ServicerContext):
        self._record("ListFaces", request, context)
        if request.person_id != "ann":
            context.abort(grpc.StatusCode.NOT_FOUND, f"person {request.person_id!r} has no face")
        start = int(request.page_token or 0)
        end = start + (request.page_size or 100)
        faces = []
        for index, face_id in enumerate(FACES[start:end], start):
            face = facerec_pb2.EnrolledFace(face_id=face_id, person_id="ann", photo_name=f"ann-{index}.jpg")
            face.enrolled_at.FromDatetime(T0 + timedelta(seconds=index))
            if index < len(FACES) - 1:
                face.quality.CopyFrom(face_pb2.FaceQuality(face_size_px=96.5, sharpness=2.25, frontality=0.875))
                face.box.CopyFrom(face_pb2.BoundingBox(x=10, y=20, width=96, height=96))
            faces.append(face)
        return facerec_pb2.ListFacesResponse(faces=faces, next_page_token=str(end) if end < len(FACES) else "")

    def DeleteFace(self, request: facerec_pb2.DeleteFaceRequest, context: grpc.ServicerContext):
        self._record("DeleteFace", request, context)
        if request.face_id not in FACES:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no face {request.face_id!r}")
        return facerec_pb2.DeleteFaceResponse(person_id="ann", faces_left=len(FACES) - 1)

    def MoveFace(self, request: facerec_pb2.MoveFaceRequest, context: grpc.ServicerContext):
        self._record("MoveFace", request, context)
        face = facerec_pb2.EnrolledFace(face_id=request.face_id, person_id=request.to_person_id, photo_name="ann-2.jpg")
        return facerec_pb2.MoveFaceResponse(face=face, from_person_id="ann")

    def ListAuditEvents(self, request: facerec_pb2.ListAuditEventsRequest, context: grpc.ServicerContext):
        self._record("ListAuditEvents", request, context)
        events = [
            audit_pb2.AuditEvent(
                sequence=1, action=audit_pb2.AUDIT_ENROLL, collection="staff", person_id="ann", faces=5,
                request_id="r-1", actor="key:0123456789abcdef",
            ),
            audit_pb2.AuditEvent(
                sequence=2, action=audit_pb2.AUDIT_FACE_MOVE, collection="staff", person_id="bob", face_id="face-2",
                faces=1, request_id="r-2", actor="key:0123456789abcdef", detail="from ann",
            ),
            audit_pb2.AuditEvent(
                sequence=3, action=audit_pb2.AUDIT_RETENTION_PURGE, collection="staff", person_id="bob", faces=1,
                actor="registry:retention",
            ),
        ]  # fmt: skip
        for event in events:
            event.time.FromDatetime(T0 + timedelta(minutes=event.sequence))
        start = int(request.page_token or 0)
        end = start + (request.page_size or 100)
        return facerec_pb2.ListAuditEventsResponse(
            events=events[start:end], next_page_token=str(end) if end < len(events) else ""
        )


@dataclass
class Served:
    """The double and the address a real (threaded) gRPC server serves it on."""

    gateway: FacesGateway
    address: str


@contextlib.contextmanager
def serve() -> Iterator[Served]:
    """The double, served until the block ends."""
    double = FacesGateway()  # type: ignore[abstract]  # the base answers UNIMPLEMENTED for the rest
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    facerec_pb2_grpc.add_FaceRecognitionServicer_to_server(double, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield Served(double, f"127.0.0.1:{port}")
    finally:
        server.stop(grace=None)
