"""What the services started by ``facerec up`` inherit from the caller's environment."""

from __future__ import annotations

import pytest

from facerec.cli.stack import _inherited_env


def test_tls_settings_meant_for_a_deployment_are_not_passed_to_the_localhost_stack(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FACEREC_GATEWAY_TLS_CERT_FILE", "/etc/facerec/tls/tls.crt")
    monkeypatch.setenv("FACEREC_REGISTRY_TLS_CLIENT_CA_FILE", "/etc/facerec/mtls/ca.crt")
    monkeypatch.setenv("FACEREC_GATEWAY_LOG_LEVEL", "DEBUG")
    env = _inherited_env()
    assert "FACEREC_GATEWAY_TLS_CERT_FILE" not in env
    assert "FACEREC_REGISTRY_TLS_CLIENT_CA_FILE" not in env
    assert env["FACEREC_GATEWAY_LOG_LEVEL"] == "DEBUG"
