"""Fixtures of the SDK tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sdk.gateway_double import GatewayServer


@pytest.fixture
def gateway_server() -> Iterator[GatewayServer]:
    """A recording gateway double on 127.0.0.1:<free port>."""
    with GatewayServer() as server:
        yield server
