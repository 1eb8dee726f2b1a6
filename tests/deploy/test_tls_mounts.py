"""TLS on the wire as deployed: every certificate setting points at a file of a mounted Secret, mounted so that a
renewal reaches the pod, and every TLS server has callers configured to speak TLS to it."""

from __future__ import annotations

from pathlib import Path

import pytest

from .support import K8S, Manifest, load_yaml, load_yaml_all, named, of_kind, settings

# The file settings of facerec.runtime.tls, without their FACEREC_<SERVICE>_ prefix.
TLS_FILE_SETTINGS = (
    "TLS_CERT_FILE",
    "TLS_KEY_FILE",
    "TLS_CLIENT_CA_FILE",
    "TLS_CA_FILE",
    "TLS_CLIENT_CERT_FILE",
    "TLS_CLIENT_KEY_FILE",
)
# The keys of a kubernetes.io/tls Secret, and the CA that cert-manager adds beside them.
SECRET_KEYS = {"tls.crt", "tls.key", "ca.crt"}
# caller -> callees over facerec's own gRPC (Triton is not facerec's: the embedder's hop to it stays plaintext).
CALLS = {"gateway": ("embedder", "registry")}
MTLS = K8S / "components" / "mtls"


def tls_files(manifests: list[Manifest], service: str) -> dict[str, str]:
    """The TLS file settings a service is given: {setting suffix: path}."""
    environment = settings(manifests, service)
    prefix = f"FACEREC_{service.upper()}_"
    return {name: environment[prefix + name] for name in TLS_FILE_SETTINGS if prefix + name in environment}


def secret_mount(manifests: list[Manifest], service: str, path: str) -> tuple[str, str]:
    """(Secret name, key) behind a file path of a service's container; fails unless the file comes from a Secret
    mounted read-only as a whole directory (a subPath mount never sees a renewed Secret)."""
    deployment = named(manifests, "Deployment", service)
    (container,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == service]
    parent = str(Path(path).parent)
    mounts = [m for m in container.get("volumeMounts", []) if m["mountPath"] == parent]
    assert len(mounts) == 1, f"{service}: {path} is not in a directory mounted from a volume"
    (mount,) = mounts
    assert "subPath" not in mount and "subPathExpr" not in mount, f"{service}: {parent} is a subPath mount"
    assert mount.get("readOnly") is True, f"{service}: {parent} is writable"
    volumes = {volume["name"]: volume for volume in deployment["spec"]["template"]["spec"]["volumes"]}
    secret = volumes[mount["name"]].get("secret")
    assert secret, f"{service}: {parent} is not a Secret"
    assert not secret.get("items"), "items would leave out the keys a renewal adds or renames"
    return secret["secretName"], Path(path).name


def test_the_gateway_serves_tls_from_its_certificate_secret(rendering):
    _, manifests = rendering
    files = tls_files(manifests, "gateway")
    cert = secret_mount(manifests, "gateway", files["TLS_CERT_FILE"])
    key = secret_mount(manifests, "gateway", files["TLS_KEY_FILE"])
    # The keys of a kubernetes.io/tls Secret (kubectl create secret tls, cert-manager).
    assert (cert, key) == (("gateway-tls", "tls.crt"), ("gateway-tls", "tls.key"))
    # External clients are not asked for certificates: API keys authenticate them.
    assert "TLS_CLIENT_CA_FILE" not in files


@pytest.mark.parametrize("service", ["gateway", "embedder", "registry"])
def test_every_tls_file_setting_names_a_key_of_a_mounted_secret(rendering, service):
    _, manifests = rendering
    for setting, path in tls_files(manifests, service).items():
        _, key = secret_mount(manifests, service, path)
        assert key in SECRET_KEYS, f"{service} {setting}: {key} is not a key of a TLS Secret"


@pytest.mark.parametrize("service", ["gateway", "embedder", "registry"])
def test_certificates_come_in_pairs_from_one_secret(rendering, service):
    _, manifests = rendering
    files = tls_files(manifests, service)
    for cert, key in (("TLS_CERT_FILE", "TLS_KEY_FILE"), ("TLS_CLIENT_CERT_FILE", "TLS_CLIENT_KEY_FILE")):
        assert (cert in files) == (key in files), f"{service}: {cert} without {key}, or the reverse"
        if cert in files:
            assert secret_mount(manifests, service, files[cert])[0] == secret_mount(manifests, service, files[key])[0]
    if "TLS_CLIENT_CA_FILE" in files:
        assert "TLS_CERT_FILE" in files, f"{service}: mutual TLS needs a server certificate"


@pytest.mark.parametrize(
    ("caller", "callee"), [(caller, callee) for caller, callees in CALLS.items() for callee in callees]
)
def test_callers_speak_tls_to_every_tls_server_and_present_a_certificate_where_one_is_required(
    rendering, caller, callee
):
    _, manifests = rendering
    server, client = tls_files(manifests, callee), tls_files(manifests, caller)
    assert ("TLS_CERT_FILE" in server) == ("TLS_CA_FILE" in client), f"{caller} -> {callee}: TLS on one side only"
    if "TLS_CLIENT_CA_FILE" in server:
        assert "TLS_CLIENT_CERT_FILE" in client, f"{callee} requires a client certificate {caller} does not have"
        # Both trust the same internal CA (the ca.crt each Secret carries).
        assert Path(server["TLS_CLIENT_CA_FILE"]).name == Path(client["TLS_CA_FILE"]).name == "ca.crt"


def test_the_mtls_component_requires_client_certificates_from_the_gateway(cpu_with_components):
    for service in ("embedder", "registry"):
        files = tls_files(cpu_with_components, service)
        assert {"TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CLIENT_CA_FILE"} <= set(files)
        assert secret_mount(cpu_with_components, service, files["TLS_CERT_FILE"])[0] == f"{service}-mtls"
    gateway = tls_files(cpu_with_components, "gateway")
    assert secret_mount(cpu_with_components, "gateway", gateway["TLS_CLIENT_CERT_FILE"])[0] == "gateway-mtls"


def test_the_cert_manager_example_issues_the_secrets_the_mtls_component_mounts(cpu_with_components):
    documents = load_yaml_all(MTLS / "cert-manager.example.yaml")
    assert {doc["apiVersion"] for doc in documents} == {"cert-manager.io/v1"}
    certificates = {doc["spec"]["secretName"]: doc["spec"] for doc in documents if doc["kind"] == "Certificate"}
    issuers = {doc["metadata"]["name"] for doc in documents if doc["kind"] == "Issuer"}
    mounted = {
        volume["secret"]["secretName"]
        for deployment in of_kind(cpu_with_components, "Deployment")
        for volume in deployment["spec"]["template"]["spec"].get("volumes", [])
        if volume.get("secret", {}).get("secretName", "").endswith("-mtls")
    }
    assert mounted == {"gateway-mtls", "embedder-mtls", "registry-mtls"}
    assert mounted <= set(certificates)
    for spec in certificates.values():
        assert spec["issuerRef"]["name"] in issuers
    gateway = settings(cpu_with_components, "gateway")
    for service in ("embedder", "registry"):
        # The name the gateway's channel verifies is the host of its dns:/// target.
        target = gateway[f"FACEREC_GATEWAY_{service.upper()}_ADDRESS"]
        host = target.removeprefix("dns:///").rpartition(":")[0]
        assert host in certificates[f"{service}-mtls"]["dnsNames"], service
        assert certificates[f"{service}-mtls"]["usages"] == ["server auth"]
    assert certificates["gateway-mtls"]["usages"] == ["client auth"]


def test_the_mtls_component_only_adds_to_the_base(cpu_manifests, cpu_with_components):
    # A component, not a fork: apart from its own settings, mounts and probes, the rendering is the overlay's.
    before = {(m["kind"], m["metadata"]["name"].split("-settings-")[0]) for m in cpu_manifests}
    after = {(m["kind"], m["metadata"]["name"].split("-settings-")[0]) for m in cpu_with_components}
    assert before <= after
    assert load_yaml(MTLS / "kustomization.yaml")["kind"] == "Component"
