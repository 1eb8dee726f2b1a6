#!/usr/bin/env bash
# Sets up everything facerec needs on a fresh machine, idempotently:
#   1. a virtual environment in .venv with the project, the services' dependencies (the `server` extra) and the
#      dev tools, all pinned (`pip install facerec` alone is the SDK and the CLI's client commands);
#   2. the face model converted from dlib's serialization to ONNX, into the Triton model repository;
#   3. sample photos (PyPI's face-recognition 1.3.0 source distribution, tests/test_images/) in .cache/samples.
# Only the package registries are used; nothing is fetched at run time.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "facerec needs Python >= 3.11 (found $("$PYTHON" --version))" >&2
    exit 1
fi

if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv"
    "$PYTHON" -m venv .venv
fi
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)
# Re-install only when the project's requirements changed since the last set-up.
stamp=.venv/.facerec-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "[setup] installing Python packages"
    "${pip[@]}" install --upgrade pip
    "${pip[@]}" install -e '.[server,dev]'
    touch "$stamp"
fi

echo "[setup] converting the face model to ONNX (skipped when up to date)"
.venv/bin/python -m facerec_embedder.model.convert

samples=.cache/samples
if [ ! -f "$samples/obama.jpg" ]; then
    echo "[setup] fetching sample photos (face-recognition 1.3.0 sdist)"
    mkdir -p .cache/downloads "$samples"
    "${pip[@]}" download --no-deps --no-binary :all: face-recognition==1.3.0 -d .cache/downloads
    tar -xzf .cache/downloads/face_recognition-1.3.0.tar.gz -C "$samples" --strip-components=3 \
        face_recognition-1.3.0/tests/test_images
fi
echo "[setup] done"
