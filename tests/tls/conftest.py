"""Certificates made for the test run, and real facerec services serving TLS with them.

- ``authority``: the deployment's CA; ``stranger``: a CA nobody configured (a client trusting it must be refused).
- ``mtls_registry``: the real registry (embedded store) requiring client certificates signed by ``authority``.
- ``tls_gateway``: the real gateway serving TLS to the public (no client certificate asked) and calling the
  registry over mutual TLS; its embedder is absent (no Triton here), which the calls under test do not need.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from facerec.runtime.net import free_port
from facerec.runtime.server import ServiceRunner
from facerec_gateway.app import GatewayApp
from facerec_registry.app import RegistryApp
from facerec_registry.settings import RegistrySettings
from tests.fixtures.stack import QUICK, gateway_settings, start
from tests.tls.certs import CertificateAuthority, Issued


@dataclass(frozen=True)
class Pki:
    """Everything the tests trust, present or refuse."""

    authority: CertificateAuthority
    stranger: CertificateAuthority
    server: Issued  # localhost / 127.0.0.1, signed by the authority
    client: Issued  # a client certificate signed by the authority
    stranger_client: Issued  # a client certificate signed by the stranger


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    authority, stranger = CertificateAuthority(folder, "facerec"), CertificateAuthority(folder, "stranger")
    return Pki(
        authority=authority,
        stranger=stranger,
        server=authority.issue("server"),
        client=authority.issue("gateway-client", server=False, client=True),
        stranger_client=stranger.issue("stranger-client", server=False, client=True),
    )


def serving_tls(pki: Pki, *, mutual: bool) -> dict[str, object]:
    """Settings of a server speaking TLS with the authority's server certificate (and requiring clients' ones)."""
    settings: dict[str, object] = {"tls_cert_file": pki.server.cert, "tls_key_file": pki.server.key}
    if mutual:
        settings["tls_client_ca_file"] = pki.authority.cert
    return settings


def calling_mtls(pki: Pki) -> dict[str, object]:
    """Settings of a service calling others over mutual TLS with the authority's client certificate."""
    return {
        "tls_ca_file": pki.authority.cert,
        "tls_client_cert_file": pki.client.cert,
        "tls_client_key_file": pki.client.key,
    }


def client_credentials(ca: Path, client: Issued | None = None) -> grpc.ChannelCredentials:
    """Credentials of a test client trusting ``ca`` (presenting ``client`` when given)."""
    if client is None:
        return grpc.ssl_channel_credentials(root_certificates=ca.read_bytes())
    return grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=client.key.read_bytes(),
        certificate_chain=client.cert.read_bytes(),
    )


# A fresh connection per try: without a subchannel pool of its own, a channel could reuse another's connection
# (or its backoff after a failure), and a "try" would test nothing. No retries: one try is one handshake.
ONE_CONNECTION = [("grpc.use_local_subchannel_pool", 1), ("grpc.enable_retries", 0)]


def open_test_channel(address: str, credentials: grpc.ChannelCredentials | None) -> grpc.aio.Channel:
    if credentials is None:
        return grpc.aio.insecure_channel(address, options=ONE_CONNECTION)
    return grpc.aio.secure_channel(address, credentials, options=ONE_CONNECTION)


async def health_check(address: str, credentials: grpc.ChannelCredentials | None, service: str = "liveness") -> str:
    """One health check over a new connection: the status name, or the error code's name when refused."""
    async with open_test_channel(address, credentials) as channel:
        try:
            response = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=5
            )
        except grpc.aio.AioRpcError as error:
            return error.code().name
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


async def outcomes(address: str, credentials: grpc.ChannelCredentials | None, tries: int) -> list[str]:
    """``tries`` health checks, each over its own new connection, one after the other."""
    return [await health_check(address, credentials) for _ in range(tries)]


async def wait_serving_tls(address: str, credentials: grpc.ChannelCredentials, timeout_s: float = 60.0) -> None:
    """Wait until the server at ``address`` answers SERVING for the whole server over TLS."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while await health_check(address, credentials, service="") != "SERVING":
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{address} did not become SERVING over TLS within {timeout_s}s")
        await asyncio.sleep(0.1)


def localhost(runner: ServiceRunner) -> str:
    """The runner's address by name (its certificate names both). The tests dial 127.0.0.1 otherwise: localhost
    resolves to ::1 too, where nothing listens, and gRPC then reports that refusal instead of the handshake's."""
    return f"localhost:{runner.port}"


@pytest.fixture(scope="session")
async def mtls_registry(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServiceRunner]:
    values = {**QUICK, "data_dir": tmp_path_factory.mktemp("tls-registry"), **serving_tls(pki, mutual=True)}
    settings = RegistrySettings(**values)  # type: ignore[arg-type]
    runner = await start(RegistryApp(settings), settings)
    await wait_serving_tls(runner.address, client_credentials(pki.authority.cert, pki.client))
    yield runner
    await runner.stop(0)


ABSENT_EMBEDDER = f"127.0.0.1:{free_port()}"


@pytest.fixture(scope="session")
async def tls_gateway(pki: Pki, mtls_registry: ServiceRunner) -> AsyncIterator[ServiceRunner]:
    settings = gateway_settings(
        ABSENT_EMBEDDER, mtls_registry.address, **serving_tls(pki, mutual=False), **calling_mtls(pki)
    )
    runner = await start(GatewayApp(settings), settings)
    yield runner
    await runner.stop(0)
