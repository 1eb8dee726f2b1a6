"""Settings of the gateway (environment variables ``FACEREC_GATEWAY_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from facerec.runtime.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    """Where the embedder and registry are, who may call, and how decisions are made."""

    model_config = SettingsConfigDict(env_prefix="FACEREC_GATEWAY_", extra="ignore")

    port: int = Field(50051, ge=0, le=65535, description="gRPC port; 0 picks a free one.")
    metrics_port: int = Field(9101, ge=0, le=65535, description="Prometheus /metrics port; 0 disables it.")
    embedder_address: str = Field(
        "127.0.0.1:50052",
        description="host:port of the embedder service, or dns:///name:port: calls go round-robin over every "
        "address the name resolves to (a headless Service's replicas).",
    )
    registry_address: str = Field(
        "127.0.0.1:50053", description="host:port (or dns:///name:port, round-robin) of the registry service."
    )
    max_connection_age_grace_s: float | None = Field(
        None,
        ge=0,
        description="Time the calls on a connection past its age get to finish; unset: as long as they need "
        "(a BulkEnroll or IdentifyStream stream lasts as long as its client keeps it).",
    )
    api_keys_file: Path | None = Field(
        None, description="YAML/JSON file of API keys (sha256 hashes) -> tenant and allowed collections."
    )
    api_keys: str | None = Field(
        None, description="The same document inline (JSON), e.g. from a Kubernetes Secret. Used with the file."
    )
    default_threshold: float = Field(
        0.6, gt=0, le=2, description="Decision threshold of new collections (euclidean distance, dlib ResNet)."
    )
    default_collection: str = Field("default", description="Collection used when a request names none.")
    downstream_timeout_s: float = Field(
        30.0, gt=0, description="Deadline of a downstream call when the caller set none."
    )
    stream_message_timeout_s: float = Field(
        60.0,
        gt=0,
        description="Streams (BulkEnroll, IdentifyStream): deadline of each message's work (one person's "
        "enrollment, one frame), within the call's own deadline if the client set one; the stream itself has none.",
    )
    # Enrollment minimums, chosen from benchmarks/quality_gates.py on $FACEREC_FACES_DIR (see docs): each measure is
    # defined in facerec_embedder.quality.
    min_face_size_px: float = Field(
        20.0, ge=0, description="Enrollment: smallest acceptable face (side of the chip's face square, photo px)."
    )
    min_sharpness: float = Field(
        0.6, ge=0, description="Enrollment: least acceptable sharpness (detail at the face's native resolution)."
    )
    min_frontality: float = Field(0.3, ge=0, le=1, description="Enrollment: least acceptable frontality.")
