"""Settings of the embedder service (environment variables ``FACEREC_EMBEDDER_*``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from facerec.runtime.settings import MiB, ServiceSettings
from facerec_embedder.admission import default_max_in_flight


class EmbedderSettings(ServiceSettings):
    """Where Triton is, how photos are decoded and faces detected, how chips are batched."""

    model_config = SettingsConfigDict(env_prefix="FACEREC_EMBEDDER_", extra="ignore")

    port: int = Field(50052, ge=0, le=65535, description="gRPC port; 0 picks a free one.")
    metrics_port: int = Field(9102, ge=0, le=65535, description="Prometheus /metrics port; 0 disables it.")
    triton_url: str = Field(
        "127.0.0.1:8001",
        description="host:port of Triton's gRPC endpoint, or dns:///name:port: inference calls go round-robin over "
        "every address the name resolves to (Triton replicas behind a headless Service).",
    )
    triton_model: str = Field("face_embedder", description="Name of the embedding model in Triton's repository.")
    triton_timeout_s: float = Field(10.0, gt=0, description="Deadline of one Triton inference call.")
    detector: Literal["yunet", "hog"] = Field(
        "yunet",
        description="Face detector: YuNet (libfacedetection; trained on WIDER FACE, research-use terms) or dlib's HOG.",
    )
    detection_max_side: int = Field(
        640, ge=64, le=8192, description="Longest side of the photo copy the detector searches (larger photos shrunk)."
    )
    upsample: int | None = Field(
        None,
        ge=0,
        le=3,
        description="Doublings of the detection copy before detecting (faces half as small, ~4x the time, per step); "
        "unset: the detector's default (YuNet 0, HOG 1).",
    )
    yunet_score_threshold: float = Field(
        0.9, ge=0.0, le=1.0, description="YuNet's lowest confidence kept (dog faces score up to 0.88, people 0.9+)."
    )
    yunet_threads: int = Field(1, ge=1, le=64, description="YuNet's OpenMP threads in each detection worker.")
    max_image_bytes: int = Field(20 * MiB, gt=0, description="Largest encoded photo accepted.")
    max_image_pixels: int = Field(40_000_000, gt=0, description="Largest decoded photo (width x height) accepted.")
    batch_max_size: int = Field(64, ge=1, le=256, description="Most chips sent to Triton in one call.")
    batch_max_delay_ms: float = Field(2.0, ge=0, description="How long a chip waits for others to share a Triton call.")
    detect_workers: int = Field(2, ge=1, description="Threads decoding photos and running the face detector.")
    max_in_flight: int | None = Field(
        None,
        ge=1,
        description="Most calls worked on at once; past it a call is refused at once with RESOURCE_EXHAUSTED "
        "(retry after overload_retry_after_ms). Unset: 4 per detection worker.",
    )
    max_chip_calls_in_flight: int = Field(
        64,
        ge=1,
        description="Most EmbedChips calls worked on at once (they skip detection: Triton's queue is their limit); "
        "past it RESOURCE_EXHAUSTED as for photos.",
    )
    overload_retry_after_ms: float = Field(
        250.0, gt=0, description="Delay an overload refusal advises before a retry (its google.rpc.RetryInfo)."
    )

    def in_flight_limit(self) -> int:
        """``max_in_flight``, or its default sized from the detection workers."""
        return self.max_in_flight or default_max_in_flight(self.detect_workers)
