"""Small network helpers shared by the launchers, the local stack, benchmarks and tests."""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """Ask the kernel for a free TCP port on ``host`` (it can be taken again before use; rare)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
