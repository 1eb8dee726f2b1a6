"""The JSON log lines a service would write, captured from one logger at DEBUG (shared by the stage tests)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from facerec.runtime.logs import JsonFormatter


class Lines(logging.Handler):
    """Keeps every record as the JSON object the service's formatter makes of it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter("test"))
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@contextmanager
def json_lines(logger_name: str) -> Iterator[Lines]:
    """Capture ``logger_name``'s records at DEBUG while the block runs, then restore its level."""
    logger = logging.getLogger(logger_name)
    handler, level = Lines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
