"""Where the model files live: the ``.dat`` files of ``face-recognition-models`` and our ONNX export.

``face_recognition_models/__init__.py`` imports ``pkg_resources`` (removed from recent setuptools), so the
package is located with :func:`importlib.util.find_spec`, which finds it without executing it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

RECOGNITION_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
LANDMARKS_5_MODEL = "shape_predictor_5_face_landmarks.dat"
DETECTOR_CNN_MODEL = "mmod_human_face_detector.dat"

REPOSITORY_ROOT = Path(__file__).resolve().parents[4]
MODEL_REPOSITORY = REPOSITORY_ROOT / "deploy" / "triton" / "model_repository"
"""The Triton model repository shipped with facerec (``face_embedder`` lives in it)."""

DEFAULT_ONNX_PATH = MODEL_REPOSITORY / "face_embedder" / "1" / "model.onnx"


class ModelFilesMissing(FileNotFoundError):
    """The ``face-recognition-models`` package (or one of its files) is not installed."""


def models_dir() -> Path:
    """Return the ``models`` folder of the installed ``face_recognition_models`` package (not imported)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelFilesMissing("the 'face-recognition-models' package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def model_file(name: str) -> Path:
    """Return the path of one ``.dat`` file of ``face-recognition-models``; raise if it is missing."""
    path = models_dir() / name
    if not path.is_file():
        raise ModelFilesMissing(f"{path} does not exist")
    return path
