"""``facerec up``: the whole system on this machine, one process per part.

Starts Triton (the ``tritonserver`` binary of nvidia-pytriton, CPU Python backend) on free loopback ports, then
the registry (embedded Qdrant Edge under ``--data-dir``), the embedder and the gateway as separate processes,
waits until every one reports SERVING, generates an API key (stored hashed in ``<data-dir>/api_keys.yaml``) and
prints ``FACEREC_GATEWAY=<host:port>`` and ``FACEREC_API_KEY=<key>``. Ctrl-C or SIGTERM stops everything, the
gateway first. Each service logs to ``<data-dir>/logs/<service>.log``.

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

# The client CLI imports this module at start-up to register the command: it imports nothing of the services
# (server code, with the server extra's dependencies) until `facerec up` runs and has checked that extra.
if TYPE_CHECKING:
    from facerec_embedder.triton.launcher import TritonServer

DEFAULT_DATA_DIR = Path.home() / ".local" / "share" / "facerec"
LOCAL_TENANT = "local"
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
        script = Path(sys.executable).parent / f"facerec-{self.name}"
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(script)], env={**os.environ, **self.env}, stdout=self._log, stderr=subprocess.STDOUT
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def serving(self) -> bool:
        return is_serving(self.address)

    def stop(self, grace_s: float = 15.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def write_api_key(data_dir: Path) -> str:
    """A fresh API key for the local tenant (any collection); only its SHA-256 is written to disk."""
    key = f"frk_{secrets.token_urlsafe(24)}"
    path = data_dir / "api_keys.yaml"
    path.write_text(
        "# Written by `facerec up`: the key itself is printed once and never stored.\n"
        f"keys:\n  - sha256: {hash_key(key)}\n    tenant: {LOCAL_TENANT}\n    collections: ['*']\n"
    )
    path.chmod(0o600)
    return key


class LocalStack:
    """Triton + registry + embedder + gateway on localhost."""

    def __init__(self, data_dir: Path, *, gateway_port: int, embedder_port: int, registry_port: int) -> None:
        self.data_dir = data_dir
        (data_dir / "logs").mkdir(parents=True, exist_ok=True)
        self.api_key = write_api_key(data_dir)
        from facerec_embedder.triton.launcher import TritonServer  # server code: only once `up` runs

        self.triton: TritonServer = TritonServer()
        quiet = {"METRICS_PORT": "0", "LOG_FORMAT": "json"}
        self.registry = self._service("registry", registry_port, {"DATA_DIR": str(data_dir / "registry"), **quiet})
        self.embedder = self._service("embedder", embedder_port, quiet)
        self.gateway = self._service(
            "gateway",
            gateway_port,
            {
                "EMBEDDER_ADDRESS": self.embedder.address,
                "REGISTRY_ADDRESS": self.registry.address,
                "API_KEYS_FILE": str(data_dir / "api_keys.yaml"),
                **quiet,
            },
        )
        self.services = [self.registry, self.embedder, self.gateway]

    def _service(self, name: str, port: int, settings: dict[str, str]) -> ServiceProcess:
        prefix = f"FACEREC_{name.upper()}_"
        env = {f"{prefix}{key}": value for key, value in {"PORT": str(port), **settings}.items()}
        return ServiceProcess(name, port, env, self.data_dir / "logs" / f"{name}.log")

    def start(self, timeout_s: float = 180.0) -> None:
        """Start every part and wait until each is SERVING; raises RuntimeError (after stopping) otherwise."""
        deadline = time.monotonic() + timeout_s
        self._check_model_repository()
        self.triton.start(timeout=timeout_s)
        self.embedder.env["FACEREC_EMBEDDER_TRITON_URL"] = self.triton.grpc_url
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

    def failed_part(self) -> str | None:
        """The name of a part that stopped on its own, if any."""
        if not self.triton.is_running():
            return "triton"
        return next((s.name for s in self.services if not s.alive()), None)

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()
        self.triton.stop()


def run_up(args: argparse.Namespace) -> int:
    """Run the stack in the foreground until Ctrl-C or SIGTERM; exit code 2 where the services are not installed."""
    try:
        check_server_installed()
        from facerec_embedder.triton.launcher import TritonError
    except (ServerExtraMissing, ImportError) as error:
        reason = str(error) if isinstance(error, ServerExtraMissing) else f"{error}; {INSTALL_SERVER_HINT}"
        print(f"facerec: {reason}", file=sys.stderr)
        return exit_codes.USAGE
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    data_dir = Path(args.data_dir).expanduser().resolve()
    stack = LocalStack(
        data_dir, gateway_port=args.port, embedder_port=args.embedder_port, registry_port=args.registry_port
    )
    print(f"facerec: starting Triton, registry, embedder and gateway (data in {data_dir})", file=sys.stderr)
    try:
        stack.start(timeout_s=args.start_timeout)
    except (RuntimeError, TritonError) as error:
        print(f"facerec: {error}", file=sys.stderr)
        stack.stop()
        return 1
    if args.json:
        print(json.dumps({"FACEREC_GATEWAY": stack.gateway.address, "FACEREC_API_KEY": stack.api_key}), flush=True)
    else:
        print(f"FACEREC_GATEWAY={stack.gateway.address}", flush=True)
        print(f"FACEREC_API_KEY={stack.api_key}", flush=True)
    print("facerec: ready; Ctrl-C stops everything", file=sys.stderr)
    status = 0
    while not stop.wait(timeout=1.0):
        failed = stack.failed_part()
        if failed is not None:
            print(f"facerec: {failed} stopped unexpectedly; stopping the stack", file=sys.stderr)
            status = 1
            break
    print("facerec: stopping", file=sys.stderr)
    stack.stop()
    return status


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
    parser.set_defaults(standalone=run_up)
