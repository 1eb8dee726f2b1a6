"""The ``main`` of every service's console script: settings from the environment, logs, serve until signalled."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

from facerec.runtime.logs import configure_logging
from facerec.runtime.server import ServiceApp, ServiceRunner, serve_until_signalled
from facerec.runtime.settings import ServiceSettings, settings_help
from facerec.runtime.tls import channel_credentials, server_certificates
from facerec.tls_files import TlsFileError

S = TypeVar("S", bound=ServiceSettings)


def run_service(
    *,
    prog: str,
    description: str,
    settings_cls: type[S],
    make_app: Callable[[S], ServiceApp],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse ``--help``, read the settings, and serve until SIGTERM/SIGINT. Returns the exit code: 0, or 2 when
    the TLS settings cannot be used (checked before the app opens anything, e.g. the registry's store)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=settings_help(settings_cls),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args(argv)
    settings = settings_cls()
    configure_logging(prog, settings.log_level, settings.log_format)
    try:
        server_certificates(settings)
        channel_credentials(settings)
    except TlsFileError as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return 2
    asyncio.run(_serve(make_app, settings))
    return 0


async def _serve(make_app: Callable[[S], ServiceApp], settings: S) -> None:
    # The app is built inside the event loop: its aio channels and tasks belong to this loop.
    await serve_until_signalled(ServiceRunner(make_app(settings), settings))
