"""Settings of the registry service (environment variables ``FACEREC_REGISTRY_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from facerec.runtime.settings import ServiceSettings


def default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "facerec" / "registry"


class RegistrySettings(ServiceSettings):
    """Where faces are stored: embedded Qdrant Edge in ``data_dir``, or a Qdrant server when ``qdrant_url`` is set."""

    model_config = SettingsConfigDict(env_prefix="FACEREC_REGISTRY_", extra="ignore")

    port: int = Field(50053, ge=0, le=65535, description="gRPC port; 0 picks a free one.")
    metrics_port: int = Field(9103, ge=0, le=65535, description="Prometheus /metrics port; 0 disables it.")
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Embedded store (Qdrant Edge) data folder; only this process may open it. Unused with a URL.",
    )
    qdrant_url: str | None = Field(
        None,
        description="Qdrant server's REST URL, e.g. http://qdrant:6333 (calls go over gRPC on QDRANT_GRPC_PORT). "
        "Unset: embedded Qdrant Edge.",
    )
    qdrant_grpc_port: int = Field(6334, ge=1, le=65535, description="gRPC port of the Qdrant server.")
    qdrant_https: bool | None = Field(None, description="Force TLS on or off; unset: follow the URL's scheme.")
    qdrant_api_key: str | None = Field(None, description="API key of the Qdrant server.")
    qdrant_timeout_s: float = Field(10.0, gt=0, description="Deadline of one call to the Qdrant server.")
    qdrant_shard_number: int = Field(
        1, ge=1, description="Shards per collection on a Qdrant cluster (a multiple of the node count)."
    )
    qdrant_replication_factor: int = Field(1, ge=1, description="Copies of each shard on a Qdrant cluster.")
    hnsw_m: int = Field(
        32, ge=4, description="HNSW graph degree (32: a person's tight cluster of faces stays well linked)."
    )
    hnsw_ef_construct: int = Field(128, ge=8, description="HNSW build-time beam width.")
    search_ef: int = Field(
        32, ge=8, description="HNSW search-time beam width for nearest faces (recall@10 0.996 at 1M faces)."
    )
    people_search_ef: int = Field(
        384,
        ge=8,
        description="HNSW beam width when searching one face per person (recall@10 people 0.99 at 1M faces).",
    )
    optimize_threshold: int = Field(
        20_000, ge=100, description="Embedded store: build the HNSW index once this many faces are not indexed."
    )
    quantization: bool = Field(True, description="int8 scalar quantization with rescoring (server mode).")
    shared_settings_ttl_s: float = Field(
        5.0,
        ge=0,
        description="Qdrant server: how long a collection's settings are kept between searches (a change made "
        "through another replica is seen within this). The embedded store keeps them until they change.",
    )
    retention_interval_s: float = Field(
        3600.0,
        gt=0,
        description="Seconds between two rounds of upkeep: purging people whose collection's retention period ran "
        "out, and (embedded store) rewriting collections' files without the faces erased since the last round.",
    )
