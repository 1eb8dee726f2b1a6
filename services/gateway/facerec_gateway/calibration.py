"""Calibrating a collection on its own enrolled faces (``facerec.calibration`` does the counting).

The faces are read from the registry a page at a time with their descriptors, at most ``MAX_CALIBRATION_FACES``
of them (in face-id order, which is random with respect to people): 20,000 faces make 200 M pairs, counted in
a few seconds. With ``apply``, the calibrated threshold becomes the collection's fixed threshold (its target
FPIR is set to 0).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass

import numpy as np

from facerec import limits
from facerec.calibration import CalibrationResult, calibrate
from facerec.runtime.deadlines import Deadline
from facerec_gateway import validation
from facerec_gateway.auth import Tenant
from facerec_gateway.clients import Registry
from facerec_gateway.collections import Collections
from facerec_gateway.domain import FaceRecord, SettingsUpdate, StoredCollection
from facerec_gateway.errors import NotCalibratable

MAX_CALIBRATION_FACES = 20_000


@dataclass(frozen=True)
class CalibrationRequest:
    """Calibrate a collection ("" for the default one) for ``target_fmr`` (0: the default), applying it or not."""

    collection: str
    target_fmr: float = 0.0
    apply: bool = False


@dataclass(frozen=True)
class CollectionCalibration:
    """A calibration over a collection's faces, and whether its threshold was set on the collection."""

    result: CalibrationResult
    applied: bool


class Calibrator:
    """Calibrates collections over their enrolled faces."""

    def __init__(
        self,
        registry: Registry,
        collections: Collections,
        max_faces: int = MAX_CALIBRATION_FACES,
        page_size: int = limits.MAX_PAGE_SIZE,
    ) -> None:
        self.registry = registry
        self.collections = collections
        self.max_faces = max_faces
        self.page_size = page_size

    async def calibrate(self, tenant: Tenant, request: CalibrationRequest, deadline: Deadline) -> CollectionCalibration:
        """The threshold for the target FMR over every genuine and impostor pair of the collection's faces.

        FAILED_PRECONDITION (:class:`NotCalibratable`) when no person has two faces, or all faces are one person's.
        """
        target_fmr = validation.target_fmr(request.target_fmr)
        collection = await self.collections.resolve(
            tenant, request.collection, deadline, create_default=False, check_model=False
        )
        faces = await self._faces(collection, deadline)
        _check_pairs(faces)
        descriptors = np.stack([face.embedding for face in faces])
        labels = [face.person_id for face in faces]
        try:
            # Counting pairs is CPU work of seconds: off the event loop, so other calls go on meanwhile.
            result = await asyncio.to_thread(calibrate, descriptors, labels, target_fmr)
        except ValueError as error:
            raise NotCalibratable(f"collection {self.collections.named(request.collection)!r}: {error}") from None
        if request.apply:
            update = SettingsUpdate(threshold=result.threshold, target_fpir=0.0)
            await self.collections.update(tenant, request.collection, update, deadline)
        return CollectionCalibration(result, applied=request.apply)

    async def _faces(self, collection: StoredCollection, deadline: Deadline) -> list[FaceRecord]:
        """The collection's faces with descriptors, at most ``max_faces``."""
        faces: list[FaceRecord] = []
        token = ""
        while len(faces) < self.max_faces:
            page = await self.registry.list_faces(
                collection.name,
                deadline,
                page_size=min(self.page_size, self.max_faces - len(faces)),
                page_token=token,
                include_embeddings=True,
            )
            faces.extend(page.faces)
            token = page.next_page_token
            if not token:
                break
        return faces[: self.max_faces]


def _check_pairs(faces: list[FaceRecord]) -> None:
    per_person = Counter(face.person_id for face in faces)
    if not any(count >= 2 for count in per_person.values()):
        raise NotCalibratable(
            f"no person has two faces ({len(faces)} faces of {len(per_person)} people): calibration needs "
            "genuine pairs; enroll two or more photos of some people"
        )
    if len(per_person) < 2:
        raise NotCalibratable("every face belongs to one person: calibration needs impostor pairs")
