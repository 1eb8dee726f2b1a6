"""``python -m facerec_embedder.triton``: run Triton on our model repository until SIGTERM or SIGINT.

Prints the gRPC address once the model is ready (one line, ``grpc=HOST:PORT http=... metrics=...``), so a
script starting the local stack can read it; exits non-zero with Triton's log when the server fails.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from facerec_embedder.model.files import MODEL_REPOSITORY
from facerec_embedder.triton.launcher import DEFAULT_MODEL_CONFIG, TritonError, TritonServer


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m facerec_embedder.triton", description=__doc__.splitlines()[0])
    parser.add_argument("--model-repository", type=Path, default=MODEL_REPOSITORY)
    parser.add_argument(
        "--model-config-name",
        default=DEFAULT_MODEL_CONFIG,
        help="config under <model>/configs/ ('' for the production config.pbtxt)",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--grpc-port", type=int, default=8001, help="0 picks a free port")
    parser.add_argument("--http-port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--metrics-port", type=int, default=8002, help="0 picks a free port")
    parser.add_argument("--start-timeout", type=float, default=120.0, help="seconds to wait for readiness")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Start the server, print its addresses, block until a stop signal, then stop it cleanly."""
    args = _arguments(argv)
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    server = TritonServer(
        args.model_repository,
        model_config_name=args.model_config_name or None,
        host=args.host,
        grpc_port=args.grpc_port,
        http_port=args.http_port,
        metrics_port=args.metrics_port,
    )
    try:
        server.start(timeout=args.start_timeout)
    except TritonError as error:
        print(error, file=sys.stderr)
        return 1
    try:
        print(f"grpc={server.grpc_url} http={server.http_url} metrics={server.metrics_url}", flush=True)
        while not stop.wait(timeout=1.0):
            if not server.is_running():
                print(f"tritonserver exited:\n{server.log_tail()}", file=sys.stderr)
                return 1
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
