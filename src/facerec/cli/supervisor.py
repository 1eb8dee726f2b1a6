"""Supervision of the parts of ``facerec up``: a part that dies is restarted with exponential backoff.

One thread per part waits for it to exit. When it does (kill -9, a crash, an exit of its own), or when it runs
but fails ``faults_before_restart`` probes in a row (:meth:`Part.fault`: Triton whose model no longer answers),
the thread logs the part's name, how it ended and the delay before the next start, waits, and starts it again;
the other parts keep running meanwhile, and their clients reconnect by themselves. A part that keeps dying
(more than ``max_restarts`` deaths within ``window_s`` seconds) is given up on: the supervisor reports it once
and the stack stops with a non-zero exit, rather than restarting a broken part for ever.

Standard library only: the client CLI imports this module (through ``facerec.cli.stack``) at start-up.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class PartStartError(RuntimeError):
    """A part could not be started, or did not become ready in time (the message says why)."""


class Part(Protocol):
    """One process of the stack, as the supervisor sees it."""

    name: str
    log_path: Path

    def start(self) -> None:
        """Start it; return once it runs (Triton: once its model is ready). Raises :class:`PartStartError`."""
        ...

    def exit_code(self) -> int | None:
        """None while it runs; its exit status once it has exited (negative: killed by that signal)."""
        ...

    def stop(self) -> None:
        """Stop it (gracefully, then by force) and release what it holds; harmless when it has already exited."""
        ...

    def fault(self) -> str | None:
        """Why it cannot serve although it runs (None: nothing known to be wrong). Probed every few seconds."""
        ...


@dataclass(frozen=True)
class RestartPolicy:
    """When a dead part is started again.

    The n-th death within ``window_s`` seconds waits ``initial_backoff_s * multiplier**(n - 1)`` seconds (at
    most ``max_backoff_s``) before the restart; the ``max_restarts + 1``-th death within the window gives up.
    Deaths older than the window are forgotten, so a part that ran well for a while starts again quickly.
    ``max_restarts=0`` never restarts: the first death stops the stack.
    """

    max_restarts: int = 5
    window_s: float = 60.0
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.max_restarts < 0:
            raise ValueError(f"max_restarts must be >= 0, got {self.max_restarts}")
        if self.window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {self.window_s}")
        if not 0 <= self.initial_backoff_s <= self.max_backoff_s:
            raise ValueError("backoffs must satisfy 0 <= initial_backoff_s <= max_backoff_s")
        if self.multiplier < 1:
            raise ValueError(f"multiplier must be >= 1, got {self.multiplier}")

    def delay_s(self, recent_deaths: int) -> float:
        """The wait before restarting a part that died ``recent_deaths`` times within the window (this one too)."""
        return min(self.initial_backoff_s * self.multiplier ** max(0, recent_deaths - 1), self.max_backoff_s)


class DeathRecord:
    """The recent deaths of one part, as many as the policy's window holds."""

    def __init__(self, policy: RestartPolicy) -> None:
        self.policy = policy
        self._times: deque[float] = deque()

    def record(self, now: float) -> int:
        """Note a death at ``now`` (monotonic seconds); how many deaths the window now holds."""
        self._times.append(now)
        while self._times and now - self._times[0] > self.policy.window_s:
            self._times.popleft()
        return len(self._times)

    def gives_up(self, recent_deaths: int) -> bool:
        """Whether that many recent deaths are past the policy's restarts."""
        return recent_deaths > self.policy.max_restarts


def describe_exit(code: int) -> str:
    """How a process ended, in words: ``exit code 1`` or ``signal SIGKILL (exit code -9)``."""
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name} (exit code {code})"
        except ValueError:
            return f"signal {-code} (exit code {code})"
    return f"exit code {code}"


@dataclass(frozen=True)
class GiveUp:
    """A part that died too often: what the stack reports before it stops."""

    part: str
    last: str
    deaths: int
    window_s: float
    log_path: Path

    def message(self) -> str:
        """The line ``facerec up`` prints when it gives up."""
        return (
            f"{self.part} died {self.deaths} time{'s' if self.deaths != 1 else ''} within {self.window_s:g} s "
            f"(last: {self.last});"
            f" giving up on it and stopping the stack; see its log {self.log_path}"
        )


def _print_to_stderr(line: str) -> None:
    print(f"facerec: {line}", file=sys.stderr, flush=True)


class PartSupervisor:
    """Watches one running part from a thread of its own and restarts it per the :class:`RestartPolicy`."""

    def __init__(
        self,
        part: Part,
        policy: RestartPolicy,
        on_give_up: Callable[[GiveUp], None],
        *,
        report: Callable[[str], None] = _print_to_stderr,
        poll_s: float = 0.2,
        probe_interval_s: float = 1.0,
        faults_before_restart: int = 3,
    ) -> None:
        self.part = part
        self.policy = policy
        self.restarts = 0
        self._on_give_up = on_give_up
        self._report = report
        self._poll_s = poll_s
        self._probe_interval_s = probe_interval_s
        self._faults_before_restart = faults_before_restart
        self._deaths = DeathRecord(policy)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"supervise-{part.name}", daemon=True)

    def start(self) -> None:
        """Begin watching the part (already started by the caller)."""
        self._thread.start()

    def halt(self) -> None:
        """Stop restarting the part (it keeps running): first step of stopping the whole stack, so that a part
        which exits on the same Ctrl-C as ``facerec up`` is not started again."""
        self._stopping.set()

    def stop(self, join_timeout_s: float = 60.0) -> None:
        """Stop watching and stop the part; a restart in progress is interrupted (its process stopped)."""
        self.halt()
        self.part.stop()
        if self._thread.is_alive():
            self._thread.join(join_timeout_s)

    def _watch(self) -> None:
        faults = 0
        next_probe = time.monotonic() + self._probe_interval_s
        while not self._stopping.is_set():
            code = self.part.exit_code()
            if code is not None:
                if not self._handle_death(f"exited with {describe_exit(code)}"):
                    return
                faults, next_probe = 0, time.monotonic() + self._probe_interval_s
                continue
            if time.monotonic() >= next_probe:
                fault = self.part.fault()
                faults = faults + 1 if fault else 0
                next_probe = time.monotonic() + self._probe_interval_s
                if fault and faults >= self._faults_before_restart:
                    # Alive but useless (Triton whose model's backend process died): as good as dead.
                    self.part.stop()
                    if not self._handle_death(f"could not serve for {faults} probes ({fault})"):
                        return
                    faults, next_probe = 0, time.monotonic() + self._probe_interval_s
                    continue
            self._stopping.wait(self._poll_s)

    def _handle_death(self, how: str) -> bool:
        """Restart the dead part after its backoff; False once supervision ends (stopping, or given up)."""
        deaths = self._deaths.record(time.monotonic())
        if self._deaths.gives_up(deaths):
            self._on_give_up(GiveUp(self.part.name, how, deaths, self.policy.window_s, self.part.log_path))
            return False
        delay = self.policy.delay_s(deaths)
        self._report(
            f"{self.part.name} {how}; restarting it in {delay:.1f} s "
            f"(death {deaths} of at most {self.policy.max_restarts} within {self.policy.window_s:g} s)"
        )
        self.part.stop()  # release what the dead process held (Triton: its backend stubs, shared memory)
        if self._stopping.wait(delay):
            return False
        return self._restart()

    def _restart(self) -> bool:
        started = time.monotonic()
        try:
            # Not under a lock: Triton's start waits for its model, and a stop meanwhile must interrupt it
            # (stop() kills the process, which ends the wait with PartStartError).
            self.part.start()
        except PartStartError as error:
            if not self._stopping.is_set():
                # Counted as another death by the next pass of the loop (the part has exited).
                self._report(f"{self.part.name} did not start again: {error}")
        if self._stopping.is_set():
            self.part.stop()  # a stop that came while it was starting may have found nothing to stop yet
            return False
        if self.part.exit_code() is None:
            self.restarts += 1
            self._report(f"{self.part.name} started again ({time.monotonic() - started:.1f} s to start)")
        return True
