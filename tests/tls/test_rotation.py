"""A certificate replaced on disk is served by the running gateway to the next connection, without a restart;
a half-replaced pair (a new certificate next to the old key) is not used until the key follows."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from facerec.runtime.server import ServiceRunner
from facerec.sdk import AsyncClient
from facerec_gateway.app import GatewayApp
from tests.fixtures.stack import ALPHA_KEY, gateway_settings, start
from tests.tls.certs import Issued, serial_number
from tests.tls.conftest import ABSENT_EMBEDDER, Pki, calling_mtls, client_credentials, health_check


def install(source: Path, target: Path) -> None:
    """Replace ``target`` at once (write beside it, then rename), as a Secret volume or cert-manager does."""
    staged = target.with_suffix(".new")
    shutil.copyfile(source, staged)
    staged.replace(target)


def served_serial(address: str, ca: Path) -> str:
    """The serial number of the certificate the server presents to a new connection (verified against ``ca``)."""
    host, _, port = address.rpartition(":")
    context = ssl.create_default_context(cafile=str(ca))
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=host) as wrapped,
    ):
        certificate = wrapped.getpeercert()
    assert certificate is not None
    return str(certificate["serialNumber"])


def publish_secret(folder: Path, version: str, files: Issued) -> None:
    """Write ``files`` into ``folder`` the way the kubelet updates a Secret volume: a new timestamped folder,
    then one atomic rename of the ``..data`` symlink; ``tls.crt`` and ``tls.key`` are links through it."""
    (folder / version).mkdir()
    shutil.copyfile(files.cert, folder / version / "tls.crt")
    shutil.copyfile(files.key, folder / version / "tls.key")
    staged = folder / "..data_tmp"
    staged.symlink_to(version)
    staged.replace(folder / "..data")
    for name in ("tls.crt", "tls.key"):
        if not (folder / name).is_symlink():
            (folder / name).symlink_to(Path("..data") / name)


async def serving_gateway(pki: Pki, registry: ServiceRunner, live: Issued) -> ServiceRunner:
    tls = {"tls_cert_file": live.cert, "tls_key_file": live.key}
    settings = gateway_settings(ABSENT_EMBEDDER, registry.address, **tls, **calling_mtls(pki))
    return await start(GatewayApp(settings), settings)


@pytest.fixture
async def rotating_gateway(
    pki: Pki, mtls_registry: ServiceRunner, tmp_path: Path
) -> AsyncIterator[tuple[ServiceRunner, Issued]]:
    """A gateway serving the files of ``tmp_path`` (a copy of the authority's server certificate)."""
    live = Issued(tmp_path / "tls.crt", tmp_path / "tls.key")
    install(pki.server.cert, live.cert)
    install(pki.server.key, live.key)
    runner = await serving_gateway(pki, mtls_registry, live)
    yield runner, live
    await runner.stop(0)


async def test_a_replaced_certificate_is_served_without_a_restart(
    rotating_gateway: tuple[ServiceRunner, Issued], pki: Pki
) -> None:
    gateway, live = rotating_gateway
    successor = pki.stranger.issue("rotated-server")  # a new certificate from a new CA: unmistakable
    before = await asyncio.to_thread(served_serial, gateway.address, pki.authority.cert)
    assert before == serial_number(pki.server.cert)
    assert await health_check(gateway.address, client_credentials(pki.stranger.cert)) == "UNAVAILABLE"
    async with AsyncClient(gateway.address, ALPHA_KEY, ca_file=pki.authority.cert, timeout=10) as opened_before:
        await opened_before.list_collections()

        install(successor.key, live.key)
        install(successor.cert, live.cert)

        after = await asyncio.to_thread(served_serial, gateway.address, pki.stranger.cert)
        assert after == serial_number(successor.cert)
        assert await health_check(gateway.address, client_credentials(pki.stranger.cert)) == "SERVING"
        assert await health_check(gateway.address, client_credentials(pki.authority.cert)) == "UNAVAILABLE"
        await opened_before.list_collections()  # a connection made before keeps working


async def test_a_half_replaced_pair_keeps_the_previous_one_until_the_key_follows(
    rotating_gateway: tuple[ServiceRunner, Issued], pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    gateway, live = rotating_gateway
    successor = pki.authority.issue("successor-server")
    install(successor.cert, live.cert)  # the key is still the previous certificate's

    with caplog.at_level("WARNING", logger="facerec.tls"):
        assert await asyncio.to_thread(served_serial, gateway.address, pki.authority.cert) == serial_number(
            pki.server.cert
        )
    assert "is not the private key of" in caplog.text and "still serving the previous ones" in caplog.text
    credentials = client_credentials(pki.authority.cert)
    assert await health_check(gateway.address, credentials) == "SERVING"

    install(successor.key, live.key)
    assert await asyncio.to_thread(served_serial, gateway.address, pki.authority.cert) == serial_number(successor.cert)
    assert await health_check(gateway.address, credentials) == "SERVING"


async def test_a_renewed_kubernetes_secret_is_served_without_a_restart(
    pki: Pki, mtls_registry: ServiceRunner, tmp_path: Path
) -> None:
    publish_secret(tmp_path, "..2026_01_01_00_00_00.1", pki.server)
    gateway = await serving_gateway(pki, mtls_registry, Issued(tmp_path / "tls.crt", tmp_path / "tls.key"))
    try:
        renewed = pki.authority.issue("renewed-server")
        publish_secret(tmp_path, "..2026_02_01_00_00_00.2", renewed)
        served = await asyncio.to_thread(served_serial, gateway.address, pki.authority.cert)
        assert served == serial_number(renewed.cert) != serial_number(pki.server.cert)
    finally:
        await gateway.stop(0)


def test_grpc_is_told_to_keep_its_configuration_while_the_files_are_unchanged(pki: Pki) -> None:
    from facerec.runtime.tls import ServerCertificates
    from facerec.tls_files import PemFile

    certificates = ServerCertificates(PemFile("CERT", pki.server.cert), PemFile("KEY", pki.server.key), None)
    assert isinstance(certificates.initial, grpc.ServerCertificateConfiguration)
    assert [certificates() for _ in range(3)] == [None, None, None]
