"""The shared limits (``facerec.limits``), the status layer's caps on messages (``facerec.runtime.errors``) and the
one retry policy (``facerec.retry``)."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from collections.abc import Callable

import pytest
from google.rpc import error_details_pb2, status_pb2

from facerec import limits
from facerec.retry import RETRY_POLICY, SERVICE_RETRY_POLICY, RetryPolicy
from facerec.runtime.channels import RETRY_SERVICE_CONFIG
from facerec.runtime.errors import MAX_STATUS_DETAILS_BYTES, MAX_STATUS_MESSAGE_BYTES, bounded_status, status_message
from facerec.sdk.channel import service_config

# --- names -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "staff", "A-b_9", "9lives", "x" * 48])
def test_public_collection_names_of_1_to_48_characters_pass(name: str) -> None:
    assert limits.check_collection_name(name) == name


@pytest.mark.parametrize("name", ["", "-dash", "_under", "has space", "dot.ted", "x" * 49, "trailing\n", "é"])
def test_malformed_public_collection_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="1-48 characters"):
        limits.check_collection_name(name)


@pytest.mark.parametrize("tenant", ["acme", "a", "team-7", "0" * 32])
def test_tenant_ids_of_lower_case_letters_digits_and_dashes_pass(tenant: str) -> None:
    assert limits.check_tenant_id(tenant) == tenant


@pytest.mark.parametrize("tenant", ["", "Acme", "a_b", "a__b", "-acme", "a" * 33, "acme\n"])
def test_other_tenant_ids_are_refused(tenant: str) -> None:
    with pytest.raises(ValueError, match="tenant id"):
        limits.check_tenant_id(tenant)


def test_the_registry_limit_is_the_longest_tenant_separator_and_collection() -> None:
    longest = limits.registry_collection_name(
        "t" * limits.MAX_TENANT_ID_LENGTH, "c" * limits.MAX_COLLECTION_NAME_LENGTH
    )

    assert len(longest) == limits.MAX_REGISTRY_COLLECTION_NAME_LENGTH == 32 + 2 + 48
    assert limits.check_registry_collection_name(longest) == longest
    with pytest.raises(ValueError, match="1-82 characters"):
        limits.check_registry_collection_name(longest + "c")


@pytest.mark.parametrize("name", ["a", "staff", "acme__staff", "x" * 64, "A-b_9"])
def test_every_registry_name_valid_before_still_passes(name: str) -> None:
    # Before, the registry took 1-64 characters of the same alphabet.
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", name)
    assert limits.check_registry_collection_name(name) == name


@pytest.mark.parametrize("name", ["", "_x", "dot.ted", "has space", "x\n"])
def test_malformed_registry_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        limits.check_registry_collection_name(name)


def test_a_tenants_collection_maps_to_a_registry_name_and_back() -> None:
    registry_name = limits.registry_collection_name("acme", "staff__old")

    assert registry_name == "acme__staff__old"
    assert limits.public_collection_name("acme", registry_name) == "staff__old"


def test_another_tenants_registry_name_has_no_public_name() -> None:
    assert limits.public_collection_name("acme", "acme2__staff") is None
    assert limits.public_collection_name("acme", "beta__acme__staff") is None
    assert limits.public_collection_name("acme", "staff") is None


# --- person ids -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("person_id", ["p", "José García", "名前", "a b-c_d.e@f", "x" * 128])
def test_printable_person_ids_of_1_to_128_characters_pass(person_id: str) -> None:
    assert limits.check_person_id(person_id) == person_id


@pytest.mark.parametrize(
    ("person_id", "message"),
    [
        ("", "person_id is required"),
        ("x" * 129, "129 characters long; the maximum is 128"),
        ("p\x00q", "control characters"),
        ("line\nbreak", "control characters"),
        ("bell\x07", "control characters"),
        ("c1\x85", "control characters"),
        ("zero\u200bwidth", "control characters"),
    ],
)
def test_other_person_ids_are_refused_saying_why(person_id: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        limits.check_person_id(person_id)


# --- people and photos ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "Ann", "José García", "名前", "x" * 256])
def test_display_names_of_up_to_256_printable_characters_pass(name: str) -> None:
    assert limits.check_display_name(name) == name


@pytest.mark.parametrize(
    ("name", "message"), [("x" * 257, "display_name is 257 characters long; the maximum is 256"), ("a\nb", "control")]
)
def test_other_display_names_are_refused_naming_the_field_and_the_limit(name: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        limits.check_display_name(name)


def test_metadata_of_64_entries_with_keys_up_to_64_characters_and_values_up_to_1_kib_passes() -> None:
    metadata = {f"k{i}": "v" * 1024 for i in range(63)} | {"A-z_0.9" + "k" * 57: "é" * 512}

    assert len(metadata) == 64
    assert limits.check_metadata(metadata) == metadata
    assert limits.check_metadata({"team": ""}) == {"team": ""}  # an empty value deletes a key in an update


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({f"k{i}": "v" for i in range(65)}, "metadata has 65 entries; the maximum is 64"),
        ({"": "v"}, "metadata key '' is not 1-64 characters of letters, digits, '_', '.' and '-'"),
        ({"has space": "v"}, "metadata key 'has space' is not 1-64"),
        ({"k" * 65: "v"}, "is not 1-64 characters"),
        ({"naïve": "v"}, "is not 1-64 characters"),
        ({"team": "v" * 1025}, "metadata['team'] is 1025 bytes long (UTF-8); the maximum is 1024"),
        ({"team": "é" * 513}, "metadata['team'] is 1026 bytes long (UTF-8)"),
    ],
    ids=["65 entries", "empty key", "space in key", "65-character key", "non-ASCII key", "1025 bytes", "UTF-8"],
)
def test_other_metadata_is_refused_naming_the_field_and_the_limit(metadata: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        limits.check_metadata(metadata)


def test_photo_names_and_frame_ids_are_bounded_printable_text() -> None:
    assert limits.check_photo_name("x" * 256) == "x" * 256
    assert limits.check_frame_id("") == ""
    with pytest.raises(ValueError, match=re.escape("photos[3].name is 257 characters long; the maximum is 256")):
        limits.check_photo_name("x" * 257, "photos[3].name")
    with pytest.raises(ValueError, match=re.escape("frame_id is 129 characters long; the maximum is 128")):
        limits.check_frame_id("f" * 129)
    with pytest.raises(ValueError, match="control"):
        limits.check_frame_id("f\x00")


def test_an_enrollment_carries_at_most_32_mib_of_photos_and_a_page_token_8192_characters() -> None:
    assert limits.check_enrollment_bytes(32 * 1024 * 1024) == 32 * 1024 * 1024
    with pytest.raises(ValueError, match=r"33,554,433 bytes in all; the maximum is 33,554,432 \(32 MiB\)"):
        limits.check_enrollment_bytes(32 * 1024 * 1024 + 1)
    assert limits.check_page_token("t" * 8192) == "t" * 8192
    with pytest.raises(ValueError, match="page_token is 8193 characters long; the maximum is 8192"):
        limits.check_page_token("t" * 8193)


# --- echo of caller input ---------------------------------------------------------------------------------


def test_short_input_is_quoted_whole() -> None:
    assert limits.quoted("staff") == "'staff'"
    assert limits.quoted("x" * 64) == repr("x" * 64)


def test_long_input_is_quoted_as_a_prefix_with_its_length() -> None:
    assert limits.quoted("x" * 10_000) == repr("x" * 64) + "…(10000 characters)"


def test_a_10000_character_collection_name_gives_a_short_message() -> None:
    message = limits.problem(limits.check_collection_name, "n" * 10_000)

    assert message is not None
    assert len(message) < 250
    assert "…(10000 characters)" in message
    assert "1-48 characters" in message


# --- the status layer's last resort ------------------------------------------------------------------------


def test_a_status_message_within_1_kib_travels_whole() -> None:
    assert status_message("x" * 1024) == "x" * 1024


def test_a_longer_status_message_is_cut_saying_how_much_was_left_out() -> None:
    message = status_message("x" * 10_000)

    assert message.endswith("more characters)")
    assert _percent_encoded(message) <= MAX_STATUS_MESSAGE_BYTES


def test_a_status_message_is_measured_as_grpc_sends_it_percent_encoded() -> None:
    # Each 'é' is two UTF-8 bytes, each sent as %XX: 6 bytes on the wire.
    message = status_message("é" * 400)

    assert len(message) < 400
    assert _percent_encoded(message) <= MAX_STATUS_MESSAGE_BYTES


def test_a_status_whose_details_are_too_large_keeps_its_first_violations() -> None:
    failure = error_details_pb2.PreconditionFailure()
    for i in range(64):
        failure.violations.add(type="FACE_TOO_BLURRY", subject=f"photos[{i}]", description="d" * 200)
    status = status_pb2.Status(code=9, message="m" * 5000)
    status.details.add().Pack(failure)

    bounded = status_pb2.Status.FromString(bounded_status(status))

    assert len(bounded.SerializeToString()) <= MAX_STATUS_DETAILS_BYTES
    kept = error_details_pb2.PreconditionFailure()
    assert bounded.details[0].Unpack(kept)
    assert 0 < len(kept.violations) < 64
    assert [v.subject for v in kept.violations] == [f"photos[{i}]" for i in range(len(kept.violations))]


def test_a_small_status_is_left_as_it_is() -> None:
    status = status_pb2.Status(code=9, message="no face")
    status.details.add().Pack(error_details_pb2.PreconditionFailure())

    assert bounded_status(status) == status.SerializeToString()


def _percent_encoded(message: str) -> int:
    return sum(1 if 0x20 <= b <= 0x7E and b != 0x25 else 3 for b in message.encode())


# --- request sizes ----------------------------------------------------------------------------------------


def test_top_k_defaults_to_5_and_is_at_most_100() -> None:
    assert limits.top_k_or_default(0) == limits.DEFAULT_TOP_K == 5
    assert limits.top_k_or_default(100) == 100
    for bad in (-1, 101):
        with pytest.raises(ValueError, match=r"1-100 \(0 means 5\)"):
            limits.top_k_or_default(bad)


def test_top_k_without_a_default_refuses_0() -> None:
    assert limits.check_top_k(1) == 1
    for bad in (0, 101):
        with pytest.raises(ValueError, match="top_k"):
            limits.check_top_k(bad)


def test_page_size_defaults_to_100_and_is_at_most_1000() -> None:
    assert limits.page_size_or_default(0) == 100
    assert limits.page_size_or_default(1000) == 1000
    for bad in (-1, 1001):
        with pytest.raises(ValueError, match=r"1-1000 \(0 means 100\)"):
            limits.page_size_or_default(bad)


def test_a_search_takes_1_to_256_queries() -> None:
    assert limits.check_query_count(256) == 256
    for bad in (0, 257):
        with pytest.raises(ValueError, match="1-256"):
            limits.check_query_count(bad)


def test_an_enrollment_takes_1_to_64_photos() -> None:
    assert limits.check_photo_count(64) == 64
    with pytest.raises(ValueError, match="at least one"):
        limits.check_photo_count(0)
    with pytest.raises(ValueError, match="65 photos in one enrollment; the maximum is 64"):
        limits.check_photo_count(65)


# --- decision settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("check", "good", "bad"),
    [
        (limits.check_threshold, [1e-6, 0.6, 2.0], [0.0, -0.1, 2.0001, math.nan, math.inf]),
        (limits.check_target_fpir, [0.0, 1e-4, 0.01, 0.5], [-1e-9, 0.5001, 1.0, math.nan]),
        (limits.check_min_margin, [0.0, 0.05, 1.0], [-0.01, 1.01, math.nan, math.inf]),
    ],
    ids=["threshold (0, 2]", "target_fpir 0 or (0, 0.5]", "min_margin [0, 1]"],
)
def test_decision_settings_are_range_checked(
    check: Callable[[float], float], good: list[float], bad: list[float]
) -> None:
    for value in good:
        assert check(value) == value
    for value in bad:
        with pytest.raises(ValueError, match="out of range"):
            check(value)


def test_target_fmr_defaults_to_a_thousandth_and_is_at_most_a_half() -> None:
    assert limits.target_fmr_or_default(0) == limits.DEFAULT_TARGET_FMR == 0.001
    assert limits.target_fmr_or_default(0.5) == 0.5
    for bad in (-0.1, 0.51, math.nan):
        with pytest.raises(ValueError, match=r"\(0, 0.5\]"):
            limits.target_fmr_or_default(bad)


def test_problem_gives_the_message_instead_of_raising() -> None:
    assert limits.problem(limits.check_threshold, 0.6) is None
    assert limits.problem(limits.check_threshold, 3.0) == "threshold 3.0 is out of range: it must be in (0, 2]"


def test_limits_and_retry_import_nothing_beyond_the_standard_library() -> None:
    # The light client install has neither numpy nor grpc: these modules must load without them.
    code = (
        "import sys; import facerec.limits, facerec.retry; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'numpy', 'grpc', 'google', 'pydantic'}))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


# --- retries ----------------------------------------------------------------------------------------------


def test_the_sdk_channel_retries_with_the_one_policy() -> None:
    (method_config,) = service_config()["methodConfig"]

    assert method_config["retryPolicy"] == RETRY_POLICY.as_grpc()
    assert method_config["retryPolicy"] == {
        "maxAttempts": 5,
        "initialBackoff": "0.1s",
        "maxBackoff": "2s",
        "backoffMultiplier": 2.0,
        "retryableStatusCodes": ["UNAVAILABLE"],
    }


def test_service_channels_retry_the_same_codes_and_attempts_with_half_the_waits() -> None:
    (method_config,) = RETRY_SERVICE_CONFIG["methodConfig"]
    policy = method_config["retryPolicy"]

    assert method_config["name"] == [{}]
    assert policy == SERVICE_RETRY_POLICY.as_grpc()
    assert (policy["maxAttempts"], policy["retryableStatusCodes"]) == (5, ["UNAVAILABLE"])
    assert (policy["initialBackoff"], policy["maxBackoff"]) == ("0.05s", "1s")
    assert SERVICE_RETRY_POLICY.worst_case_wait_s() == pytest.approx(RETRY_POLICY.worst_case_wait_s() / 2)
    assert RETRY_POLICY.worst_case_wait_s() == pytest.approx(0.1 + 0.2 + 0.4 + 0.8)


def test_a_service_config_is_valid_json_for_grpc() -> None:
    config = RETRY_POLICY.service_config([("facerec.v1.FaceRecognition", "Identify")])

    assert json.loads(json.dumps(config)) == config
    assert config["methodConfig"][0]["name"] == [{"service": "facerec.v1.FaceRecognition", "method": "Identify"}]


@pytest.mark.parametrize(
    "arguments",
    [{"max_attempts": 6}, {"max_attempts": 1}, {"initial_backoff_s": 0}, {"initial_backoff_s": 3.0}, {"multiplier": 0}],
)
def test_policies_grpc_would_refuse_are_refused(arguments: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**arguments)  # type: ignore[arg-type]


def test_a_timestamp_is_a_time_only_within_what_protobuf_allows() -> None:
    from datetime import UTC, datetime

    from google.protobuf.timestamp_pb2 import Timestamp

    assert limits.check_timestamp(0, 500_000, "since") == datetime(1970, 1, 1, 0, 0, 0, 500, tzinfo=UTC)
    for seconds in (limits.MIN_TIMESTAMP_SECONDS, limits.MAX_TIMESTAMP_SECONDS):
        stamp = Timestamp(seconds=seconds)
        assert limits.check_timestamp(seconds, 0, "since") == stamp.ToDatetime(tzinfo=UTC)
    for seconds, nanos in ((limits.MIN_TIMESTAMP_SECONDS - 1, 0), (limits.MAX_TIMESTAMP_SECONDS + 1, 0), (0, -1)):
        with pytest.raises(ValueError, match=r"since .* is not a valid time"):
            limits.check_timestamp(seconds, nanos, "since")
