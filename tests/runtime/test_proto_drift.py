"""The committed generated code matches the protos; the check catches a .proto edited without regenerating."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

from tests.paths import REPO_ROOT


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_protos", REPO_ROOT / "scripts" / "gen_protos.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_generated_code_matches_a_fresh_generation() -> None:
    assert _generator().drift() == []


def test_drift_check_reports_a_proto_edited_without_regenerating(tmp_path: Path) -> None:
    protos = tmp_path / "protos"
    shutil.copytree(REPO_ROOT / "protos", protos)
    edited = protos / "facerec" / "v1" / "face.proto"
    edited.write_text(edited.read_text().replace("message Point {", "message Point {\n  float z = 3;"))
    stale = _generator().drift(committed=REPO_ROOT / "src", proto_root=protos)
    assert "facerec/v1/face_pb2.py" in stale
    assert "facerec/v1/face_pb2.pyi" in stale


def test_every_public_operation_is_in_the_contract() -> None:
    from facerec.embedder.v1 import embedder_pb2
    from facerec.registry.v1 import registry_pb2
    from facerec.v1 import facerec_pb2

    public = facerec_pb2.DESCRIPTOR.services_by_name["FaceRecognition"].methods_by_name
    assert set(public) == {
        "CreateCollection", "GetCollection", "ListCollections", "UpdateCollection", "DeleteCollection",
        "CalibrateCollection", "Enroll", "BulkEnroll", "Identify", "IdentifyStream", "Verify", "Detect",
        "GetPerson", "ListPeople", "UpdatePerson", "DeletePerson", "ListFaces", "DeleteFace", "MoveFace",
        "ClusterFaces", "ListAuditEvents",
    }  # fmt: skip
    assert public["BulkEnroll"].client_streaming and not public["BulkEnroll"].server_streaming
    assert public["IdentifyStream"].client_streaming and public["IdentifyStream"].server_streaming
    assert public["ClusterFaces"].client_streaming and public["ClusterFaces"].server_streaming
    embedder = embedder_pb2.DESCRIPTOR.services_by_name["Embedder"].methods_by_name
    assert {"EmbedPhoto", "EmbedChips"} <= set(embedder)
    registry = registry_pb2.DESCRIPTOR.services_by_name["Registry"].methods_by_name
    assert set(registry) >= {
        "CreateCollection", "GetCollection", "ListCollections", "DeleteCollection", "UpsertFaces", "Search",
        "DeleteFace", "DeletePerson", "GetPerson", "ListPeople", "Count", "UpdateCollection", "ListFaces",
        "MoveFace", "ListAuditEvents",
    }  # fmt: skip
