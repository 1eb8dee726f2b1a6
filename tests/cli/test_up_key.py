"""The local API key of `facerec up`: kept in the data dir (mode 0600), used again, replaced on request."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from facerec.cli.stack import API_KEY_FILE, API_KEYS_FILE, local_api_key
from facerec_gateway.auth import ApiKeys
from facerec_gateway.errors import UnknownApiKey


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def gateway_accepts(data_dir: Path, key: str) -> bool:
    """Whether the gateway, reading the key file `facerec up` gives it, lets ``key`` in as the local tenant."""
    keys = ApiKeys.load(data_dir / API_KEYS_FILE, None)
    try:
        return keys.authenticate([("authorization", f"Bearer {key}")]).id == "local"
    except UnknownApiKey:
        return False


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that would leave new files readable by everyone: the key file must be 0600 anyway."""
    previous = os.umask(0)
    yield
    os.umask(previous)


def test_the_first_run_keeps_the_key_readable_by_its_owner_only(tmp_path: Path, open_umask: None) -> None:
    key = local_api_key(tmp_path)
    assert (tmp_path / API_KEY_FILE).read_text().strip() == key
    assert mode(tmp_path / API_KEY_FILE) == 0o600 and mode(tmp_path / API_KEYS_FILE) == 0o600
    assert key not in (tmp_path / API_KEYS_FILE).read_text()
    assert gateway_accepts(tmp_path, key)


def test_the_next_run_uses_the_same_key(tmp_path: Path) -> None:
    first = local_api_key(tmp_path)
    (tmp_path / API_KEY_FILE).chmod(0o644)
    assert local_api_key(tmp_path) == first
    assert mode(tmp_path / API_KEY_FILE) == 0o600
    assert gateway_accepts(tmp_path, first)


def test_a_new_key_replaces_the_old_one_which_stops_working(tmp_path: Path) -> None:
    old = local_api_key(tmp_path)
    new = local_api_key(tmp_path, new=True)
    assert new != old and (tmp_path / API_KEY_FILE).read_text().strip() == new
    assert gateway_accepts(tmp_path, new) and not gateway_accepts(tmp_path, old)


def test_a_key_file_that_holds_no_key_is_replaced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / API_KEY_FILE).write_text("not a key\n")
    key = local_api_key(tmp_path)
    assert key.startswith("frk_") and gateway_accepts(tmp_path, key)
    assert "holds no valid key" in capsys.readouterr().err
