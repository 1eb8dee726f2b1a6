"""`facerec up`'s supervision, on real child processes: restarts with backoff, giving up, stopping."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from facerec.cli.main import build_parser
from facerec.cli.stack import restart_policy
from facerec.cli.supervisor import DeathRecord, GiveUp, PartSupervisor, RestartPolicy, describe_exit

FAST = RestartPolicy(max_restarts=3, window_s=30.0, initial_backoff_s=0.05, max_backoff_s=0.2)


class ScriptPart:
    """A part that runs a small Python program; ``programs`` are run in turn, one per start (the last repeats)."""

    def __init__(self, name: str, programs: list[str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self.programs = programs
        self.starts = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.broken: str | None = None  # what fault() says until the next start
        self.broken_probes = -1  # how many probes see it broken (-1: every one)

    def start(self) -> None:
        program = self.programs[min(self.starts, len(self.programs) - 1)]
        self.starts += 1
        self.broken = None
        self.process = subprocess.Popen([sys.executable, "-c", program])

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def fault(self) -> str | None:
        if self.broken_probes == 0:
            return None
        self.broken_probes -= 1
        return self.broken


RUNS = "import time; time.sleep(60)"


def exits_with(code: int) -> str:
    return f"import sys; sys.exit({code})"


def wait_for(condition: object, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def supervised(part: ScriptPart, policy: RestartPolicy = FAST) -> tuple[PartSupervisor, list[str], list[GiveUp]]:
    lines: list[str] = []
    given_up: list[GiveUp] = []
    part.start()
    supervisor = PartSupervisor(part, policy, given_up.append, report=lines.append, poll_s=0.02, probe_interval_s=0.05)
    supervisor.start()
    return supervisor, lines, given_up


def test_a_part_that_dies_is_started_again_and_the_log_names_it_its_exit_and_the_delay(tmp_path: Path) -> None:
    part = ScriptPart("registry", [exits_with(3), RUNS], tmp_path / "registry.log")
    supervisor, lines, given_up = supervised(part)
    try:
        wait_for(lambda: supervisor.restarts == 1)
        assert part.exit_code() is None and not given_up
        assert lines[0] == (
            "registry exited with exit code 3; restarting it in 0.1 s (death 1 of at most 3 within 30 s)"
        )
        assert lines[1].startswith("registry started again")
    finally:
        supervisor.stop()


def test_a_part_killed_with_sigkill_is_restarted_while_the_others_keep_running(tmp_path: Path) -> None:
    victim = ScriptPart("embedder", [RUNS], tmp_path / "embedder.log")
    bystander = ScriptPart("gateway", [RUNS], tmp_path / "gateway.log")
    (victim_supervisor, lines, _), (bystander_supervisor, _, _) = supervised(victim), supervised(bystander)
    try:
        assert victim.process is not None and bystander.process is not None
        first, other = victim.process.pid, bystander.process.pid
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: victim_supervisor.restarts == 1)
        assert victim.process.pid != first and victim.exit_code() is None
        assert bystander.process.pid == other and bystander.exit_code() is None
        assert "embedder exited with signal SIGKILL (exit code -9)" in lines[0]
    finally:
        victim_supervisor.stop()
        bystander_supervisor.stop()


def test_a_part_that_keeps_dying_is_given_up_after_its_restarts_with_its_last_exit(tmp_path: Path) -> None:
    part = ScriptPart("triton", [exits_with(1)], tmp_path / "triton.log")
    supervisor, lines, given_up = supervised(part)
    try:
        wait_for(lambda: bool(given_up))
        assert part.starts == 1 + FAST.max_restarts
        report = given_up[0]
        assert (report.part, report.last, report.deaths) == ("triton", "exited with exit code 1", FAST.max_restarts + 1)
        assert report.message() == (
            f"triton died 4 times within 30 s (last: exited with exit code 1); giving up on it and stopping the stack; "
            f"see its log {tmp_path / 'triton.log'}"
        )
        assert [line.split(";")[1] for line in lines if "exited" in line] == [
            " restarting it in 0.1 s (death 1 of at most 3 within 30 s)",
            " restarting it in 0.1 s (death 2 of at most 3 within 30 s)",
            " restarting it in 0.2 s (death 3 of at most 3 within 30 s)",
        ]
    finally:
        supervisor.stop()


def test_no_restarts_means_the_first_death_gives_up(tmp_path: Path) -> None:
    part = ScriptPart("registry", [exits_with(2)], tmp_path / "registry.log")
    supervisor, lines, given_up = supervised(part, RestartPolicy(max_restarts=0))
    try:
        wait_for(lambda: bool(given_up))
        assert part.starts == 1 and not lines and given_up[0].deaths == 1
    finally:
        supervisor.stop()


def test_stop_during_the_backoff_starts_nothing_again(tmp_path: Path) -> None:
    slow = RestartPolicy(max_restarts=3, initial_backoff_s=30.0, max_backoff_s=30.0)
    part = ScriptPart("embedder", [exits_with(1), RUNS], tmp_path / "embedder.log")
    supervisor, lines, _ = supervised(part, slow)
    wait_for(lambda: bool(lines))
    started = time.monotonic()
    supervisor.stop()
    assert time.monotonic() - started < 5
    assert part.starts == 1


def test_halt_keeps_a_part_that_exits_from_being_started_again(tmp_path: Path) -> None:
    part = ScriptPart("gateway", [RUNS], tmp_path / "gateway.log")
    supervisor, lines, given_up = supervised(part)
    supervisor.halt()  # what `facerec up` does first on Ctrl-C, which the services receive too
    part.stop()
    time.sleep(0.3)
    assert part.starts == 1 and not lines and not given_up
    supervisor.stop()


def test_backoff_doubles_from_the_first_delay_up_to_the_longest() -> None:
    policy = RestartPolicy(initial_backoff_s=0.5, max_backoff_s=8.0)
    assert [policy.delay_s(n) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_deaths_older_than_the_window_are_forgotten() -> None:
    record = DeathRecord(RestartPolicy(max_restarts=2, window_s=10.0))
    assert [record.record(t) for t in (0.0, 1.0, 2.0)] == [1, 2, 3]
    assert record.gives_up(3)
    assert record.record(11.5) == 2  # the deaths at 0 and 1 s are more than 10 s old
    assert not record.gives_up(2)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"max_restarts": -1}, "max_restarts"),
        ({"window_s": 0}, "window_s"),
        ({"initial_backoff_s": 2.0, "max_backoff_s": 1.0}, "backoffs"),
        ({"multiplier": 0.5}, "multiplier"),
    ],
)
def test_a_policy_out_of_range_is_refused(values: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RestartPolicy(**values)  # type: ignore[arg-type]


def test_exits_are_described_by_code_or_by_signal() -> None:
    assert describe_exit(1) == "exit code 1"
    assert describe_exit(-signal.SIGKILL) == "signal SIGKILL (exit code -9)"


def test_the_flags_of_facerec_up_make_the_policy() -> None:
    args = build_parser().parse_args(
        [
            "up",
            "--max-restarts",
            "2",
            "--restart-window",
            "10",
            "--restart-backoff",
            "0.25",
            "--restart-backoff-max",
            "4",
        ]
    )
    assert restart_policy(args) == RestartPolicy(
        max_restarts=2, window_s=10.0, initial_backoff_s=0.25, max_backoff_s=4.0
    )
    defaults = restart_policy(build_parser().parse_args(["up"]))
    assert defaults == RestartPolicy() and not build_parser().parse_args(["up"]).new_key


def test_stop_of_a_part_that_is_being_started_leaves_nothing_running(tmp_path: Path) -> None:
    gate = threading.Event()

    class SlowStart(ScriptPart):
        def start(self) -> None:
            super().start()
            if self.starts > 1:
                gate.wait(5)  # Triton's start waits for its model like this

    part = SlowStart("triton", [exits_with(1), RUNS], tmp_path / "triton.log")
    supervisor, _, _ = supervised(part)
    wait_for(lambda: part.starts == 2)
    stopper = threading.Thread(target=supervisor.stop)
    stopper.start()
    gate.set()
    stopper.join(10)
    assert part.exit_code() is not None


def test_a_part_that_runs_but_keeps_failing_its_probe_is_stopped_and_started_again(tmp_path: Path) -> None:
    part = ScriptPart("triton", [RUNS], tmp_path / "triton.log")
    supervisor, lines, given_up = supervised(part)
    try:
        assert part.process is not None
        first = part.process
        part.broken = "StatusCode.INTERNAL: Stub process 'face_embedder_0_0' is not healthy"
        wait_for(lambda: supervisor.restarts == 1)
        assert first.poll() is not None and part.exit_code() is None and not given_up
        assert lines[0].startswith(
            "triton could not serve for 3 probes (StatusCode.INTERNAL: Stub process 'face_embedder_0_0' is not "
            "healthy); restarting it in 0.1 s"
        )
    finally:
        supervisor.stop()


def test_a_probe_that_fails_once_restarts_nothing(tmp_path: Path) -> None:
    part = ScriptPart("triton", [RUNS], tmp_path / "triton.log")
    supervisor, lines, _ = supervised(part)
    try:
        part.broken, part.broken_probes = "a blip", 2
        wait_for(lambda: part.broken_probes == 0)
        time.sleep(0.3)  # several good probes
        assert part.starts == 1 and not lines
    finally:
        supervisor.stop()
