"""`facerec up` across restarts of the whole stack: the exported key keeps working, --new-key replaces it, and a
part that keeps dying stops the stack with exit code 1 (real stacks, as a user runs them)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from facerec.sdk import Client, Unauthenticated
from tests.fault.test_kill import UpStack, start_up, stop_up

COLLECTION = "restarts"


def identifies_obama(stack: UpStack, key: str, samples_dir: Path) -> bool:
    with Client(stack.gateway, key, timeout=60) as client:
        result = client.identify(samples_dir / "obama2.jpg", collection=COLLECTION)
    return [face.match.person_id for face in result.faces if face.match] == ["obama"]


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.timeout(300)
def test_the_key_survives_a_restart_of_the_stack_until_new_key_replaces_it(tmp_path: Path, samples_dir: Path) -> None:
    data_dir = tmp_path / "data"
    first = start_up(data_dir, tmp_path / "first.stderr")
    try:
        with Client(first.gateway, first.api_key, timeout=60) as client:
            client.create_collection(COLLECTION)
            client.enroll("obama", samples_dir / "obama.jpg", collection=COLLECTION)
    finally:
        assert stop_up(first) == 0
    exported = first.api_key

    second = start_up(data_dir, tmp_path / "second.stderr")
    try:
        assert second.api_key == exported
        assert identifies_obama(second, exported, samples_dir)  # the client that exported it keeps working
    finally:
        assert stop_up(second) == 0

    third = start_up(data_dir, tmp_path / "third.stderr", "--new-key", "--max-restarts", "0")
    try:
        assert third.api_key != exported
        assert identifies_obama(third, third.api_key, samples_dir)
        with Client(third.gateway, exported, timeout=60) as client, pytest.raises(Unauthenticated):
            client.list_collections()
        # No restarts allowed: the first death gives up and stops the whole stack with exit code 1.
        others = [third.part_pid(part) for part in ("triton", "embedder")]
        killed_at = time.monotonic()
        os.kill(third.part_pid("registry"), signal.SIGKILL)
        assert third.process.wait(timeout=60) == 1
        assert not [pid for pid in others if running(pid)], "facerec up left parts running"
        print(f"\nfacerec up gave up and stopped in {time.monotonic() - killed_at:.1f} s")
        assert "registry died 1 time within 60 s (last: exited with signal SIGKILL (exit code -9)); giving up" in (
            third.supervisor_log()
        )
    finally:
        if third.process.poll() is None:
            stop_up(third)
