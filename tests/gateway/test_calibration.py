"""Calibrating a collection on its own faces (over a fake registry; the counting is ``facerec.calibration``'s)."""

from __future__ import annotations

import numpy as np
import pytest

from facerec.calibration import calibrate
from facerec.runtime.deadlines import Deadline
from facerec_gateway.calibration import CalibrationRequest
from facerec_gateway.decisions import DEFAULT_TARGET_FPIR
from facerec_gateway.errors import InvalidRequest, NotCalibratable
from facerec_gateway.recognition import FaceRecognition
from tests.gateway.fakes import TENANT, FakeEmbedder, FakeRegistry, recognition

STAFF = "acme__staff"


def deadline() -> Deadline:
    return Deadline.after(30.0)


@pytest.fixture
def registry() -> FakeRegistry:
    """12 people with 3 faces each: each person's faces close together, the people far apart."""
    registry = FakeRegistry()
    registry.add_collection(STAFF, threshold=0.6, target_fpir=DEFAULT_TARGET_FPIR)
    rng = np.random.default_rng(3)
    for p in range(12):
        centre = rng.normal(size=4).astype(np.float32)
        for f in range(3):
            registry.add_face(
                STAFF, f"p{p:02d}", centre + rng.normal(scale=0.05, size=4).astype(np.float32), f"f{p}-{f}"
            )
    return registry


@pytest.fixture
def service(registry: FakeRegistry) -> FaceRecognition:
    service = recognition(FakeEmbedder(), registry)
    service.calibrator.page_size = 5  # several pages over 36 faces
    return service


async def test_calibration_pages_every_face_with_descriptors_and_counts_every_pair(
    service: FaceRecognition, registry: FakeRegistry
) -> None:
    calibration = await service.calibrator.calibrate(TENANT, CalibrationRequest("staff", 0.01), deadline())

    faces = sorted(registry.stored[STAFF].faces.values(), key=lambda f: f.face_id)
    expected = calibrate(np.stack([f.embedding for f in faces]), [f.person_id for f in faces], 0.01)
    assert calibration.result == expected and not calibration.applied
    assert (calibration.result.genuine_pairs, calibration.result.impostor_pairs) == (36, 594)
    assert registry.calls.count("ListFaces") == 8 and "UpdateCollection" not in registry.calls


async def test_calibration_uses_at_most_its_bound_of_faces(service: FaceRecognition, registry: FakeRegistry) -> None:
    service.calibrator.max_faces = 12

    calibration = await service.calibrator.calibrate(TENANT, CalibrationRequest("staff"), deadline())

    assert calibration.result.faces == 12 and calibration.result.target_fmr == pytest.approx(0.001)


async def test_applying_sets_the_threshold_as_the_collections_fixed_threshold(
    service: FaceRecognition, registry: FakeRegistry
) -> None:
    calibration = await service.calibrator.calibrate(TENANT, CalibrationRequest("staff", 0.01, apply=True), deadline())

    settings = registry.stored[STAFF].collection.settings
    assert calibration.applied
    assert settings.threshold == pytest.approx(calibration.result.threshold) and settings.target_fpir == 0.0
    collection = await service.collections.get(TENANT, "staff", deadline())
    assert collection.settings == settings


async def test_a_collection_where_no_person_has_two_faces_cannot_be_calibrated(registry: FakeRegistry) -> None:
    registry.add_collection("acme__singles")
    for p in range(5):
        registry.add_face("acme__singles", f"p{p}", np.full(4, p, dtype=np.float32))
    service = recognition(FakeEmbedder(), registry)

    with pytest.raises(NotCalibratable, match="no person has two faces"):
        await service.calibrator.calibrate(TENANT, CalibrationRequest("singles", apply=True), deadline())
    assert "UpdateCollection" not in registry.calls


async def test_a_target_fmr_out_of_range_is_refused(service: FaceRecognition) -> None:
    with pytest.raises(InvalidRequest, match="target_fmr"):
        await service.calibrator.calibrate(TENANT, CalibrationRequest("staff", 0.9), deadline())
