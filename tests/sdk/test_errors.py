"""Status code -> exception class, and rich error details (google.rpc.Status) unpacked."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from facerec.sdk import errors
from facerec.sdk.types import PhotoRejection, RejectionReason


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, errors.InvalidArgument),
        (grpc.StatusCode.NOT_FOUND, errors.NotFound),
        (grpc.StatusCode.ALREADY_EXISTS, errors.AlreadyExists),
        (grpc.StatusCode.FAILED_PRECONDITION, errors.FailedPrecondition),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, errors.ResourceExhausted),
        (grpc.StatusCode.UNAVAILABLE, errors.Unavailable),
        (grpc.StatusCode.DEADLINE_EXCEEDED, errors.DeadlineExceeded),
        (grpc.StatusCode.UNAUTHENTICATED, errors.Unauthenticated),
        (grpc.StatusCode.PERMISSION_DENIED, errors.PermissionDenied),
    ],
)
def test_each_status_code_raises_its_own_class(code: grpc.StatusCode, cls: type[errors.FacerecError]):
    error = errors.error_for(code, "message")
    assert type(error) is cls
    assert error.code is code and error.message == "message"


@pytest.mark.parametrize("code", [grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.CANCELLED])
def test_other_codes_raise_the_base_class_with_their_code(code: grpc.StatusCode):
    error = errors.error_for(code, "boom")
    assert type(error) is errors.FacerecError and error.code is code


def packed(detail: error_details_pb2.PreconditionFailure | error_details_pb2.ErrorInfo) -> any_pb2.Any:
    message = any_pb2.Any()
    message.Pack(detail)
    return message


def refused_enrollment() -> status_pb2.Status:
    failure = error_details_pb2.PreconditionFailure(
        violations=[
            error_details_pb2.PreconditionFailure.Violation(
                type="MULTIPLE_FACES", subject="photos[0] team.jpg", description="3 faces found"
            ),
            error_details_pb2.PreconditionFailure.Violation(
                type="FACE_TOO_SMALL", subject="photos[2]", description="face is 31 px, the minimum is 40 px"
            ),
        ]
    )
    info = error_details_pb2.ErrorInfo(reason="PHOTOS_REJECTED", domain="facerec.v1")
    return status_pb2.Status(
        code=code_pb2.FAILED_PRECONDITION,
        message="2 photo(s) cannot be enrolled",
        details=[packed(failure), packed(info)],
    )


def test_rejections_are_parsed_from_the_precondition_failure_of_a_status():
    error = errors.error_from_status(refused_enrollment())
    assert isinstance(error, errors.FailedPrecondition)
    assert error.rejections == (
        PhotoRejection(
            photo_index=0, subject="photos[0] team.jpg", reason=RejectionReason.MULTIPLE_FACES, message="3 faces found"
        ),
        PhotoRejection(
            photo_index=2,
            subject="photos[2]",
            reason=RejectionReason.FACE_TOO_SMALL,
            message="face is 31 px, the minimum is 40 px",
        ),
    )


def test_standard_details_are_unpacked():
    error = errors.error_from_status(refused_enrollment())
    info = [d for d in error.details if isinstance(d, error_details_pb2.ErrorInfo)]
    assert [i.reason for i in info] == ["PHOTOS_REJECTED"]


def test_a_violation_without_photo_index_or_known_reason_is_kept():
    failure = error_details_pb2.PreconditionFailure(
        violations=[
            error_details_pb2.PreconditionFailure.Violation(type="QUOTA", subject="collection", description="full")
        ]
    )
    status = status_pb2.Status(code=code_pb2.FAILED_PRECONDITION, message="refused", details=[packed(failure)])
    (rejection,) = errors.error_from_status(status).rejections  # type: ignore[attr-defined]
    assert rejection == PhotoRejection(
        photo_index=None, subject="collection", reason=RejectionReason.UNSPECIFIED, message="full"
    )


def test_a_failed_precondition_without_details_has_no_rejections():
    error = errors.error_for(grpc.StatusCode.FAILED_PRECONDITION, "collection is being deleted")
    assert isinstance(error, errors.FailedPrecondition) and error.rejections == ()


def test_unknown_detail_types_stay_packed():
    other = any_pb2.Any(type_url="type.googleapis.com/acme.Custom", value=b"\x08\x01")
    status = status_pb2.Status(code=code_pb2.NOT_FOUND, message="gone", details=[other])
    error = errors.error_from_status(status)
    assert isinstance(error, errors.NotFound) and error.details == (other,)


def test_str_names_the_code_and_message():
    assert str(errors.error_for(grpc.StatusCode.NOT_FOUND, "no person 'x'")) == "NOT_FOUND: no person 'x'"
