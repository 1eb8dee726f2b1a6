"""Exit codes of the command line, per error class and for failures the CLI meets for real."""

from __future__ import annotations

import json
import time
from pathlib import Path

import grpc
import pytest

from facerec.cli import exit_codes
from facerec.cli.main import main
from facerec.sdk import ImageInputError, errors


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.NotFound("no person"), 3),
        (errors.FailedPrecondition("refused"), 4),
        (errors.Unauthenticated("no key"), 5),
        (errors.PermissionDenied("not yours"), 5),
        (errors.Unavailable("down"), 6),
        (errors.DeadlineExceeded("slow"), 6),
        (errors.InvalidArgument("bad"), 1),
        (errors.AlreadyExists("exists"), 1),
        (errors.ResourceExhausted("too big"), 1),
        (errors.FacerecError("internal", code=grpc.StatusCode.INTERNAL), 1),
        (FileNotFoundError("a.jpg"), 2),
        (ImageInputError("float array"), 2),
        (RuntimeError("bug"), 1),
    ],
)
def test_each_error_class_has_its_exit_code(error: BaseException, code: int):
    assert exit_codes.exit_code_for(error) == code


def test_nothing_listening_exits_unavailable_quickly(capsys: pytest.CaptureFixture[str]):
    started = time.monotonic()
    assert main(["--gateway", "127.0.0.1:1", "--timeout", "5", "collections", "list"]) == exit_codes.UNAVAILABLE
    assert time.monotonic() - started < 5
    assert "UNAVAILABLE" in capsys.readouterr().err


def test_an_error_with_json_prints_an_error_document(capsys: pytest.CaptureFixture[str]):
    assert main(["--gateway", "127.0.0.1:1", "--json", "people", "show", "p1"]) == exit_codes.UNAVAILABLE
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "UNAVAILABLE"


def test_a_missing_photo_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["--gateway", "127.0.0.1:1", "identify", str(tmp_path / "absent.jpg")]) == exit_codes.USAGE
    assert "absent.jpg" in capsys.readouterr().err


def test_an_argument_error_exits_2():
    with pytest.raises(SystemExit) as raised:
        main(["identify"])
    assert raised.value.code == exit_codes.USAGE
