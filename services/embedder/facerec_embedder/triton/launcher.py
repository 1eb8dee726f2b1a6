"""Starts the real ``tritonserver`` binary shipped in the ``nvidia-pytriton`` wheel on our model repository.

No container and no pytriton Python API: the binary runs directly, which needs (measured; see
docs/architecture.md, "Triton")

- a backend folder with ``python/libtriton_python.so``, ``python/triton_python_backend_utils.py`` and the
  Python-backend stub built for the running Python, given as ``--backend-directory``;
- ``LD_LIBRARY_PATH`` = the wheel's ``nvidia_pytriton.libs`` plus this Python's ``LIBDIR`` (otherwise the stub
  loads another libpython, or the server cannot load libcudart and never turns ready);
- the venv's ``bin`` first on ``PATH``: the stub finds its site-packages through ``python3`` (it ignores
  ``PYTHONPATH``);
- a unique shared-memory prefix and free ports per server, so several servers can run side by side.

The server runs in its own process group so that stopping it also stops its Python-backend stubs.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from facerec.runtime.net import LOOPBACK, free_port
from facerec_embedder.model import TRITON_MODEL_NAME
from facerec_embedder.model.files import MODEL_REPOSITORY

DEFAULT_MODEL_CONFIG = "cpu_python"
_SHM_DIR = Path("/dev/shm")
_LOG_TAIL_CHARS = 4000
_GLOG_ERROR = re.compile(r"^E\d{4} ")


class TritonError(RuntimeError):
    """Base of the launcher's errors."""


class TritonNotInstalled(TritonError):
    """The ``nvidia-pytriton`` wheel (or the stub for this Python version) is not installed."""


class TritonStartError(TritonError):
    """The server exited or did not make the model ready in time; the message ends with its log."""


@dataclass(frozen=True)
class TritonDistribution:
    """The files of the Triton build bundled in the ``nvidia-pytriton`` wheel."""

    binary: Path
    python_backend: Path
    stub: Path
    libraries: Path

    @classmethod
    def installed(cls) -> TritonDistribution:
        """Locate the bundled Triton of the installed wheel, for the running Python version."""
        import importlib.util

        spec = importlib.util.find_spec("pytriton")
        if spec is None or not spec.submodule_search_locations:
            raise TritonNotInstalled("the 'nvidia-pytriton' package is not installed")
        package = Path(next(iter(spec.submodule_search_locations)))
        root = package / "tritonserver"
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        distribution = cls(
            binary=root / "bin" / "tritonserver",
            python_backend=root / "backends" / "python",
            stub=root / "python_backend_stubs" / version / "triton_python_backend_stub",
            libraries=package.parent / "nvidia_pytriton.libs",
        )
        for path in (distribution.binary, distribution.python_backend, distribution.stub, distribution.libraries):
            if not path.exists():
                raise TritonNotInstalled(f"{path} is missing from the nvidia-pytriton installation")
        return distribution


def _link_backend_directory(distribution: TritonDistribution, workdir: Path) -> Path:
    """Build ``<workdir>/backends/python`` from symlinks: the backend library, its utils and our stub."""
    backends = workdir / "backends"
    python = backends / "python"
    python.mkdir(parents=True)
    for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
        (python / name).symlink_to(distribution.python_backend / name)
    (python / "triton_python_backend_stub").symlink_to(distribution.stub)
    return backends


def _environment(distribution: TritonDistribution) -> dict[str, str]:
    env = dict(os.environ)
    libdirs = [str(distribution.libraries), str(sysconfig.get_config_var("LIBDIR") or "")]
    if env.get("LD_LIBRARY_PATH"):
        libdirs.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = os.pathsep.join(d for d in libdirs if d)
    # sys.executable is <venv>/bin/python: its folder first, so the stub's python3 is this environment's.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.pop("PYTHONPATH", None)  # ignored by the stub anyway; keep the server's behaviour explicit
    return env


class TritonServer:
    """One ``tritonserver`` process serving our model repository on loopback ports.

    Use it as a context manager (``with TritonServer() as server: ...``) or call :meth:`start` and
    :meth:`stop`. Ports given as 0 are picked free at start.
    """

    def __init__(
        self,
        model_repository: Path = MODEL_REPOSITORY,
        *,
        model_config_name: str | None = DEFAULT_MODEL_CONFIG,
        model_name: str = TRITON_MODEL_NAME,
        host: str = LOOPBACK,
        grpc_port: int = 0,
        http_port: int = 0,
        metrics_port: int = 0,
        exit_timeout_s: int = 5,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.model_repository = Path(model_repository)
        self.model_config_name = model_config_name
        self.model_name = model_name
        self.host = host
        self._requested_ports = (grpc_port, http_port, metrics_port)
        self._ports = (0, 0, 0)
        self._exit_timeout_s = exit_timeout_s
        self._extra_args = tuple(extra_args)
        self.shm_prefix = f"facerec-{uuid.uuid4().hex[:12]}-"
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._log_path: Path | None = None

    # -- addresses -------------------------------------------------------------------------------------

    @property
    def grpc_port(self) -> int:
        """The gRPC port (known once started)."""
        return self._ports[0]

    @property
    def grpc_url(self) -> str:
        """``host:port`` of the gRPC endpoint, as ``tritonclient.grpc`` expects it."""
        return f"{self.host}:{self._ports[0]}"

    @property
    def http_url(self) -> str:
        """``host:port`` of the HTTP/REST endpoint, as ``tritonclient.http`` expects it."""
        return f"{self.host}:{self._ports[1]}"

    @property
    def metrics_url(self) -> str:
        """Full URL of the Prometheus metrics endpoint."""
        return f"http://{self.host}:{self._ports[2]}/metrics"

    @property
    def pid(self) -> int | None:
        """Process id of the server (also its process-group id), or None when not started."""
        return self._process.pid if self._process else None

    def is_running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def returncode(self) -> int | None:
        """The server's exit status once it has exited (negative: killed by that signal); None while it runs."""
        return None if self._process is None else self._process.poll()

    def log_tail(self, chars: int = _LOG_TAIL_CHARS) -> str:
        """The end of the server's log (stdout and stderr)."""
        if self._log_path is None or not self._log_path.exists():
            return ""
        return self._log_path.read_text(errors="replace")[-chars:]

    def log_errors(self, limit: int = 20) -> list[str]:
        """Triton's error lines (``E<date> ...`` in its glog format), which the tail often hides."""
        if self._log_path is None or not self._log_path.exists():
            return []
        lines = self._log_path.read_text(errors="replace").splitlines()
        return [line for line in lines if _GLOG_ERROR.match(line)][:limit]

    def _failure_report(self) -> str:
        errors = "\n".join(self.log_errors())
        return f"errors:\n{errors}\nlog tail:\n{self.log_tail()}" if errors else self.log_tail()

    # -- lifecycle -------------------------------------------------------------------------------------

    def command(self, distribution: TritonDistribution, backend_directory: Path) -> list[str]:
        """The command line that starts this server."""
        grpc_port, http_port, metrics_port = self._ports
        args = [
            str(distribution.binary),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={backend_directory}",
            f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
            f"--grpc-address={self.host}",
            f"--grpc-port={grpc_port}",
            f"--http-address={self.host}",
            f"--http-port={http_port}",
            f"--metrics-address={self.host}",
            f"--metrics-port={metrics_port}",
            "--allow-metrics=true",
            "--allow-gpu-metrics=false",
            # No GPU in this flavour: no pinned host pool (it would try CUDA for nothing).
            "--pinned-memory-pool-byte-size=0",
            f"--exit-timeout-secs={self._exit_timeout_s}",
            "--strict-readiness=true",
        ]
        if self.model_config_name:
            args.append(f"--model-config-name={self.model_config_name}")
        return [*args, *self._extra_args]

    def start(self, timeout: float = 60.0) -> TritonServer:
        """Start the server and wait until the model is ready; raise :class:`TritonStartError` if not."""
        if self._process is not None:
            raise TritonError("this server was already started")
        distribution = TritonDistribution.installed()
        self._workdir = tempfile.TemporaryDirectory(prefix="facerec-triton-")
        workdir = Path(self._workdir.name)
        backend_directory = _link_backend_directory(distribution, workdir)
        self._ports = self._pick_ports()
        self._log_path = workdir / "tritonserver.log"
        with self._log_path.open("wb") as log:
            self._process = subprocess.Popen(
                self.command(distribution, backend_directory),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_environment(distribution),
                start_new_session=True,  # own process group: stop() reaches the backend stubs too
            )
        try:
            self._wait_until_model_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _pick_ports(self) -> tuple[int, int, int]:
        picked: list[int] = []
        for requested in self._requested_ports:
            port = requested
            while port == 0 or port in picked:
                port = free_port(self.host)
            picked.append(port)
        return picked[0], picked[1], picked[2]

    def _wait_until_model_ready(self, timeout: float) -> None:
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException

        deadline = time.monotonic() + timeout
        client = grpcclient.InferenceServerClient(self.grpc_url)
        try:
            while True:
                if self._process is None or self._process.poll() is not None:
                    code = self._process.returncode if self._process else None
                    raise TritonStartError(f"tritonserver exited with {code}:\n{self._failure_report()}")
                with contextlib.suppress(InferenceServerException):
                    if client.is_model_ready(self.model_name, client_timeout=1.0):
                        return
                if time.monotonic() > deadline:
                    raise TritonStartError(
                        f"model {self.model_name!r} not ready after {timeout:.0f} s:\n{self._failure_report()}"
                    )
                time.sleep(0.1)
        finally:
            client.close()

    def stop(self, grace: float = 10.0) -> None:
        """Stop the server: SIGTERM to its process group, SIGKILL after ``grace`` seconds; clean up."""
        process, self._process = self._process, None
        if process is not None:
            self._terminate_group(process, grace)
        for leftover in _SHM_DIR.glob(f"{self.shm_prefix}*"):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    @staticmethod
    def _terminate_group(process: subprocess.Popen[bytes], grace: float) -> None:
        group = process.pid  # start_new_session made the server its group's leader
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
            process.wait()
        # The server is gone; a stub it started may still be winding down in the group.
        deadline = time.monotonic() + grace
        while _group_alive(group):
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(group, signal.SIGKILL)
                break
            time.sleep(0.05)

    def __enter__(self) -> TritonServer:
        if self._process is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
