"""The compose files: valid against the Compose Specification, and the workstation stack they describe."""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import json
import re
from typing import Any

import jsonschema
import pytest

from .support import COMPOSE, K8S, interpolate, load_yaml, read_env_file

FACEREC_SERVICES = {"gateway": 50051, "embedder": 50052, "registry": 50053}
ENVIRONMENT = read_env_file(COMPOSE / ".env.example")


def compose_spec() -> dict[str, Any]:
    """The Compose Specification's JSON schema, as vendored by the check-jsonschema package."""
    pytest.importorskip("check_jsonschema", reason="check-jsonschema (which ships compose-spec.json) is not installed")
    schema = importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    loaded: dict[str, Any] = json.loads(schema.read_text())
    return loaded


def compose_file(name: str) -> dict[str, Any]:
    """A compose file as Compose reads it: parsed, then interpolated with the variables of .env.example."""
    loaded: dict[str, Any] = interpolate(load_yaml(COMPOSE / name), ENVIRONMENT)
    return loaded


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Compose's merge of an override file, for the keys our override uses: mappings merge, `command`
    replaces, `volumes` add up (keyed by target)."""
    result = dict(base)
    for key, value in override.items():
        if key == "volumes" and isinstance(value, list):
            result[key] = [*base.get(key, []), *value]
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            result[key] = merged(base[key], value)
        else:
            result[key] = value
    return result


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    return compose_file("compose.yaml")


@pytest.fixture(scope="module")
def gpu_stack(stack: dict[str, Any]) -> dict[str, Any]:
    return merged(stack, compose_file("compose.gpu.yaml"))


@pytest.mark.parametrize("name", ["compose.yaml", "compose.gpu.yaml"])
def test_compose_file_validates_against_the_compose_specification(name):
    jsonschema.Draft202012Validator(compose_spec()).validate(compose_file(name))


def test_the_gpu_stack_validates_against_the_compose_specification(gpu_stack):
    jsonschema.Draft202012Validator(compose_spec()).validate(gpu_stack)


def test_the_schema_check_rejects_an_unknown_service_key(stack):
    broken = merged(stack, {"services": {"gateway": {"helthcheck": {"test": ["CMD", "true"]}}}})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(compose_spec()).validate(broken)


def test_every_variable_the_compose_files_read_is_in_the_env_example():
    for name in ("compose.yaml", "compose.gpu.yaml"):
        interpolate(load_yaml(COMPOSE / name), ENVIRONMENT)  # raises KeyError on a missing required variable
        text = (COMPOSE / name).read_text()
        for variable in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text):
            assert variable in ENVIRONMENT, f"{variable} of {name} is not in .env.example"


def test_only_the_gateway_publishes_a_port(stack):
    published = {name for name, service in stack["services"].items() if service.get("ports")}
    assert published == {"gateway"}
    assert stack["services"]["gateway"]["ports"] == ["127.0.0.1:50051:50051"]


def test_every_long_running_service_has_a_healthcheck(stack):
    for name, service in stack["services"].items():
        if service.get("restart") != "no":
            assert service.get("healthcheck", {}).get("test"), name


@pytest.mark.parametrize(("service", "port"), FACEREC_SERVICES.items())
def test_facerec_services_are_checked_through_grpc_health_on_their_port(stack, service, port):
    definition = stack["services"][service]
    assert definition["healthcheck"]["test"] == ["CMD", "facerec", "health", "--address", f"127.0.0.1:{port}"]
    assert definition["environment"][f"FACEREC_{service.upper()}_PORT"] == str(port)


@pytest.mark.parametrize("service", FACEREC_SERVICES)
def test_facerec_services_run_read_only_without_capabilities(stack, service):
    definition = stack["services"][service]
    assert definition["read_only"] is True
    assert definition["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in definition["security_opt"]


def test_services_start_after_their_dependencies_are_healthy(stack):
    depends = {name: service.get("depends_on", {}) for name, service in stack["services"].items()}
    assert depends["gateway"] == {
        "embedder": {"condition": "service_healthy"},
        "registry": {"condition": "service_healthy"},
    }
    assert depends["embedder"] == {"triton": {"condition": "service_healthy"}}
    assert depends["registry"] == {"qdrant": {"condition": "service_healthy"}}
    assert depends["triton"] == {"triton-models": {"condition": "service_completed_successfully"}}


def test_the_addresses_the_services_are_given_point_at_their_peers(stack):
    services = stack["services"]
    assert services["gateway"]["environment"]["FACEREC_GATEWAY_EMBEDDER_ADDRESS"] == "embedder:50052"
    assert services["gateway"]["environment"]["FACEREC_GATEWAY_REGISTRY_ADDRESS"] == "registry:50053"
    assert services["embedder"]["environment"]["FACEREC_EMBEDDER_TRITON_URL"] == "triton:8001"
    assert "--grpc-port=8001" in services["triton"]["command"]


def test_the_registry_uses_the_qdrant_server_with_its_api_key(stack):
    registry = stack["services"]["registry"]["environment"]
    qdrant = stack["services"]["qdrant"]["environment"]
    assert registry["FACEREC_REGISTRY_QDRANT_URL"] == "http://qdrant:6333"  # REST URL; the client talks gRPC on 6334
    assert "FACEREC_REGISTRY_DATA_DIR" not in registry
    assert registry["FACEREC_REGISTRY_QDRANT_API_KEY"] == qdrant["QDRANT__SERVICE__API_KEY"] == "change-me"


def test_qdrant_is_pinned_to_the_minor_version_of_the_client_everywhere(stack):
    client = importlib.metadata.version("qdrant-client")
    major_minor = ".".join(client.split(".")[:2])
    compose_tag = stack["services"]["qdrant"]["image"].split(":", 1)[1]
    helm_tag = load_yaml(K8S / "qdrant" / "values.yaml")["image"]["tag"]
    assert compose_tag == helm_tag
    assert compose_tag.startswith(f"v{major_minor}."), f"qdrant {compose_tag} vs qdrant-client {client}"


def test_triton_serves_the_cpu_config_by_default_and_the_production_config_on_gpus(stack, gpu_stack):
    assert "--model-config-name=cpu_onnx" in stack["services"]["triton"]["command"]
    assert not [arg for arg in gpu_stack["services"]["triton"]["command"] if "model-config-name" in arg]
    assert "deploy" not in stack["services"]["triton"]


def test_the_gpu_override_gives_gpus_to_triton_only(gpu_stack):
    with_devices = {
        name: service["deploy"]["resources"]["reservations"]["devices"]
        for name, service in gpu_stack["services"].items()
        if "devices" in service.get("deploy", {}).get("resources", {}).get("reservations", {})
    }
    assert with_devices == {"triton": [{"driver": "nvidia", "count": "1", "capabilities": ["gpu"]}]}


def test_triton_runs_the_same_official_image_as_on_kubernetes(stack):
    kustomization = load_yaml(K8S / "base" / "kustomization.yaml")
    (triton,) = [image for image in kustomization["images"] if image["name"] == "tritonserver"]
    assert stack["services"]["triton"]["image"] == f"{triton['newName']}:{triton['newTag']}"
