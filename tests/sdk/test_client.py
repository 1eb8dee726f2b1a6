"""What the clients do on the wire, against a recording gateway double served by a real gRPC server."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import numpy as np
import pytest
from PIL import Image

from facerec.sdk import (
    AppliedThreshold,
    AsyncClient,
    Calibration,
    Client,
    Decision,
    Enrollment,
    FailedPrecondition,
    Frame,
    ImageInput,
    InvalidArgument,
    NotFound,
    Photo,
    RejectionReason,
    ThresholdSource,
    Unavailable,
)
from facerec.sdk.channel import MAX_MESSAGE_BYTES, channel_options, service_config
from facerec.sdk.messages import EnrollmentInput
from tests.sdk.gateway_double import PEOPLE, REJECTED_PERSON, GatewayServer


def test_every_call_carries_the_api_key_as_a_bearer_token(gateway_server: GatewayServer, samples_dir: Path):
    with Client(gateway_server.address, api_key="k-123") as client:
        client.identify(samples_dir / "obama.jpg")
    assert gateway_server.gateway.metadata[0]["authorization"] == "Bearer k-123"


def test_identify_sends_the_image_and_returns_typed_faces(gateway_server: GatewayServer, samples_dir: Path):
    with Client(gateway_server.address) as client:
        result = client.identify(samples_dir / "obama.jpg", collection="staff", top_k=3, threshold=0.5)
    (request,) = gateway_server.gateway.requests["Identify"]
    assert (request.collection, request.top_k, request.threshold) == ("staff", 3, 0.5)  # type: ignore[attr-defined]
    with Image.open(samples_dir / "obama.jpg") as image:
        assert (result.image_size.width, result.image_size.height) == image.size
    assert result.threshold == 0.5
    assert result.faces[0].match is not None and result.faces[0].match.person_id == "obama"


def test_an_unavailable_unary_call_is_retried_by_the_channel(gateway_server: GatewayServer, samples_dir: Path):
    # Larger than gRPC's default per-call retry buffer (256 KiB), past which a call is never retried.
    assert (samples_dir / "obama.jpg").stat().st_size > 256 * 1024
    gateway_server.gateway.failures["Identify"] = [grpc.StatusCode.UNAVAILABLE] * 2
    with Client(gateway_server.address) as client:
        client.identify(samples_dir / "obama.jpg")
    assert gateway_server.gateway.attempts["Identify"] == 3


def test_retries_stop_after_five_attempts(gateway_server: GatewayServer, samples_dir: Path):
    gateway_server.gateway.failures["Identify"] = [grpc.StatusCode.UNAVAILABLE] * 6
    with Client(gateway_server.address) as client, pytest.raises(Unavailable):
        client.identify(samples_dir / "obama.jpg")
    assert gateway_server.gateway.attempts["Identify"] == 5


def test_other_errors_are_not_retried_and_raise_their_class(gateway_server: GatewayServer, samples_dir: Path):
    gateway_server.gateway.failures["Identify"] = [grpc.StatusCode.INVALID_ARGUMENT]
    with Client(gateway_server.address) as client, pytest.raises(InvalidArgument, match="scheduled"):
        client.identify(samples_dir / "obama.jpg")
    assert gateway_server.gateway.attempts["Identify"] == 1


def test_a_refused_enrollment_raises_with_each_photos_rejection(gateway_server: GatewayServer, samples_dir: Path):
    with Client(gateway_server.address) as client, pytest.raises(FailedPrecondition) as raised:
        client.enroll(REJECTED_PERSON, [samples_dir / "obama.jpg", samples_dir / "biden.jpg"])
    assert [(r.photo_index, r.reason) for r in raised.value.rejections] == [
        (0, RejectionReason.NO_FACE),
        (1, RejectionReason.NO_FACE),
    ]


def test_enroll_sends_names_metadata_and_face_selection(gateway_server: GatewayServer, samples_dir: Path):
    pixels = np.zeros((32, 32, 3), np.uint8)
    with Client(gateway_server.address) as client:
        result = client.enroll(
            "obama",
            [samples_dir / "obama.jpg", Photo(pixels, name="frame.png")],
            collection="staff",
            display_name="Barack Obama",
            metadata={"role": "president"},
            face_selection="largest",
        )
    assert [p.photo_name for p in result.photos] == ["obama.jpg", "frame.png"]
    assert result.person.display_name == "Barack Obama" and result.person.metadata == {"role": "president"}
    assert gateway_server.gateway.requests["Enroll"][0].face_selection == 2  # type: ignore[attr-defined]


def test_bulk_enroll_streams_one_request_per_person(gateway_server: GatewayServer, samples_dir: Path):
    enrollments: list[EnrollmentInput] = [
        ("obama", [samples_dir / "obama.jpg", samples_dir / "obama2.jpg"]),
        Enrollment("biden", [samples_dir / "biden.jpg", samples_dir / "32bit.png"], collection="staff"),
    ]
    with Client(gateway_server.address) as client:
        result = client.bulk_enroll(iter(enrollments))
    requests = gateway_server.gateway.requests["BulkEnroll"]
    assert [(r.person_id, r.collection) for r in requests] == [("obama", "default"), ("biden", "staff")]  # type: ignore[attr-defined]
    assert (result.requests, result.photos, result.faces_enrolled, result.people_enrolled) == (2, 4, 3, 2)
    assert result.rejected[0].photo is not None and result.rejected[0].photo.photo_name == "32bit.png"


def test_a_missing_photo_in_a_bulk_stream_raises_file_not_found(gateway_server: GatewayServer, samples_dir: Path):
    enrollments = [("obama", samples_dir / "obama.jpg"), ("ghost", samples_dir / "absent.jpg")]
    with Client(gateway_server.address) as client, pytest.raises(FileNotFoundError):
        client.bulk_enroll(enrollments)


def test_identify_stream_answers_each_frame_in_order(gateway_server: GatewayServer, samples_dir: Path):
    frames: list[ImageInput | Frame] = [
        samples_dir / "obama.jpg",
        Frame(samples_dir / "biden.jpg", frame_id="cam1-0002"),
        samples_dir / "obama2.jpg",
    ]
    with Client(gateway_server.address) as client:
        results = list(client.identify_stream(frames))
    assert [r.frame_id for r in results] == ["0", "cam1-0002", "2"]


def test_iter_people_follows_page_tokens_to_the_end(gateway_server: GatewayServer):
    with Client(gateway_server.address) as client:
        people = list(client.iter_people(collection="staff", page_size=3))
    assert [p.person_id for p in people] == PEOPLE
    assert len(gateway_server.gateway.requests["ListPeople"]) == 3


def test_nothing_listening_raises_unavailable_quickly():
    with Client("127.0.0.1:1", timeout=5) as client, pytest.raises(Unavailable):
        client.list_collections()


def test_channel_retries_only_unavailable_on_unary_methods():
    (method_config,) = service_config()["methodConfig"]
    names = {n["method"] for n in method_config["name"]}
    assert "Identify" in names and "Enroll" in names
    assert not names & {"BulkEnroll", "IdentifyStream"}
    assert method_config["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert method_config["retryPolicy"]["maxAttempts"] == 5
    options = dict(channel_options())
    assert options["grpc.max_send_message_length"] == MAX_MESSAGE_BYTES == 32 * 1024 * 1024
    assert json.loads(options["grpc.service_config"]) == service_config()


# ---------------------------------------------------------------------------------------------- AsyncClient


async def test_async_identify_returns_typed_faces_with_the_api_key(gateway_server: GatewayServer, samples_dir: Path):
    async with AsyncClient(gateway_server.address, api_key="k-9") as client:
        result = await client.identify(samples_dir / "biden.jpg")
    assert result.faces[0].face.box.width == 96
    assert gateway_server.gateway.metadata[0]["authorization"] == "Bearer k-9"


async def test_async_errors_raise_their_class(gateway_server: GatewayServer):
    async with AsyncClient(gateway_server.address) as client:
        with pytest.raises(NotFound, match="no person 'nobody'"):
            await client.get_person("nobody")


async def test_async_unavailable_call_is_retried(gateway_server: GatewayServer, samples_dir: Path):
    gateway_server.gateway.failures["Verify"] = [grpc.StatusCode.UNAVAILABLE]
    async with AsyncClient(gateway_server.address) as client:
        result = await client.verify(samples_dir / "obama.jpg", person=("staff", "obama"))
    assert result.same_person and gateway_server.gateway.attempts["Verify"] == 2


async def test_async_bulk_enroll_takes_an_async_iterable(gateway_server: GatewayServer, samples_dir: Path):
    async def people():
        yield ("obama", [samples_dir / "obama.jpg"])
        yield Enrollment("biden", [samples_dir / "biden.jpg"])

    async with AsyncClient(gateway_server.address) as client:
        result = await client.bulk_enroll(people())
    assert (result.requests, result.people_enrolled) == (2, 2)


async def test_async_bulk_enroll_reports_a_missing_photo(gateway_server: GatewayServer, samples_dir: Path):
    async with AsyncClient(gateway_server.address) as client:
        with pytest.raises(FileNotFoundError):
            await client.bulk_enroll([("ghost", samples_dir / "absent.jpg")])


async def test_async_identify_stream_answers_each_frame(gateway_server: GatewayServer, samples_dir: Path):
    async with AsyncClient(gateway_server.address) as client:
        results = [r async for r in client.identify_stream([samples_dir / "obama.jpg", samples_dir / "biden.jpg"])]
    assert [r.frame_id for r in results] == ["0", "1"]


async def test_async_iter_people_follows_page_tokens(gateway_server: GatewayServer):
    async with AsyncClient(gateway_server.address) as client:
        people = [p async for p in client.iter_people(page_size=4)]
    assert [p.person_id for p in people] == PEOPLE


def test_the_default_timeout_bounds_unary_calls_but_never_a_stream(gateway_server: GatewayServer, samples_dir: Path):
    # A stream's length is the caller's (an import of hours, a camera feed); only an explicit timeout bounds it.
    with Client(gateway_server.address, timeout=5) as client:
        client.bulk_enroll([("obama", samples_dir / "obama.jpg")])
        list(client.identify_stream([samples_dir / "obama.jpg"]))
        client.identify(samples_dir / "obama.jpg")
        client.bulk_enroll([("obama", samples_dir / "obama.jpg")], timeout=7)
    no_deadline = 86400  # the threaded server reports "no deadline" as a huge number of seconds
    bulk, bulk_with_timeout = gateway_server.gateway.time_remaining["BulkEnroll"]
    (stream,) = gateway_server.gateway.time_remaining["IdentifyStream"]
    (unary,) = gateway_server.gateway.time_remaining["Identify"]
    assert bulk is None or bulk > no_deadline
    assert stream is None or stream > no_deadline
    assert unary is not None and unary <= 5.5
    assert bulk_with_timeout is not None and bulk_with_timeout <= 7.5


async def test_async_streams_have_no_deadline_unless_given(gateway_server: GatewayServer, samples_dir: Path):
    async with AsyncClient(gateway_server.address, timeout=5) as client:
        await client.bulk_enroll([("obama", samples_dir / "obama.jpg")])
        [r async for r in client.identify_stream([samples_dir / "obama.jpg"])]
    (bulk,) = gateway_server.gateway.time_remaining["BulkEnroll"]
    (stream,) = gateway_server.gateway.time_remaining["IdentifyStream"]
    assert (bulk is None or bulk > 86400) and (stream is None or stream > 86400)


# ---------------------------------------------------------------------------------------------- decisions


def test_identify_sends_the_minimum_margin_and_reads_the_applied_threshold(
    gateway_server: GatewayServer, samples_dir: Path
):
    with Client(gateway_server.address) as client:
        result = client.identify(samples_dir / "obama.jpg", min_margin=0.05)
        plain = client.identify(samples_dir / "obama.jpg")
    first, second = gateway_server.gateway.requests["Identify"]
    assert first.min_margin == pytest.approx(0.05)  # type: ignore[attr-defined]
    assert not second.HasField("min_margin") and not second.HasField("threshold")  # type: ignore[attr-defined]
    assert result.applied is not None and result.applied.min_margin == pytest.approx(0.05)
    assert plain.applied == AppliedThreshold(
        0.6, ThresholdSource.COLLECTION, reason="0.60: the collection fixed threshold"
    )
    assert result.faces[0].decision is Decision.MATCHED


def test_create_collection_sends_only_the_decision_settings_given(gateway_server: GatewayServer):
    with Client(gateway_server.address) as client:
        client.create_collection("fixed", threshold=0.5, target_fpir=0.0)
        client.create_collection("sized", target_fpir=0.02, min_margin=0.05)
        client.create_collection("defaults")
    fixed, sized, defaults = gateway_server.gateway.requests["CreateCollection"]
    assert fixed.HasField("target_fpir") and fixed.target_fpir == 0.0  # type: ignore[attr-defined]
    assert not fixed.HasField("min_margin")  # type: ignore[attr-defined]
    assert (sized.target_fpir, round(sized.min_margin, 6)) == (0.02, 0.05)  # type: ignore[attr-defined]
    assert not sized.HasField("threshold")  # type: ignore[attr-defined]
    assert not any(defaults.HasField(f) for f in ("threshold", "target_fpir", "min_margin"))  # type: ignore[attr-defined]


def test_update_collection_changes_only_the_settings_given(gateway_server: GatewayServer):
    with Client(gateway_server.address) as client:
        collection = client.update_collection("staff", min_margin=0.06)
        with pytest.raises(ValueError, match="at least one"):
            client.update_collection("staff")
        with pytest.raises(NotFound):
            client.update_collection("nowhere", threshold=0.5)
    request = gateway_server.gateway.requests["UpdateCollection"][0]
    assert request.HasField("min_margin") and not request.HasField("threshold")  # type: ignore[attr-defined]
    assert not request.HasField("target_fpir")  # type: ignore[attr-defined]
    assert (collection.min_margin, collection.target_fpir) == (0.06, 0.01)


def test_calibrate_collection_sends_the_target_and_apply_and_reads_the_calibration(gateway_server: GatewayServer):
    with Client(gateway_server.address) as client:
        calibration = client.calibrate_collection("staff", target_fmr=0.01, apply=True)
    (request,) = gateway_server.gateway.requests["CalibrateCollection"]
    assert (request.name, request.target_fmr, request.apply) == ("staff", 0.01, True)  # type: ignore[attr-defined]
    assert calibration == Calibration(0.55, 0.01, 0.0008, 0.03, 0.01, 0.58, 12, 300, 4, 25, True)


async def test_async_decision_settings_and_calibration(gateway_server: GatewayServer, samples_dir: Path):
    async with AsyncClient(gateway_server.address) as client:
        await client.create_collection("sized", target_fpir=0.02)
        updated = await client.update_collection("staff", threshold=0.55)
        calibration = await client.calibrate_collection("staff")
        result = await client.identify(samples_dir / "obama.jpg", min_margin=0.1)
    assert gateway_server.gateway.requests["CreateCollection"][0].target_fpir == 0.02  # type: ignore[attr-defined]
    assert updated.threshold == 0.55
    assert calibration.target_fmr == 0.001 and not calibration.applied
    assert result.applied is not None and result.applied.min_margin == pytest.approx(0.1)
