"""The embedding-runtime seam: aligned chips in, 128-d descriptors out.

The pipeline and the batcher depend only on :class:`EmbeddingRuntime`. Two implementations satisfy it:
:class:`TritonEmbedder` (the service's runtime: a gRPC client of Triton, which batches again and runs the model
on GPUs in production) and :class:`OnnxRuntimeEmbedder` (the same ONNX file run in-process with onnxruntime:
benchmarks, the single-process pipeline, tests without Triton).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import onnxruntime
import tritonclient.grpc.aio as triton_grpc
from tritonclient.utils import InferenceServerException

from facerec.runtime.channels import RERESOLUTION_OPTIONS, balanced_service_config
from facerec_embedder.admission import REFUSALS
from facerec_embedder.errors import (
    InvalidChip,
    ModelOutputError,
    Overloaded,
    TritonError,
    TritonTimeout,
    TritonUnavailable,
)
from facerec_embedder.model import CHIP_SIZE, EMBEDDING_DIM, INPUT_NAME, OUTPUT_NAME, TRITON_MODEL_NAME

Chips = npt.NDArray[np.uint8]
"""A batch of aligned faces: (N, 150, 150, 3) uint8 RGB."""

Embeddings = npt.NDArray[np.float32]
"""One descriptor per chip: (N, 128) float32, raw (not normalised)."""

CHIP_SHAPE = (CHIP_SIZE, CHIP_SIZE, 3)
CHIP_BYTES = CHIP_SIZE * CHIP_SIZE * 3


class EmbeddingRuntime(Protocol):
    """Computes descriptors of aligned chips."""

    async def embed(self, chips: Chips) -> Embeddings:
        """One (128,) float32 descriptor per (150, 150, 3) uint8 chip, in order."""
        ...

    async def is_ready(self) -> bool:
        """Whether ``embed`` can succeed now (the model is loaded and reachable)."""
        ...


def check_chips(chips: npt.NDArray[Any]) -> Chips:
    """``chips`` itself when it is an (N, 150, 150, 3) uint8 array; ``InvalidChip`` otherwise."""
    if chips.dtype != np.uint8:
        raise InvalidChip(f"chips must be uint8, not {chips.dtype}")
    if chips.ndim != 4 or chips.shape[1:] != CHIP_SHAPE:
        raise InvalidChip(f"chips must have shape (N, 150, 150, 3), not {chips.shape}")
    return chips


def chips_from_bytes(raw_chips: Sequence[bytes]) -> Chips:
    """Chips sent as raw bytes (row-major 150x150 RGB, 67,500 bytes each) as one (N, 150, 150, 3) array."""
    for index, raw in enumerate(raw_chips):
        if len(raw) != CHIP_BYTES:
            raise InvalidChip(f"chip {index} has {len(raw):,} bytes; a 150x150 RGB chip has {CHIP_BYTES:,} bytes")
    if not raw_chips:
        return np.zeros((0, *CHIP_SHAPE), dtype=np.uint8)
    flat = np.frombuffer(b"".join(raw_chips), dtype=np.uint8)
    return flat.reshape(len(raw_chips), *CHIP_SHAPE)


def _no_embeddings() -> Embeddings:
    return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)


def _check_embeddings(embeddings: npt.NDArray[Any], count: int, source: str) -> Embeddings:
    if embeddings.shape != (count, EMBEDDING_DIM):
        raise ModelOutputError(
            f"{source} returned embeddings of shape {embeddings.shape} for {count} chips; "
            f"expected ({count}, {EMBEDDING_DIM})"
        )
    return np.ascontiguousarray(embeddings, dtype=np.float32)


class OnnxRuntimeEmbedder:
    """Runs the ONNX model in this process with onnxruntime on the CPU.

    Inference runs in ``executor`` (by default a dedicated single thread: onnxruntime already spreads one
    batch over ``threads`` cores, and two batches at once would only compete for them).
    """

    def __init__(self, model_path: Path, *, threads: int = 0, executor: Executor | None = None) -> None:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads  # 0: onnxruntime's default, one per core
        self._session = onnxruntime.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        inputs = [node.name for node in self._session.get_inputs()]
        outputs = [node.name for node in self._session.get_outputs()]
        if inputs != [INPUT_NAME] or outputs != [OUTPUT_NAME]:
            raise ValueError(
                f"{model_path} has inputs {inputs} and outputs {outputs}; expected [{INPUT_NAME!r}] and "
                f"[{OUTPUT_NAME!r}]"
            )
        self._owns_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnxruntime")

    async def embed(self, chips: Chips) -> Embeddings:
        """Descriptors of ``chips``, computed in the executor so the event loop stays free."""
        check_chips(chips)
        if len(chips) == 0:
            return _no_embeddings()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._run, chips)

    async def is_ready(self) -> bool:
        """Always true: the model was loaded by the constructor."""
        return True

    def close(self) -> None:
        """Stop the executor this embedder created (one passed in is the caller's to stop)."""
        if self._owns_executor:
            self._executor.shutdown(wait=True)

    def _run(self, chips: Chips) -> Embeddings:
        (embeddings,) = self._session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(chips)})
        return _check_embeddings(np.asarray(embeddings), len(chips), "onnxruntime")


# gRPC's default reconnect backoff grows to 120 s: after a long Triton outage the channel could wait that
# long before trying again, failing every call meanwhile. A short ceiling makes recovery prompt. (Not
# grpc.min_reconnect_backoff_ms: despite its name it is the connect timeout, 20 s by default.)
# Balancing: tritonclient hands the URL and these arguments (which replace its own) to grpc.aio as they are, so
# a dns:/// URL naming several Triton servers gets round-robin over all of them, resolved again when a
# connection ends (Triton's --grpc-max-connection-age ends them). No retry policy: a full Triton queue answers
# UNAVAILABLE too, and must reach the embedder's overload refusal at once, not be retried.
_TRITON_CHANNEL_ARGS: list[tuple[str, Any]] = [
    ("grpc.max_send_message_length", 2**31 - 1),
    ("grpc.max_receive_message_length", 2**31 - 1),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    *RERESOLUTION_OPTIONS,
    ("grpc.service_config", json.dumps(balanced_service_config(retry=False))),
]

# Status codes after which a later call may succeed: Triton down, restarting, overloaded, model not loaded.
_TRANSIENT_STATUSES = {"StatusCode.UNAVAILABLE", "StatusCode.RESOURCE_EXHAUSTED", "StatusCode.CANCELLED"}

# What Triton answers (with UNAVAILABLE) when the model's queue holds max_queue_size requests already.
_QUEUE_FULL = "exceeds maximum queue size"


class TritonEmbedder:
    """Sends chips to the embedding model on a Triton server over gRPC.

    Every call carries a timeout. Failures are translated where they enter: Triton's queue full ->
    ``Overloaded`` (RESOURCE_EXHAUSTED, retry after ``overload_retry_after_s``: the embedder's own overload
    refusal, not UNAVAILABLE, which every channel on the way would retry at once); Triton unreachable or the
    model not ready -> ``TritonUnavailable``; no answer in time -> ``TritonTimeout``; anything else ->
    ``TritonError`` (a bug). The gRPC channel reconnects by itself, so the embedder works again as soon as
    Triton is back. Create and use it from one event loop (the channel is bound to the loop of its first call).
    """

    def __init__(
        self,
        url: str,
        model_name: str = TRITON_MODEL_NAME,
        *,
        timeout_s: float = 10.0,
        readiness_timeout_s: float = 2.0,
        model_version: str = "",
        overload_retry_after_s: float = 0.25,
    ) -> None:
        self.url = url
        self.overload_retry_after_s = overload_retry_after_s
        self.model_name = model_name
        self.timeout_s = timeout_s
        self.readiness_timeout_s = readiness_timeout_s
        self.model_version = model_version
        self._client: triton_grpc.InferenceServerClient | None = None

    async def embed(self, chips: Chips) -> Embeddings:
        """Descriptors of ``chips`` from one Triton inference call."""
        check_chips(chips)
        if len(chips) == 0:
            return _no_embeddings()
        request = triton_grpc.InferInput(INPUT_NAME, list(chips.shape), "UINT8")
        request.set_data_from_numpy(np.ascontiguousarray(chips))
        try:
            result = await self._connected().infer(
                self.model_name,
                [request],
                model_version=self.model_version,
                outputs=[triton_grpc.InferRequestedOutput(OUTPUT_NAME)],
                client_timeout=self.timeout_s,
            )
        except InferenceServerException as error:
            raise self._translated(error) from error
        embeddings = result.as_numpy(OUTPUT_NAME)
        if embeddings is None:
            raise ModelOutputError(f"Triton at {self.url} returned no {OUTPUT_NAME!r} output")
        return _check_embeddings(embeddings, len(chips), f"Triton at {self.url}")

    async def is_ready(self) -> bool:
        """Whether the MODEL is loaded and ready (a healthy server may hold a model that is not)."""
        try:
            ready = await self._connected().is_model_ready(
                self.model_name, self.model_version, client_timeout=self.readiness_timeout_s
            )
        except InferenceServerException:
            return False
        return bool(ready)

    async def close(self) -> None:
        """Close the gRPC channel; a later call opens a new one."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    def _connected(self) -> triton_grpc.InferenceServerClient:
        if self._client is None:
            self._client = triton_grpc.InferenceServerClient(self.url, channel_args=_TRITON_CHANNEL_ARGS)
        return self._client

    def _translated(self, error: InferenceServerException) -> Exception:
        status = str(error.status())
        reason = str(error.message())
        if status == "StatusCode.DEADLINE_EXCEEDED":
            return TritonTimeout(self.url, self.timeout_s)
        if _QUEUE_FULL in reason.lower():
            REFUSALS.labels("triton_overloaded").inc()
            return Overloaded(f"Triton at {self.url} is overloaded ({reason})", self.overload_retry_after_s)
        # "Stub process ... is not healthy": the model's backend process died; a restart of Triton cures it.
        transient = status in _TRANSIENT_STATUSES or "not ready" in reason or "not healthy" in reason
        if transient or "unknown model" in reason.lower():
            return TritonUnavailable(self.url, f"{status}: {reason}")
        return TritonError(f"Triton at {self.url} refused the inference call: {status}: {reason}")
