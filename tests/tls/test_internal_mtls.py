"""Mutual TLS between facerec's services: an internal service with ``TLS_CLIENT_CA_FILE`` refuses callers
without a certificate from that CA, in every try, and serves the gateway configured with its client certificate,
end to end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from facerec.cli import exit_codes
from facerec.cli.main import main
from facerec.registry.v1 import registry_pb2, registry_pb2_grpc
from facerec.runtime.server import ServiceRunner
from facerec.sdk import AsyncClient, Unavailable
from facerec_embedder.app import EmbedderApp
from facerec_embedder.settings import EmbedderSettings
from facerec_embedder.triton.launcher import TritonServer
from facerec_gateway.app import GatewayApp
from tests.fixtures.stack import ALPHA_KEY, QUICK, gateway_settings, start
from tests.tls.conftest import (
    ABSENT_EMBEDDER,
    ONE_CONNECTION,
    Pki,
    calling_mtls,
    client_credentials,
    outcomes,
    serving_tls,
    wait_serving_tls,
)

TRIES = 10


async def test_a_call_without_a_client_certificate_is_refused_in_every_try(mtls_registry: ServiceRunner, pki: Pki):
    results = await outcomes(mtls_registry.address, client_credentials(pki.authority.cert), TRIES)
    assert results == ["UNAVAILABLE"] * TRIES


async def test_a_client_certificate_from_another_ca_is_refused_in_every_try(mtls_registry: ServiceRunner, pki: Pki):
    credentials = client_credentials(pki.authority.cert, pki.stranger_client)
    assert await outcomes(mtls_registry.address, credentials, TRIES) == ["UNAVAILABLE"] * TRIES


async def test_a_plaintext_call_is_refused_in_every_try(mtls_registry: ServiceRunner):
    assert await outcomes(mtls_registry.address, None, TRIES) == ["UNAVAILABLE"] * TRIES


async def test_a_client_certificate_from_the_ca_is_served(mtls_registry: ServiceRunner, pki: Pki):
    credentials = client_credentials(pki.authority.cert, pki.client)
    assert await outcomes(mtls_registry.address, credentials, TRIES) == ["SERVING"] * TRIES
    async with grpc.aio.secure_channel(mtls_registry.address, credentials, options=ONE_CONNECTION) as channel:
        response = await registry_pb2_grpc.RegistryStub(channel).ListCollections(
            registry_pb2.ListCollectionsRequest(tenant="alpha"), timeout=5
        )
    assert isinstance(list(response.collections), list)


async def test_the_gateway_reaches_the_registry_over_mutual_tls(tls_gateway: ServiceRunner, pki: Pki):
    async with AsyncClient(tls_gateway.address, ALPHA_KEY, ca_file=pki.authority.cert, timeout=10) as client:
        assert isinstance(await client.list_collections(), list)


async def test_a_gateway_without_a_client_certificate_gets_the_registry_named_as_unavailable(
    mtls_registry: ServiceRunner, pki: Pki
):
    settings = gateway_settings(ABSENT_EMBEDDER, mtls_registry.address, tls_ca_file=pki.authority.cert)
    gateway = await start(GatewayApp(settings), settings)
    try:
        async with AsyncClient(gateway.address, ALPHA_KEY, timeout=10) as client:
            with pytest.raises(Unavailable, match="registry is unavailable"):
                await client.list_collections()
    finally:
        await gateway.stop(0)


async def test_the_cli_health_check_of_an_internal_service_presents_its_certificate(
    mtls_registry: ServiceRunner, pki: Pki, capsys: pytest.CaptureFixture[str]
):
    argv = ["health", "--address", mtls_registry.address, "--ca-file", str(pki.authority.cert)]
    assert await asyncio.to_thread(main, argv) == exit_codes.UNAVAILABLE
    assert "pass --client-cert and --client-key" in capsys.readouterr().err
    certificate = ["--client-cert", str(pki.client.cert), "--client-key", str(pki.client.key)]
    assert await asyncio.to_thread(main, [*argv, *certificate]) == exit_codes.OK


@pytest.fixture
async def mtls_embedder(pki: Pki, triton_server: TritonServer) -> AsyncIterator[ServiceRunner]:
    values = {**QUICK, "triton_url": triton_server.grpc_url, **serving_tls(pki, mutual=True)}
    settings = EmbedderSettings(**values)  # type: ignore[arg-type]
    runner = await start(EmbedderApp(settings), settings)
    await wait_serving_tls(runner.address, client_credentials(pki.authority.cert, pki.client))
    yield runner
    await runner.stop(0)


@pytest.mark.slow
async def test_a_photo_is_enrolled_and_identified_through_tls_and_mutual_tls_hops(
    mtls_embedder: ServiceRunner, mtls_registry: ServiceRunner, pki: Pki, samples_dir: Path
):
    settings = gateway_settings(
        mtls_embedder.address, mtls_registry.address, **serving_tls(pki, mutual=False), **calling_mtls(pki)
    )
    gateway = await start(GatewayApp(settings), settings)
    try:
        await wait_serving_tls(gateway.address, client_credentials(pki.authority.cert))
        # Enrolling asks the embedder for faces and the registry to store them; identifying asks both again.
        async with AsyncClient(gateway.address, ALPHA_KEY, ca_file=pki.authority.cert, timeout=60) as client:
            await client.create_collection("tls-e2e")
            await client.enroll("obama", samples_dir / "obama.jpg", collection="tls-e2e")
            result = await client.identify(samples_dir / "obama2.jpg", collection="tls-e2e")
        assert [face.match.person_id if face.match else None for face in result.faces] == ["obama"]
    finally:
        await gateway.stop(0)
