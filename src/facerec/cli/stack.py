"""``facerec up``: the whole system on this machine, one process per part, supervised.

Starts Triton (the ``tritonserver`` binary of nvidia-pytriton, CPU Python backend) on free loopback ports, then
the registry (embedded Qdrant Edge under ``--data-dir``), the embedder and the gateway as separate processes,
waits until every one reports SERVING and prints ``FACEREC_GATEWAY=<host:port>`` and ``FACEREC_API_KEY=<key>``.

The API key of the local tenant is kept in ``<data-dir>/api_key`` (mode 0600) and used again by the next
``facerec up`` on the same data dir, so a client that exported it keeps working across restarts; the gateway
reads only its SHA-256 (``<data-dir>/api_keys.yaml``). ``--new-key`` replaces it (the old key stops working).

A part that dies is started again after a backoff (0.5 s, doubling up to 8 s), logged with its name, how it
ended and the delay; the other parts keep running, and their clients reconnect by themselves. A part that dies
more than ``--max-restarts`` times within ``--restart-window`` seconds is given up on: the stack stops and
``facerec up`` exits with code 1. Triton also counts as dead when its model fails 3 probes in a row (an inference
of one blank chip every second): a dead model process leaves the server live and the model "ready".
Ctrl-C or SIGTERM stops everything, the gateway first. Each service logs to ``<data-dir>/logs/<service>.log``
(Triton: the end of each run's log in ``logs/triton.log``).

The services need the server extra: pip install 'facerec[server]'. Where it is not installed (the client
alone), `facerec up` says so and exits with code 2.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING

from facerec.api_keys import hash_key
from facerec.cli import exit_codes
from facerec.cli.health import is_serving
from facerec.cli.supervisor import GiveUp, Part, PartStartError, PartSupervisor, RestartPolicy

# The client CLI imports this module at start-up to register the command: it imports nothing of the services
# (server code, with the server extra's dependencies) until `facerec up` runs and has checked that extra.
if TYPE_CHECKING:
    from facerec_embedder.triton.launcher import TritonServer

DEFAULT_DATA_DIR = Path.home() / ".local" / "share" / "facerec"
LOCAL_TENANT = "local"
API_KEY_FILE = "api_key"
PROBE_TIMEOUT_S = 5.0
API_KEYS_FILE = "api_keys.yaml"
_LOCAL_KEY = re.compile(r"^frk_[A-Za-z0-9_-]{20,}$")
DISTRIBUTION = "facerec"
SERVER_EXTRA = "server"
INSTALL_SERVER_HINT = "install the services with: pip install 'facerec[server]'"
# A requirement of the server extra as importlib.metadata lists it: 'PyYAML==6.0.4; extra == "server"'.
_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_SERVER_MARKER = re.compile(rf"""extra\s*==\s*["']{SERVER_EXTRA}["']""")


class ServerExtraMissing(RuntimeError):
    """The packages of the ``server`` extra, which the services need, are not installed."""


def missing_server_packages(distribution: str = DISTRIBUTION) -> list[str]:
    """The requirements of ``distribution``'s ``server`` extra that are not installed (empty when complete).

    Read from the installed distribution's metadata, so the list is pyproject.toml's, never a copy of it.
    """
    try:
        requirements = importlib.metadata.requires(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        return []  # running from a source tree that was never installed: the imports will tell
    missing = []
    for requirement in requirements:
        name = _REQUIREMENT_NAME.match(requirement)
        if name is None or not _SERVER_MARKER.search(requirement):
            continue
        try:
            importlib.metadata.distribution(name.group(1))
        except importlib.metadata.PackageNotFoundError:
            missing.append(name.group(1))
    return missing


def check_server_installed() -> None:
    """Raise :class:`ServerExtraMissing`, naming what is missing, unless the services can run here."""
    missing = missing_server_packages()
    if missing:
        named = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise ServerExtraMissing(
            f"`facerec up` runs the services on this machine, and they are not installed here "
            f"(missing: {named}); {INSTALL_SERVER_HINT}"
        )


# The localhost stack talks plaintext between its parts and checks their health in plaintext: TLS settings of the
# caller's environment (meant for a deployment) are not passed on to the services it starts.
_TLS_SETTING = re.compile(r"FACEREC_(GATEWAY|EMBEDDER|REGISTRY)_TLS_")


def _inherited_env() -> dict[str, str]:
    """The environment a started service inherits: the caller's, without the services' TLS settings."""
    return {key: value for key, value in os.environ.items() if not _TLS_SETTING.match(key)}


@dataclass
class ServiceProcess:
    """One facerec service started from its console script."""

    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the service's process (logging to ``log_path``); it answers SERVING once its dependencies are."""
        script = Path(sys.executable).parent / f"facerec-{self.name}"
        self._close_log()
        self._log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                [str(script)], env={**_inherited_env(), **self.env}, stdout=self._log, stderr=subprocess.STDOUT
            )
        except OSError as error:
            raise PartStartError(f"cannot run {script}: {error}") from error

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exit_code(self) -> int | None:
        """None while it runs (or before it started); its exit status once it has exited."""
        return None if self.process is None else self.process.poll()

    def serving(self) -> bool:
        return is_serving(self.address)

    def fault(self) -> None:
        """Nothing to probe: a service whose dependencies are down says so itself (health NOT_SERVING)."""
        return None

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM (the service drains its in-flight calls), SIGKILL after ``grace_s``; harmless once it exited."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._close_log()

    def _close_log(self) -> None:
        log, self._log = self._log, None
        if log is not None:
            log.close()

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


class TritonPart:
    """Triton as a part of the stack: always on the same ports, so the embedder's channel finds it again.

    Each start is a fresh ``TritonServer`` and returns once the model is READY (not merely the server live);
    Triton's own log lives in a temporary folder, so the end of each run's log is appended to ``log_path``.
    """

    name = "triton"

    def __init__(self, log_path: Path, start_timeout_s: float) -> None:
        from facerec.runtime.net import free_port  # server code: only once `up` runs

        self.log_path = log_path
        self.start_timeout_s = start_timeout_s
        self.ports = (free_port(), free_port(), free_port())  # gRPC, HTTP, metrics
        self.server: TritonServer | None = None
        self._exited: int | None = None
        self._faulty = False  # the last probe failed

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.ports[0]}"

    @property
    def model_repository(self) -> Path:
        return self._new_server().model_repository

    @property
    def model_name(self) -> str:
        return self._new_server().model_name

    def _new_server(self) -> TritonServer:
        from facerec_embedder.triton.launcher import TritonServer

        grpc_port, http_port, metrics_port = self.ports
        return TritonServer(grpc_port=grpc_port, http_port=http_port, metrics_port=metrics_port)

    def start(self) -> None:
        """Start Triton and wait until its model is ready; :class:`PartStartError` otherwise."""
        from facerec_embedder.triton.launcher import TritonError

        server = self._new_server()
        self.server, self._exited, self._faulty = server, None, False
        try:
            server.start(timeout=self.start_timeout_s)
        except TritonError as error:
            self.server, self._exited = None, 1
            raise PartStartError(str(error)) from error

    def exit_code(self) -> int | None:
        server = self.server
        if server is None:
            return self._exited
        return server.returncode if not server.is_running() else None

    def is_running(self) -> bool:
        return self.server is not None and self.server.is_running()

    def fault(self) -> str | None:
        """Why a running Triton cannot serve: its model fails an inference of one blank chip. (When the model's
        Python-backend process dies, the server stays live and the model "ready", and every inference fails
        with "Stub process ... is not healthy" until Triton restarts.) Busy is not broken: a full queue or a
        slow answer is no fault."""
        import numpy as np
        import tritonclient.grpc as triton_grpc
        from tritonclient.utils import InferenceServerException

        from facerec_embedder.model import CHIP_SIZE, INPUT_NAME, TRITON_MODEL_NAME

        chip = triton_grpc.InferInput(INPUT_NAME, [1, CHIP_SIZE, CHIP_SIZE, 3], "UINT8")
        chip.set_data_from_numpy(np.zeros((1, CHIP_SIZE, CHIP_SIZE, 3), dtype=np.uint8))
        client = triton_grpc.InferenceServerClient(self.grpc_url)
        try:
            client.infer(TRITON_MODEL_NAME, [chip], client_timeout=PROBE_TIMEOUT_S)
        except InferenceServerException as error:
            reason = str(error.message())
            busy = "DEADLINE_EXCEEDED" in str(error.status()) or "queue" in reason.lower()
            self._faulty = not busy
            return None if busy else f"{error.status()}: {reason}"
        finally:
            client.close()
        self._faulty = False
        return None

    def stop(self) -> None:
        """Stop the server and its backend stubs (also after a kill -9: they stay behind otherwise)."""
        server, self.server = self.server, None
        if server is None:
            return
        code = server.returncode
        tail = server.log_tail()
        # A live server gets its exit timeout to finish in-flight requests; after a crash only its orphaned
        # backend stubs are left, and a server whose model fails its probes has no request it could finish:
        # waiting for either to exit by itself would only delay the restart.
        server.stop(grace=10.0 if code is None and not self._faulty else 1.0)
        self._exited = code if code is not None else -signal.SIGTERM
        with self.log_path.open("a") as log:
            log.write(f"--- end of a Triton run ({time.strftime('%Y-%m-%d %H:%M:%S')}) ---\n{tail}\n")


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (mode 0600), replacing it atomically."""
    partial = path.with_name(f".{path.name}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    partial.chmod(0o600)  # whatever the umask
    partial.replace(path)


def local_api_key(data_dir: Path, *, new: bool = False) -> str:
    """The local tenant's API key: the one kept in ``<data-dir>/api_key`` by an earlier run, or a fresh one
    (always with ``new``). The key file is mode 0600; the gateway's ``api_keys.yaml`` holds only its SHA-256."""
    path = data_dir / API_KEY_FILE
    key = None if new else _stored_key(path)
    if key is None:
        key = f"frk_{secrets.token_urlsafe(24)}"
        _write_private(path, key + "\n")
    else:
        path.chmod(0o600)
    _write_private(
        data_dir / API_KEYS_FILE,
        f"# Written by `facerec up`: the hash of the key in {API_KEY_FILE} (mode 0600); --new-key replaces it.\n"
        f"keys:\n  - sha256: {hash_key(key)}\n    tenant: {LOCAL_TENANT}\n    collections: ['*']\n",
    )
    return key


def _stored_key(path: Path) -> str | None:
    try:
        key = path.read_text().strip()
    except FileNotFoundError:
        return None
    if not _LOCAL_KEY.match(key):
        print(f"facerec: {path} holds no valid key; writing a new one", file=sys.stderr)
        return None
    return key


class LocalStack:
    """Triton + registry + embedder + gateway on localhost, each restarted when it dies (see :meth:`supervise`)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        gateway_port: int,
        embedder_port: int,
        registry_port: int,
        new_key: bool = False,
        start_timeout_s: float = 180.0,
    ) -> None:
        self.data_dir = data_dir
        (data_dir / "logs").mkdir(parents=True, exist_ok=True)
        self.api_key = local_api_key(data_dir, new=new_key)
        self.triton = TritonPart(data_dir / "logs" / "triton.log", start_timeout_s)
        quiet = {"METRICS_PORT": "0", "LOG_FORMAT": "json"}
        self.registry = self._service("registry", registry_port, {"DATA_DIR": str(data_dir / "registry"), **quiet})
        self.embedder = self._service("embedder", embedder_port, {"TRITON_URL": self.triton.grpc_url, **quiet})
        self.gateway = self._service(
            "gateway",
            gateway_port,
            {
                "EMBEDDER_ADDRESS": self.embedder.address,
                "REGISTRY_ADDRESS": self.registry.address,
                "API_KEYS_FILE": str(data_dir / API_KEYS_FILE),
                **quiet,
            },
        )
        self.services = [self.registry, self.embedder, self.gateway]
        self._supervisors: list[PartSupervisor] = []
        self.given_up: GiveUp | None = None

    @property
    def parts(self) -> list[Part]:
        """Every part, in start order (stopped in reverse)."""
        return [self.triton, *self.services]

    def _service(self, name: str, port: int, settings: dict[str, str]) -> ServiceProcess:
        prefix = f"FACEREC_{name.upper()}_"
        env = {f"{prefix}{key}": value for key, value in {"PORT": str(port), **settings}.items()}
        return ServiceProcess(name, port, env, self.data_dir / "logs" / f"{name}.log")

    def start(self, timeout_s: float = 180.0) -> None:
        """Start every part and wait until each is SERVING; raises RuntimeError (after stopping) otherwise.

        No restarts during start-up: a part that fails to start is a set-up problem, said at once."""
        deadline = time.monotonic() + timeout_s
        self._check_model_repository()
        self.triton.start_timeout_s = timeout_s
        self.triton.start()
        for service in self.services:
            service.start()
        waiting = list(self.services)
        while waiting:
            for service in list(waiting):
                if not service.alive():
                    raise RuntimeError(f"{service.name} exited during start-up:\n{service.log_tail()}")
                if service.serving():
                    waiting.remove(service)
            if time.monotonic() > deadline:
                names = ", ".join(s.name for s in waiting)
                raise RuntimeError(f"not SERVING after {timeout_s:.0f}s: {names} (logs in {self.data_dir / 'logs'})")
            time.sleep(0.2)

    def _check_model_repository(self) -> None:
        """Fail before starting anything where Triton would find no model (its own error is a page of log)."""
        repository = self.triton.model_repository
        if not repository.is_dir():
            # The repository lives in the source tree (deploy/triton/), not in the wheel.
            raise RuntimeError(
                f"the Triton model repository {repository} is missing: `facerec up` runs from a facerec "
                "source checkout set up by scripts/setup.sh"
            )
        onnx = repository / self.triton.model_name / "1" / "model.onnx"
        if not onnx.is_file():
            raise RuntimeError(f"{onnx} is missing: convert the model with python -m facerec_embedder.model.convert")

    def supervise(self, policy: RestartPolicy, stop: threading.Event) -> GiveUp | None:
        """Restart parts that die, per ``policy``, until ``stop`` is set or a part is given up on (returned)."""

        def give_up(report: GiveUp) -> None:
            self.given_up = report
            stop.set()

        self._supervisors = [PartSupervisor(part, policy, give_up) for part in self.parts]
        for supervisor in self._supervisors:
            supervisor.start()
        stop.wait()
        return self.given_up

    def stop(self) -> None:
        """Stop every part, the gateway first (its in-flight calls still reach the embedder and registry)."""
        if self._supervisors:
            for supervisor in self._supervisors:
                supervisor.halt()  # no part is restarted from here on, whichever exits first
            for supervisor in reversed(self._supervisors):
                supervisor.stop()
            return
        for part in reversed(self.parts):
            part.stop()


def restart_policy(args: argparse.Namespace) -> RestartPolicy:
    """The restart policy of the flags (ValueError names a flag out of range)."""
    return RestartPolicy(
        max_restarts=args.max_restarts,
        window_s=args.restart_window,
        initial_backoff_s=args.restart_backoff,
        max_backoff_s=max(args.restart_backoff_max, args.restart_backoff),
    )


def run_up(args: argparse.Namespace) -> int:
    """Run the stack in the foreground until Ctrl-C or SIGTERM; exit code 2 where the services are not installed,
    1 where it cannot start or a part keeps dying."""
    try:
        check_server_installed()
        importlib.import_module("facerec_embedder.triton.launcher")  # the server code itself imports
        policy = restart_policy(args)
    except (ServerExtraMissing, ImportError, ValueError) as error:
        reason = f"{error}; {INSTALL_SERVER_HINT}" if isinstance(error, ImportError) else str(error)
        print(f"facerec: {reason}", file=sys.stderr)
        return exit_codes.USAGE
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    data_dir = Path(args.data_dir).expanduser().resolve()
    stack = LocalStack(
        data_dir,
        gateway_port=args.port,
        embedder_port=args.embedder_port,
        registry_port=args.registry_port,
        new_key=args.new_key,
    )
    print(f"facerec: starting Triton, registry, embedder and gateway (data in {data_dir})", file=sys.stderr)
    try:
        stack.start(timeout_s=args.start_timeout)
    except (RuntimeError, PartStartError) as error:
        print(f"facerec: {error}", file=sys.stderr)
        stack.stop()
        return exit_codes.ERROR
    if args.json:
        print(json.dumps({"FACEREC_GATEWAY": stack.gateway.address, "FACEREC_API_KEY": stack.api_key}), flush=True)
    else:
        print(f"FACEREC_GATEWAY={stack.gateway.address}", flush=True)
        print(f"FACEREC_API_KEY={stack.api_key}", flush=True)
    print(f"facerec: ready (API key kept in {data_dir / API_KEY_FILE}); Ctrl-C stops everything", file=sys.stderr)
    given_up = stack.supervise(policy, stop)
    if given_up is not None:
        print(f"facerec: {given_up.message()}", file=sys.stderr)
    print("facerec: stopping", file=sys.stderr)
    stack.stop()
    return exit_codes.OK if given_up is None else exit_codes.ERROR


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds ``facerec up``."""
    parser = subparsers.add_parser(
        "up",
        help="run the whole system on localhost (needs the server extra: pip install 'facerec[server]')",
        description=(__doc__ or "").strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("FACEREC_DATA_DIR", str(DEFAULT_DATA_DIR)),
        help=f"where the registry keeps its data, the API key file and logs (default {DEFAULT_DATA_DIR})",
    )
    parser.add_argument("--port", type=int, default=50051, help="gateway port (default 50051)")
    parser.add_argument("--embedder-port", type=int, default=50052, help="embedder port (default 50052)")
    parser.add_argument("--registry-port", type=int, default=50053, help="registry port (default 50053)")
    parser.add_argument("--start-timeout", type=float, default=180.0, help="seconds to wait for readiness")
    parser.add_argument("--json", action="store_true", help="print the two settings as one JSON object")
    parser.add_argument(
        "--new-key",
        action="store_true",
        help=f"replace the API key kept in <data-dir>/{API_KEY_FILE} (clients of the old key are refused)",
    )
    defaults = RestartPolicy()
    parser.add_argument(
        "--max-restarts",
        type=int,
        default=defaults.max_restarts,
        help=f"a part that dies more often than this within --restart-window is given up on and the stack "
        f"stops with exit code 1; 0 never restarts (default {defaults.max_restarts})",
    )
    parser.add_argument(
        "--restart-window",
        type=float,
        default=defaults.window_s,
        help=f"seconds over which deaths are counted (default {defaults.window_s:g})",
    )
    parser.add_argument(
        "--restart-backoff",
        type=float,
        default=defaults.initial_backoff_s,
        help=f"seconds before the first restart, doubled for each further death "
        f"(default {defaults.initial_backoff_s:g})",
    )
    parser.add_argument(
        "--restart-backoff-max",
        type=float,
        default=defaults.max_backoff_s,
        help=f"longest wait before a restart (default {defaults.max_backoff_s:g})",
    )
    parser.set_defaults(standalone=run_up)
