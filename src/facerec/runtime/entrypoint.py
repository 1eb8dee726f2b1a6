"""The ``main`` of every service's console script: settings from the environment, logs, serve until signalled."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Sequence
from typing import TypeVar

from facerec.runtime.logs import configure_logging
from facerec.runtime.server import ServiceApp, ServiceRunner, serve_until_signalled
from facerec.runtime.settings import ServiceSettings, settings_help

S = TypeVar("S", bound=ServiceSettings)


def run_service(
    *,
    prog: str,
    description: str,
    settings_cls: type[S],
    make_app: Callable[[S], ServiceApp],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse ``--help``, read the settings, and serve until SIGTERM/SIGINT. Returns the exit code."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=settings_help(settings_cls),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args(argv)
    settings = settings_cls()
    configure_logging(prog, settings.log_level, settings.log_format)
    asyncio.run(_serve(make_app, settings))
    return 0


async def _serve(make_app: Callable[[S], ServiceApp], settings: S) -> None:
    # The app is built inside the event loop: its aio channels and tasks belong to this loop.
    await serve_until_signalled(ServiceRunner(make_app(settings), settings))
