"""The settings the deployments give the services: real settings, accepted by the services, documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from facerec.runtime.settings import env_name

from .support import COMPOSE, K8S, REPO, interpolate, load_yaml, read_env_file

embedder_settings = pytest.importorskip("facerec_embedder.settings", reason="the embedder is not written yet")
gateway_settings = pytest.importorskip("facerec_gateway.settings", reason="the gateway is not written yet")
registry_settings = pytest.importorskip("facerec_registry.settings", reason="the registry is not written yet")

SETTINGS: dict[str, type[BaseSettings]] = {
    "gateway": gateway_settings.GatewaySettings,
    "embedder": embedder_settings.EmbedderSettings,
    "registry": registry_settings.RegistrySettings,
}
DEPLOY_DOC = REPO / "docs" / "deploy.md"


def variables(settings: type[BaseSettings]) -> set[str]:
    """The environment variables a settings class reads."""
    return {env_name(settings, field) for field in settings.model_fields}


def kubernetes_environment(service: str) -> dict[str, str]:
    """A service's variables in the Kubernetes base: its settings.env plus the Deployment's own env."""
    environment = read_env_file(K8S / "base" / service / "settings.env")
    deployment = load_yaml(K8S / "base" / service / "deployment.yaml")
    for entry in deployment["spec"]["template"]["spec"]["containers"][0].get("env", []):
        environment[entry["name"]] = entry.get("value", "from-a-secret")
    return environment


def compose_environment(service: str) -> dict[str, str]:
    """A service's variables in compose.yaml, interpolated with .env.example."""
    stack = interpolate(load_yaml(COMPOSE / "compose.yaml"), read_env_file(COMPOSE / ".env.example"))
    environment: dict[str, str] = stack["services"][service]["environment"]
    return environment


def image_environment() -> set[str]:
    """The FACEREC_ variables the Dockerfile sets."""
    return set(re.findall(r"\b(FACEREC_[A-Z_]+)=", (REPO / "Dockerfile").read_text()))


@pytest.mark.parametrize("service", SETTINGS)
def test_every_variable_the_deployments_set_is_a_setting_of_the_service(service):
    known = variables(SETTINGS[service])
    prefix = f"FACEREC_{service.upper()}_"
    for source, names in {
        "kubernetes": set(kubernetes_environment(service)),
        "compose": set(compose_environment(service)),
        "Dockerfile": {name for name in image_environment() if name.startswith(prefix)},
    }.items():
        assert names, f"{source} sets nothing for {service}"
        assert names <= known, f"{source} sets unknown settings of {service}: {sorted(names - known)}"


@pytest.mark.parametrize("service", SETTINGS)
def test_every_variable_the_mtls_component_sets_is_a_setting_the_service_accepts(service, monkeypatch):
    component = read_env_file(K8S / "components" / "mtls" / f"{service}.env")
    assert component
    assert set(component) <= variables(SETTINGS[service]), sorted(set(component) - variables(SETTINGS[service]))
    for name, value in {**kubernetes_environment(service), **component}.items():
        monkeypatch.setenv(name, value)
    SETTINGS[service]()


@pytest.mark.parametrize("service", SETTINGS)
@pytest.mark.parametrize("where", ["kubernetes", "compose"])
def test_the_services_accept_the_deployed_settings(service, where, monkeypatch):
    environment = kubernetes_environment(service) if where == "kubernetes" else compose_environment(service)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    loaded = SETTINGS[service]()
    assert loaded.model_dump()["port"] == {"gateway": 50051, "embedder": 50052, "registry": 50053}[service]


def test_the_image_binds_every_service_and_its_metrics_to_all_interfaces():
    text = (REPO / "Dockerfile").read_text()
    for service in SETTINGS:
        for setting in ("HOST", "METRICS_HOST"):
            assert f"FACEREC_{service.upper()}_{setting}=0.0.0.0" in text


@pytest.mark.parametrize("service", SETTINGS)
def test_docs_deploy_documents_every_setting(service):
    documented = set(re.findall(r"`(FACEREC_[A-Z_]+)`", DEPLOY_DOC.read_text()))
    missing = variables(SETTINGS[service]) - documented
    assert not missing, f"docs/deploy.md does not document {sorted(missing)}"


def test_the_example_api_keys_authenticate_the_documented_development_key():
    auth = pytest.importorskip("facerec_gateway.auth", reason="the gateway's API keys are not written yet")
    keys = auth.ApiKeys.load(Path(COMPOSE / "api-keys.example.yaml"), None)
    tenant = keys.authenticate([("authorization", "Bearer facerec-dev-key")])
    assert tenant.id == "dev"
    assert tenant.allows("default")
