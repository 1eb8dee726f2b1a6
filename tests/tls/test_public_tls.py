"""The gateway serving TLS to its clients: refused in plaintext and to clients trusting another CA, in every
try; served to the SDK and the CLI that trust its CA (given, or in the system trust store)."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health, health_pb2_grpc

from facerec.cli import exit_codes
from facerec.cli.main import main
from facerec.runtime.server import ServiceRunner
from facerec.sdk import AsyncClient, Client, Unavailable
from tests.fixtures.stack import ALPHA_KEY
from tests.tls.conftest import Pki, client_credentials, localhost, outcomes

TRIES = 10


async def test_a_plaintext_client_is_refused_in_every_try(tls_gateway: ServiceRunner) -> None:
    results = await outcomes(tls_gateway.address, None, TRIES)
    assert results == ["UNAVAILABLE"] * TRIES


async def test_a_client_trusting_another_ca_is_refused_in_every_try(tls_gateway: ServiceRunner, pki: Pki) -> None:
    results = await outcomes(tls_gateway.address, client_credentials(pki.stranger.cert), TRIES)
    assert results == ["UNAVAILABLE"] * TRIES


async def test_a_client_trusting_the_ca_is_served_in_every_try(tls_gateway: ServiceRunner, pki: Pki) -> None:
    for address in (tls_gateway.address, localhost(tls_gateway)):  # the certificate names both
        assert await outcomes(address, client_credentials(pki.authority.cert), TRIES) == ["SERVING"] * TRIES


async def test_the_async_sdk_with_the_ca_file_makes_real_calls(tls_gateway: ServiceRunner, pki: Pki) -> None:
    async with AsyncClient(tls_gateway.address, ALPHA_KEY, ca_file=pki.authority.cert, timeout=10) as client:
        collections = await client.list_collections()
    assert isinstance(collections, list)


async def test_the_sdk_with_tls_trusts_the_system_store(
    tls_gateway: ServiceRunner, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.authority.cert))  # the machine's store holds the CA
    async with AsyncClient(tls_gateway.address, ALPHA_KEY, tls=True, timeout=10) as client:
        assert isinstance(await client.list_collections(), list)
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.stranger.cert))  # it does not
    async with AsyncClient(tls_gateway.address, ALPHA_KEY, tls=True, timeout=10) as client:
        with pytest.raises(Unavailable, match="CERTIFICATE_VERIFY_FAILED"):
            await client.list_collections()


async def test_the_sync_sdk_in_plaintext_is_refused_and_with_the_ca_is_served(
    tls_gateway: ServiceRunner, pki: Pki
) -> None:
    def calls() -> None:
        with Client(tls_gateway.address, ALPHA_KEY, timeout=5) as plaintext, pytest.raises(Unavailable):
            plaintext.list_collections()
        with Client(tls_gateway.address, ALPHA_KEY, ca_file=pki.authority.cert, timeout=10) as client:
            assert isinstance(client.list_collections(), list)

    await asyncio.to_thread(calls)  # the blocking client must not hold up the loop that serves the gateway


async def facerec(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


async def test_the_cli_with_the_ca_file_works(
    tls_gateway: ServiceRunner, pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    gateway = ["--gateway", tls_gateway.address, "--api-key", ALPHA_KEY, "--ca-file", str(pki.authority.cert)]
    assert await facerec(*gateway, "collections", "list", "--json") == exit_codes.OK
    assert await facerec(*gateway, "health", "--service", "liveness") == exit_codes.OK
    assert "SERVING" in capsys.readouterr().out


async def test_the_cli_reads_the_ca_file_from_the_environment(
    tls_gateway: ServiceRunner, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACEREC_CA_FILE", str(pki.authority.cert))
    monkeypatch.setenv("FACEREC_API_KEY", ALPHA_KEY)
    assert await facerec("--gateway", tls_gateway.address, "collections", "list") == exit_codes.OK


async def test_the_cli_without_the_ca_file_fails_saying_to_use_tls(
    tls_gateway: ServiceRunner, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await facerec("--gateway", tls_gateway.address, "--api-key", ALPHA_KEY, "collections", "list")
    assert code == exit_codes.UNAVAILABLE
    err = capsys.readouterr().err
    assert "UNAVAILABLE" in err and "if it serves TLS, pass --tls or --ca-file" in err


async def test_the_cli_trusting_another_ca_fails_naming_the_ca(
    tls_gateway: ServiceRunner, pki: Pki, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.stranger.cert))
    gateway = ["--gateway", tls_gateway.address, "--api-key", ALPHA_KEY]
    assert await facerec(*gateway, "--tls", "collections", "list") == exit_codes.UNAVAILABLE
    assert "not signed by a CA of the system trust store: pass --ca-file" in capsys.readouterr().err
    assert await facerec(*gateway, "--ca-file", str(pki.stranger.cert), "health") == exit_codes.UNAVAILABLE
    assert f"not signed by a CA of the CA bundle {pki.stranger.cert}" in capsys.readouterr().err


async def test_the_cli_with_an_unreadable_ca_file_is_a_usage_error(
    tls_gateway: ServiceRunner, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--gateway", tls_gateway.address, "--ca-file", "/nonexistent/ca.pem", "collections", "list"]
    assert await facerec(*argv) == exit_codes.USAGE
    assert "ca_file (/nonexistent/ca.pem) cannot be read" in capsys.readouterr().err


async def test_the_cli_reads_tls_from_the_environment_and_trusts_the_system_store(
    tls_gateway: ServiceRunner, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.authority.cert))
    monkeypatch.setenv("FACEREC_TLS", "1")
    argv = ["--gateway", tls_gateway.address, "--api-key", ALPHA_KEY, "collections", "list"]
    assert await facerec(*argv) == exit_codes.OK


async def test_the_cli_with_tls_to_a_plaintext_server_says_it_does_not_speak_tls(
    pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        code = await facerec("health", "--address", f"127.0.0.1:{port}", "--ca-file", str(pki.authority.cert))
    finally:
        await server.stop(0)
    assert code == exit_codes.UNAVAILABLE
    assert "the server does not speak TLS: leave out --tls and --ca-file" in capsys.readouterr().err
