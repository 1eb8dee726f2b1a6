"""A recording stand-in for the gateway, served by a real gRPC server on 127.0.0.1:0.

Used only for what the SDK does on the wire that the real gateway cannot be made to show on demand: retries
after UNAVAILABLE, rich error details, auth metadata, stream framing and paging. End-to-end behaviour is
tested against the real gateway elsewhere. Responses are derived from the requests (the decoded image's size,
the photos' names), not fixed.
"""

from __future__ import annotations

import io
import threading
from collections import defaultdict
from collections.abc import Iterator
from concurrent import futures

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from PIL import Image

from facerec.v1 import face_pb2, facerec_pb2, facerec_pb2_grpc

REJECTED_PERSON = "rejected-person"
PEOPLE = [f"person-{i:02d}" for i in range(7)]


def face_message(index: int = 0) -> face_pb2.Face:
    return face_pb2.Face(
        box=face_pb2.BoundingBox(x=40 + index, y=30, width=96, height=96),
        landmarks=face_pb2.Landmarks(
            left_eye_outer=face_pb2.Point(x=120.5, y=60.25),
            left_eye_inner=face_pb2.Point(x=100.0, y=61.0),
            right_eye_outer=face_pb2.Point(x=55.5, y=60.0),
            right_eye_inner=face_pb2.Point(x=75.0, y=61.5),
            nose_base=face_pb2.Point(x=88.0, y=95.0),
        ),
        detection_score=1.25,
        quality=face_pb2.FaceQuality(face_size_px=96, interocular_px=52.5, sharpness=310.0, frontality=0.93),
        index=index,
    )


def image_size(data: bytes) -> face_pb2.ImageSize:
    with Image.open(io.BytesIO(data)) as image:
        return face_pb2.ImageSize(width=image.width, height=image.height)


class RecordingGateway(facerec_pb2_grpc.FaceRecognitionServicer):
    """Records every call's metadata and requests; fails the next calls of a method with scheduled codes."""

    def __init__(self) -> None:
        self.metadata: list[dict[str, str]] = []
        self.requests: dict[str, list[object]] = defaultdict(list)
        self.attempts: dict[str, int] = defaultdict(int)
        self.failures: dict[str, list[grpc.StatusCode]] = defaultdict(list)
        self.time_remaining: dict[str, list[float | None]] = defaultdict(list)  # each call's deadline, as received
        self.collections = {"default", "staff"}
        self.bulk_breaks_on: str | None = None  # the person whose BulkEnroll request breaks the stream (UNAVAILABLE)
        self._lock = threading.Lock()

    def _record(self, method: str, request: object, context: grpc.ServicerContext) -> None:
        with self._lock:
            self.metadata.append({key: str(value) for key, value in context.invocation_metadata()})
            self.attempts[method] += 1
            self.time_remaining[method].append(context.time_remaining())
            self.requests[method].append(request)
            failure = self.failures[method].pop(0) if self.failures[method] else None
        if failure is not None:
            context.abort(failure, f"scheduled {failure.name}")

    def Identify(self, request: facerec_pb2.IdentifyRequest, context: grpc.ServicerContext):
        self._record("Identify", request, context)
        return self._identify(request)

    def _identify(self, request: facerec_pb2.IdentifyRequest) -> facerec_pb2.IdentifyResponse:
        candidate = facerec_pb2.Candidate(person_id="obama", distance=0.41, similarity=0.66, face_id="f-1")
        faces = [
            facerec_pb2.IdentifiedFace(
                face=face_message(), candidates=[candidate], match=candidate, decision=facerec_pb2.MATCHED
            )
        ]
        override = request.HasField("threshold")
        threshold = request.threshold if override else 0.6
        source = facerec_pb2.THRESHOLD_SOURCE_REQUEST if override else facerec_pb2.THRESHOLD_SOURCE_COLLECTION
        applied = facerec_pb2.AppliedThreshold(
            threshold=threshold,
            source=source,
            min_margin=request.min_margin if request.HasField("min_margin") else 0.0,
            reason=f"{threshold:.2f}: {'fixed by the request' if override else 'the collection fixed threshold'}",
        )
        return facerec_pb2.IdentifyResponse(
            faces=faces,
            image_size=image_size(request.image),
            threshold=threshold,
            frame_id=request.frame_id,
            applied=applied,
        )

    def IdentifyStream(self, request_iterator: Iterator[facerec_pb2.IdentifyRequest], context: grpc.ServicerContext):
        for request in request_iterator:
            self._record("IdentifyStream", request, context)
            yield self._identify(request)

    def Enroll(self, request: facerec_pb2.EnrollRequest, context: grpc.ServicerContext):
        self._record("Enroll", request, context)
        if request.person_id == REJECTED_PERSON:
            context.abort_with_status(rpc_status.to_status(rejection_status(request)))
        photos = [
            facerec_pb2.PhotoResult(
                photo_index=i, photo_name=p.name, enrolled=True, face_id=f"face-{i}", face=face_message()
            )
            for i, p in enumerate(request.photos)
        ]
        person = facerec_pb2.Person(
            person_id=request.person_id,
            display_name=request.display_name,
            metadata=dict(request.metadata),
            face_count=len(photos),
            face_ids=[p.face_id for p in photos],
            collection=request.collection,
        )
        return facerec_pb2.EnrollResponse(person=person, photos=photos, faces_enrolled=len(photos))

    def BulkEnroll(self, request_iterator: Iterator[facerec_pb2.EnrollRequest], context: grpc.ServicerContext):
        summary = facerec_pb2.BulkEnrollResponse()
        people = set()
        for index, request in enumerate(request_iterator):
            self._record("BulkEnroll", request, context)
            if request.person_id == self.bulk_breaks_on:
                context.abort(grpc.StatusCode.UNAVAILABLE, "the stream broke")
            summary.requests += 1
            summary.photos += len(request.photos)
            for photo_index, photo in enumerate(request.photos):
                if photo.name.endswith(".png"):  # this double "rejects" PNGs, to exercise the summary
                    rejected = summary.rejected.add(person_id=request.person_id, request_index=index)
                    rejected.photo.photo_index = photo_index
                    rejected.photo.photo_name = photo.name
                    rejected.photo.rejections.add(reason=facerec_pb2.NO_FACE, message="no face found")
                else:
                    summary.faces_enrolled += 1
                    people.add(request.person_id)
        summary.people_enrolled = len(people)
        return summary

    def GetCollection(self, request: facerec_pb2.GetCollectionRequest, context: grpc.ServicerContext):
        self._record("GetCollection", request, context)
        if request.name not in self.collections:
            context.abort(grpc.StatusCode.NOT_FOUND, f"collection {request.name!r} does not exist")
        return facerec_pb2.Collection(name=request.name, person_count=len(PEOPLE), face_count=len(PEOPLE))

    def CreateCollection(self, request: facerec_pb2.CreateCollectionRequest, context: grpc.ServicerContext):
        self._record("CreateCollection", request, context)
        self.collections.add(request.name)
        return facerec_pb2.Collection(name=request.name)

    def UpdateCollection(self, request: facerec_pb2.UpdateCollectionRequest, context: grpc.ServicerContext):
        self._record("UpdateCollection", request, context)
        if request.name not in self.collections:
            context.abort(grpc.StatusCode.NOT_FOUND, f"collection {request.name!r} does not exist")
        return facerec_pb2.Collection(
            name=request.name,
            threshold=request.threshold if request.HasField("threshold") else 0.6,
            target_fpir=request.target_fpir if request.HasField("target_fpir") else 0.01,
            min_margin=request.min_margin if request.HasField("min_margin") else 0.04,
        )

    def CalibrateCollection(self, request: facerec_pb2.CalibrateCollectionRequest, context: grpc.ServicerContext):
        self._record("CalibrateCollection", request, context)
        if request.name not in self.collections:
            context.abort(grpc.StatusCode.NOT_FOUND, f"collection {request.name!r} does not exist")
        return facerec_pb2.Calibration(
            threshold=0.55,
            target_fmr=request.target_fmr or 0.001,
            fmr=0.0008,
            fnmr=0.03,
            eer=0.01,
            eer_threshold=0.58,
            genuine_pairs=12,
            impostor_pairs=300,
            people=4,
            faces=25,
            applied=request.apply,
        )

    def ListPeople(self, request: facerec_pb2.ListPeopleRequest, context: grpc.ServicerContext):
        self._record("ListPeople", request, context)
        start = int(request.page_token or 0)
        end = start + (request.page_size or 100)
        people = [
            facerec_pb2.Person(person_id=p, collection=request.collection, face_count=1) for p in PEOPLE[start:end]
        ]
        return facerec_pb2.ListPeopleResponse(people=people, next_page_token=str(end) if end < len(PEOPLE) else "")

    def GetPerson(self, request: facerec_pb2.GetPersonRequest, context: grpc.ServicerContext):
        self._record("GetPerson", request, context)
        context.abort(grpc.StatusCode.NOT_FOUND, f"no person {request.person_id!r} in {request.collection!r}")

    def Detect(self, request: facerec_pb2.DetectRequest, context: grpc.ServicerContext):
        """One face whose descriptor is the photo's first 128 grey pixels / 255; an all-black photo has none."""
        self._record("Detect", request, context)
        with Image.open(io.BytesIO(request.image)) as image:
            pixels = list(image.convert("L").getdata())[:128]
        response = facerec_pb2.DetectResponse(image_size=image_size(request.image))
        if any(pixels):
            face = response.faces.add()
            face.CopyFrom(face_message())
            if request.include_embeddings:
                face.embedding.CopyFrom(face_pb2.Embedding(values=[p / 255 for p in pixels], model_id="double"))
        return response

    def Verify(self, request: facerec_pb2.VerifyRequest, context: grpc.ServicerContext):
        self._record("Verify", request, context)
        return facerec_pb2.VerifyResponse(same_person=True, distance=0.35, similarity=0.71, threshold=0.6)


def rejection_status(request: facerec_pb2.EnrollRequest) -> status_pb2.Status:
    """The status the gateway answers a refused enrollment with: one violation per photo."""
    failure = error_details_pb2.PreconditionFailure()
    for index, photo in enumerate(request.photos):
        failure.violations.add(type="NO_FACE", subject=f"photos[{index}] {photo.name}", description="no face found")
    detail = any_pb2.Any()
    detail.Pack(failure)
    return status_pb2.Status(
        code=code_pb2.FAILED_PRECONDITION, message="1 photo(s) cannot be enrolled", details=[detail]
    )


class GatewayServer:
    """The double served on a free port of 127.0.0.1 by a real (threaded) gRPC server."""

    def __init__(self) -> None:
        # The generated base class answers UNIMPLEMENTED for the methods the double leaves out.
        self.gateway = RecordingGateway()  # type: ignore[abstract]
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        facerec_pb2_grpc.add_FaceRecognitionServicer_to_server(self.gateway, self._server)
        port = self._server.add_insecure_port("127.0.0.1:0")
        self.address = f"127.0.0.1:{port}"

    def __enter__(self) -> GatewayServer:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(grace=None)
