"""TLS settings are checked when a service starts, and the SDK's TLS arguments when a client is made: a
half-made configuration fails at once with a message naming the setting, never later as failed handshakes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from facerec.runtime import tls
from facerec.runtime.server import ServiceRunner
from facerec.sdk import Client
from facerec.sdk.channel import channel_credentials, system_roots
from facerec.tls_files import TlsFileError
from facerec_gateway.settings import GatewaySettings
from facerec_registry.settings import RegistrySettings
from tests.runtime.probe import ProbeApp
from tests.tls.conftest import Pki


def gateway(**values: object) -> GatewaySettings:
    return GatewaySettings(port=0, metrics_port=0, **values)  # type: ignore[arg-type]


def test_nothing_set_is_plaintext_both_ways() -> None:
    settings = gateway()
    assert tls.server_credentials(settings) is None
    assert tls.channel_credentials(settings) is None
    assert tls.describe(settings) == "plaintext"


def test_the_settings_are_read_from_the_services_own_variables(monkeypatch: pytest.MonkeyPatch, pki: Pki) -> None:
    monkeypatch.setenv("FACEREC_REGISTRY_TLS_CERT_FILE", str(pki.server.cert))
    monkeypatch.setenv("FACEREC_REGISTRY_TLS_KEY_FILE", str(pki.server.key))
    monkeypatch.setenv("FACEREC_REGISTRY_TLS_CLIENT_CA_FILE", str(pki.authority.cert))
    settings = RegistrySettings()
    assert settings.tls_cert_file == pki.server.cert and settings.tls_client_ca_file == pki.authority.cert
    assert tls.describe(settings) == "mutual TLS"
    assert isinstance(tls.server_credentials(settings), grpc.ServerCredentials)


def test_an_empty_variable_is_unset_not_the_current_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEREC_GATEWAY_TLS_CERT_FILE", "")
    monkeypatch.setenv("FACEREC_GATEWAY_TLS_KEY_FILE", "")
    settings = GatewaySettings()
    assert settings.tls_cert_file is None and tls.server_credentials(settings) is None


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ("tls_cert_file", "FACEREC_GATEWAY_TLS_KEY_FILE"),
        ("tls_key_file", "FACEREC_GATEWAY_TLS_CERT_FILE"),
    ],
)
def test_a_server_certificate_without_its_key_or_the_reverse_names_the_missing_setting(
    pki: Pki, given: str, named: str
) -> None:
    with pytest.raises(TlsFileError, match=f"is set but {named} is not"):
        tls.server_credentials(gateway(**{given: pki.server.cert}))


def test_a_client_ca_without_a_server_certificate_is_refused(pki: Pki) -> None:
    with pytest.raises(TlsFileError, match="FACEREC_GATEWAY_TLS_CLIENT_CA_FILE is set but FACEREC_GATEWAY_TLS_CERT"):
        tls.server_credentials(gateway(tls_client_ca_file=pki.authority.cert))


def test_an_unreadable_file_names_its_setting_and_path(pki: Pki, tmp_path: Path) -> None:
    missing = tmp_path / "absent.pem"
    with pytest.raises(TlsFileError, match=r"FACEREC_GATEWAY_TLS_KEY_FILE \(.*absent.pem\) cannot be read"):
        tls.server_credentials(gateway(tls_cert_file=pki.server.cert, tls_key_file=missing))


def test_a_key_of_another_certificate_is_refused(pki: Pki) -> None:
    with pytest.raises(TlsFileError, match=r"FACEREC_GATEWAY_TLS_KEY_FILE .* is not the private key of"):
        tls.server_credentials(gateway(tls_cert_file=pki.server.cert, tls_key_file=pki.client.key))


def test_a_file_holding_no_certificate_is_refused(pki: Pki) -> None:
    with pytest.raises(TlsFileError, match=r"FACEREC_GATEWAY_TLS_CERT_FILE .* holds no PEM certificate"):
        tls.server_credentials(gateway(tls_cert_file=pki.server.key, tls_key_file=pki.server.key))
    with pytest.raises(TlsFileError, match=r"FACEREC_GATEWAY_TLS_CA_FILE .* holds no PEM CA certificate"):
        tls.channel_credentials(gateway(tls_ca_file=pki.server.key))


def test_an_outbound_client_certificate_without_its_key_is_refused(pki: Pki) -> None:
    values = {"tls_ca_file": pki.authority.cert, "tls_client_cert_file": pki.client.cert}
    with pytest.raises(TlsFileError, match="CLIENT_CERT_FILE is set but FACEREC_GATEWAY_TLS_CLIENT_KEY_FILE is not"):
        tls.channel_credentials(gateway(**values))


def test_an_outbound_client_certificate_without_a_ca_bundle_is_refused(pki: Pki) -> None:
    values = {"tls_client_cert_file": pki.client.cert, "tls_client_key_file": pki.client.key}
    with pytest.raises(TlsFileError, match="is set but FACEREC_GATEWAY_TLS_CA_FILE is not"):
        tls.channel_credentials(gateway(**values))


async def test_a_service_with_a_half_made_tls_setting_does_not_start(pki: Pki) -> None:
    from tests.runtime.conftest import probe_settings

    runner = ServiceRunner(ProbeApp(), probe_settings(tls_cert_file=pki.server.cert))
    with pytest.raises(TlsFileError, match="FACEREC_TLS_CERT_FILE is set but FACEREC_TLS_KEY_FILE is not"):
        await runner.start()


def test_the_gateway_refuses_to_start_with_a_half_made_outbound_setting(pki: Pki) -> None:
    from facerec_gateway.app import GatewayApp

    settings = gateway(tls_ca_file=pki.authority.cert, tls_client_key_file=pki.client.key)
    with pytest.raises(TlsFileError, match="FACEREC_GATEWAY_TLS_CLIENT_KEY_FILE is set but"):
        GatewayApp(settings)


def test_the_sdk_checks_its_tls_arguments_when_the_client_is_made(pki: Pki) -> None:
    with pytest.raises(TlsFileError, match="client_cert_file is set but client_key_file is not"):
        Client("localhost:1", tls=True, client_cert_file=pki.client.cert)
    with pytest.raises(TlsFileError, match=r"client_key_file .* is not the private key of client_cert_file"):
        Client(
            "localhost:1", ca_file=pki.authority.cert, client_cert_file=pki.client.cert, client_key_file=pki.server.key
        )
    with pytest.raises(ValueError, match="either credentials or the TLS arguments"):
        Client("localhost:1", credentials=grpc.ssl_channel_credentials(), ca_file=pki.authority.cert)


def test_the_sdk_is_plaintext_unless_asked_and_ca_file_or_a_client_certificate_imply_tls(pki: Pki) -> None:
    assert channel_credentials() is None
    assert channel_credentials(ca_file=pki.authority.cert) is not None
    assert channel_credentials(
        ca_file=pki.authority.cert, client_cert_file=pki.client.cert, client_key_file=pki.client.key
    )


def test_the_system_trust_store_is_the_file_openssl_uses(monkeypatch: pytest.MonkeyPatch, pki: Pki) -> None:
    monkeypatch.delenv("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.authority.cert))
    assert system_roots() == pki.authority.cert.read_bytes()


def test_grpc_own_roots_override_is_left_to_grpc(monkeypatch: pytest.MonkeyPatch, pki: Pki) -> None:
    monkeypatch.setenv("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", str(pki.authority.cert))
    assert system_roots() is None


def test_without_a_system_bundle_certifi_is_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    certifi = pytest.importorskip("certifi")
    monkeypatch.delenv("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "no-such-bundle.pem"))
    assert system_roots() == Path(certifi.where()).read_bytes()


def test_a_console_script_with_a_half_made_setting_exits_2_with_one_line_before_opening_its_store(
    pki: Pki, tmp_path: Path
) -> None:
    data_dir = tmp_path / "registry"
    env = {
        **os.environ,
        "FACEREC_REGISTRY_PORT": "0",
        "FACEREC_REGISTRY_METRICS_PORT": "0",
        "FACEREC_REGISTRY_DATA_DIR": str(data_dir),
        "FACEREC_REGISTRY_TLS_CERT_FILE": str(pki.server.cert),
    }
    done = subprocess.run(
        [str(Path(sys.executable).parent / "facerec-registry")], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("facerec-registry: FACEREC_REGISTRY_TLS_CERT_FILE is set but FACEREC_REGISTRY_TLS_KEY_FILE")
    assert not data_dir.exists()
