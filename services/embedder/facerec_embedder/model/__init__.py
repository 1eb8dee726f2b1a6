"""The face-embedding model: dlib's ResNet (``dlib_face_recognition_resnet_model_v1``) converted to ONNX.

The constants here are what the rest of facerec needs to know about the model without loading it: its id
(stored with every embedding so vectors of different models are never compared), the embedding dimension,
the size of the aligned chip it expects and the usual decision threshold on the euclidean distance between
two raw descriptors.
"""

from __future__ import annotations

MODEL_ID = "dlib_resnet_v1"
"""Identifies the embedding space; two embeddings are comparable only when their model ids are equal."""

EMBEDDING_DIM = 128
CHIP_SIZE = 150
"""Side of the square RGB chip the network takes (dlib's ``input_rgb_image_sized<150>``)."""

CHIP_PADDING = 0.25
"""Padding around the mean-face template used by dlib's ``get_face_chip`` for this model."""

DEFAULT_THRESHOLD = 0.6
"""Euclidean distance under which dlib's authors call two raw descriptors the same person."""

TRITON_MODEL_NAME = "face_embedder"
INPUT_NAME = "chips"
OUTPUT_NAME = "embeddings"

__all__ = [
    "CHIP_PADDING",
    "CHIP_SIZE",
    "DEFAULT_THRESHOLD",
    "EMBEDDING_DIM",
    "INPUT_NAME",
    "MODEL_ID",
    "OUTPUT_NAME",
    "TRITON_MODEL_NAME",
]
