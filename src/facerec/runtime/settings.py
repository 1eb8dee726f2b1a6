"""Settings base: one pydantic-settings class per service, read from environment variables.

Each service subclasses :class:`ServiceSettings` with its own prefix (``FACEREC_GATEWAY_`` ...) and defaults;
:func:`settings_help` renders every variable with its default and meaning for the service's ``--help``. A setting
that every service of a deployment shares has one name for all of them (``FACEREC_TRACING``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MiB = 1024 * 1024


class ServiceSettings(BaseSettings):
    """What every facerec service can be told. Subclasses set ``model_config`` with their env prefix."""

    # validate_by_name: a setting with a shared variable name (an alias) is still passed by field name in code.
    model_config = SettingsConfigDict(env_prefix="FACEREC_", extra="ignore", validate_by_name=True)

    host: str = Field("127.0.0.1", description="Address to bind the gRPC server to (0.0.0.0 in containers).")
    port: int = Field(0, ge=0, le=65535, description="gRPC port; 0 picks a free one.")
    metrics_port: int = Field(
        0, ge=0, le=65535, description="Port of the Prometheus /metrics HTTP endpoint; 0 disables it."
    )
    metrics_host: str = Field("127.0.0.1", description="Address the metrics endpoint binds to.")
    max_message_bytes: int = Field(
        32 * MiB, ge=1024, description="Largest gRPC message accepted or sent; larger -> RESOURCE_EXHAUSTED."
    )
    grace_period_s: float = Field(
        10.0,
        ge=0,
        description="On SIGTERM/SIGINT: seconds in-flight calls get to finish before cancellation.",
    )
    health_interval_s: float = Field(
        1.0,
        gt=0,
        description="How often the readiness of the service's dependencies is re-checked for health.",
    )
    # Scaling out (facerec.runtime.server): connections end after an age, so that clients balancing over a dns:///
    # target resolve it again and spread over replicas added since; a drain can let clients move away first.
    max_connection_age_s: float = Field(
        30.0,
        ge=0,
        description="Longest life of a client's connection (gRPC adds +-10 % jitter): the server then asks the "
        "client to reconnect (GOAWAY), which resolves the service's name again; 0: no limit.",
    )
    max_connection_age_grace_s: float | None = Field(
        10.0,
        ge=0,
        description="Time the calls on a connection past its age get to finish before it is closed; unset: as "
        "long as they need.",
    )
    shutdown_delay_s: float = Field(
        0.0,
        ge=0,
        description="On SIGTERM/SIGINT: seconds the service keeps serving with its health already NOT_SERVING "
        "before it refuses new calls (load balancers and clients move away first); 0 where a preStop delay does it.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    log_format: Literal["json", "text"] = Field("json", description="json: one JSON object per line.")
    tracing: Literal["off", "otlp"] = Field(
        "off",
        validation_alias="FACEREC_TRACING",
        description="OpenTelemetry traces, one variable for every service: otlp exports a span per call and per "
        "stage to OTEL_EXPORTER_OTLP_ENDPOINT (OTLP/gRPC; the standard OTEL_* variables apply).",
    )
    # TLS (facerec.runtime.tls). Unset: plaintext, as `facerec up` serves on localhost.
    tls_cert_file: Path | None = Field(
        None, description="Serve TLS with this PEM certificate chain (with TLS_KEY_FILE); re-read when it changes."
    )
    tls_key_file: Path | None = Field(None, description="PEM private key of TLS_CERT_FILE; re-read when it changes.")
    tls_client_ca_file: Path | None = Field(
        None, description="Mutual TLS: require client certificates signed by a CA of this PEM bundle."
    )
    tls_ca_file: Path | None = Field(
        None,
        description="Outbound calls to other facerec services (the gateway's to the embedder and registry) use "
        "TLS, trusting this PEM CA bundle.",
    )
    tls_client_cert_file: Path | None = Field(
        None, description="Outbound mutual TLS: the PEM certificate chain presented (with TLS_CLIENT_KEY_FILE)."
    )
    tls_client_key_file: Path | None = Field(None, description="PEM private key of TLS_CLIENT_CERT_FILE.")

    @field_validator(
        "tls_cert_file", "tls_key_file", "tls_client_ca_file", "tls_ca_file", "tls_client_cert_file",
        "tls_client_key_file", mode="before",
    )  # fmt: skip
    @classmethod
    def _empty_file_is_unset(cls, value: object) -> object:
        """``..._TLS_CERT_FILE=`` (empty, as an env file may leave it) means unset, not the folder ``.``."""
        return None if value == "" else value


def env_name(settings_cls: type[BaseSettings], field: str) -> str:
    """The environment variable that sets ``field`` of ``settings_cls``."""
    alias = settings_cls.model_fields[field].validation_alias
    if isinstance(alias, str):
        return alias
    prefix = str(settings_cls.model_config.get("env_prefix", ""))
    return f"{prefix}{field}".upper()


def settings_help(settings_cls: type[BaseSettings]) -> str:
    """A table of every setting: variable, default and description (for ``--help``)."""
    lines = ["settings (environment variables):"]
    for name, field in settings_cls.model_fields.items():
        default: Any = field.get_default(call_default_factory=True)
        shown = "(unset)" if default is None else repr(default)
        lines.append(f"  {env_name(settings_cls, name)} = {shown}")
        if field.description:
            lines.append(f"      {field.description}")
    return "\n".join(lines)
