"""Argument parsing of the facerec command line."""

from __future__ import annotations

import pytest

from facerec.cli import commands
from facerec.cli.main import build_parser


def parse(*argv: str):
    return build_parser().parse_args(list(argv))


def test_global_flags_work_before_the_command():
    args = parse("--gateway", "gw:443", "--api-key", "k", "--timeout", "2.5", "--json", "identify", "a.jpg")
    assert (args.gateway, args.api_key, args.timeout, args.json) == ("gw:443", "k", 2.5, True)


def test_global_flags_work_after_the_command_too():
    args = parse("identify", "a.jpg", "--json", "--gateway", "gw:443")
    assert (args.gateway, args.json) == ("gw:443", True)


def test_a_command_without_the_flag_keeps_the_global_value():
    args = parse("--json", "--gateway", "gw:1", "people", "list")
    assert (args.json, args.gateway) == (True, "gw:1")


def test_gateway_and_api_key_default_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FACEREC_GATEWAY", "facerec.internal:50051")
    monkeypatch.setenv("FACEREC_API_KEY", "env-key")
    args = parse("detect", "a.jpg")
    assert (args.gateway, args.api_key) == ("facerec.internal:50051", "env-key")


def test_defaults_without_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("FACEREC_GATEWAY", raising=False)
    monkeypatch.delenv("FACEREC_API_KEY", raising=False)
    args = parse("identify", "a.jpg")
    assert (args.gateway, args.api_key, args.timeout, args.json) == ("127.0.0.1:50051", None, None, False)
    assert (args.collection, args.top_k, args.threshold) == ("default", 0, None)


def test_enroll_takes_several_photos_a_name_metadata_and_largest():
    args = parse(
        "enroll",
        "emp-7",
        "a.jpg",
        "b.jpg",
        "--name",
        "Ada",
        "--meta",
        "team=ml",
        "--meta",
        "site=x=y",
        "--largest",
        "--collection",
        "staff",
    )
    assert (args.person_id, args.photos, args.name, args.largest, args.collection) == (
        "emp-7",
        ["a.jpg", "b.jpg"],
        "Ada",
        True,
        "staff",
    )
    assert args.meta == ["team=ml", "site=x=y"]
    assert commands._metadata(args.meta) == {"team": "ml", "site": "x=y"}
    assert args.handler is commands.enroll


def test_enroll_needs_at_least_one_photo(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as raised:
        parse("enroll", "emp-7")
    assert raised.value.code == 2


def test_metadata_must_be_key_equals_value():
    with pytest.raises(SystemExit) as raised:
        parse("enroll", "emp-7", "a.jpg", "--meta", "no-equals-sign")
    assert raised.value.code == 2


def test_verify_needs_exactly_one_reference():
    assert parse("verify", "a.jpg", "--person", "emp-7").person == "emp-7"
    assert parse("verify", "a.jpg", "--reference", "b.jpg").reference == "b.jpg"
    for argv in (["verify", "a.jpg"], ["verify", "a.jpg", "--person", "p", "--reference", "b.jpg"]):
        with pytest.raises(SystemExit) as raised:
            parse(*argv)
        assert raised.value.code == 2


@pytest.mark.parametrize(
    ("argv", "handler"),
    [
        (["people", "list"], commands.people_list),
        (["people", "show", "p1"], commands.people_show),
        (["people", "delete", "p1"], commands.people_delete),
        (["people", "update", "p1", "--name", "P"], commands.people_update),
        (["collections", "create", "staff", "--threshold", "0.5"], commands.collections_create),
        (["collections", "list"], commands.collections_list),
        (["collections", "show", "staff"], commands.collections_show),
        (["collections", "delete", "staff"], commands.collections_delete),
        (["import", "photos/"], commands.import_folder),
        (["identify", "a.jpg"], commands.identify),
        (["detect", "a.jpg"], commands.detect),
    ],
)
def test_each_command_selects_its_handler(argv: list[str], handler: object):
    assert parse(*argv).handler is handler


def test_collections_create_takes_a_threshold():
    args = parse("collections", "create", "staff", "--threshold", "0.55")
    assert (args.name, args.threshold) == ("staff", 0.55)


def test_people_and_collections_need_an_action():
    for command in ("people", "collections"):
        with pytest.raises(SystemExit) as raised:
            parse(command)
        assert raised.value.code == 2


def test_health_defaults_to_the_whole_server_of_the_gateway():
    args = parse("--gateway", "gw:1", "health")
    assert (args.address, args.service, args.gateway) == (None, "", "gw:1")
    args = parse("health", "--address", "127.0.0.1:50052", "--service", "facerec.embedder.v1.Embedder")
    assert (args.address, args.service) == ("127.0.0.1:50052", "facerec.embedder.v1.Embedder")


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as raised:
        parse("--help")
    assert raised.value.code == 0
    help_text = capsys.readouterr().out
    assert "exit codes:" in help_text and "6  unavailable" in help_text
