"""Triton Python-backend model: runs ``model.onnx`` (beside this file) with onnxruntime on CPU.

Used by ``configs/cpu_python.pbtxt`` where no onnxruntime backend exists (the ``tritonserver`` binary bundled
in ``nvidia-pytriton``). Triton's dynamic batcher hands ``execute`` several requests at once; they are
concatenated into one onnxruntime run and the result is split back, so batching works as it does with the
native backend.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

INPUT_NAME = "chips"
OUTPUT_NAME = "embeddings"


def _intra_op_threads(model_config: dict[str, Any]) -> int:
    parameter = model_config.get("parameters", {}).get("intra_op_num_threads", {})
    return int(parameter.get("string_value", "0") or 0)


class TritonPythonModel:
    """The face embedder: UINT8 chips ``[N, 150, 150, 3]`` in, FP32 embeddings ``[N, 128]`` out."""

    def initialize(self, args: dict[str, str]) -> None:
        """Load the ONNX model of this version with onnxruntime's CPU provider."""
        model_config = json.loads(args["model_config"])
        model_path = Path(args["model_repository"]) / args["model_version"] / "model.onnx"
        if not model_path.is_file():
            raise pb_utils.TritonModelException(
                f"{model_path} is missing: run `python -m facerec_embedder.model.convert` first"
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = _intra_op_threads(model_config)
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            os.fspath(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )

    def execute(self, requests: list[Any]) -> list[Any]:
        """Run every request of the batch in one onnxruntime call; answer each with its own rows."""
        chips = [pb_utils.get_input_tensor_by_name(r, INPUT_NAME).as_numpy() for r in requests]
        counts = [len(c) for c in chips]
        try:
            batch = np.ascontiguousarray(np.concatenate(chips, axis=0), dtype=np.uint8)
            embeddings = self._session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]
        except Exception as error:  # reported to each caller instead of killing the stub
            failure = pb_utils.TritonError(f"face_embedder failed: {error}")
            return [pb_utils.InferenceResponse(output_tensors=[], error=failure) for _ in requests]
        responses = []
        for part in np.split(embeddings, np.cumsum(counts)[:-1]):
            output = pb_utils.Tensor(OUTPUT_NAME, np.ascontiguousarray(part, dtype=np.float32))
            responses.append(pb_utils.InferenceResponse(output_tensors=[output]))
        return responses

    def finalize(self) -> None:
        """Release the onnxruntime session."""
        self._session = None
