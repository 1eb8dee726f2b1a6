"""Settings base: one pydantic-settings class per service, read from environment variables.

Each service subclasses :class:`ServiceSettings` with its own prefix (``FACEREC_GATEWAY_`` ...) and defaults;
:func:`settings_help` renders every variable with its default and meaning for the service's ``--help``. A setting
that every service of a deployment shares has one name for all of them (``FACEREC_TRACING``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field
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
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    log_format: Literal["json", "text"] = Field("json", description="json: one JSON object per line.")
    tracing: Literal["off", "otlp"] = Field(
        "off",
        validation_alias="FACEREC_TRACING",
        description="OpenTelemetry traces, one variable for every service: otlp exports a span per call and per "
        "stage to OTEL_EXPORTER_OTLP_ENDPOINT (OTLP/gRPC; the standard OTEL_* variables apply).",
    )


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
