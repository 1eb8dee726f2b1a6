"""Running NVIDIA Triton for the embedder: the launcher of the ``tritonserver`` binary bundled in
``nvidia-pytriton`` (one machine, tests) and its command line (``python -m facerec_embedder.triton``)."""

from facerec_embedder.triton.launcher import (
    DEFAULT_MODEL_CONFIG,
    TritonError,
    TritonNotInstalled,
    TritonServer,
    TritonStartError,
)

__all__ = ["DEFAULT_MODEL_CONFIG", "TritonError", "TritonNotInstalled", "TritonServer", "TritonStartError"]
