"""What the gateway stores beside each enrolled face, in the face's metadata: the photo's name, the face's quality
measures and its box in the photo. One home for these keys, written by enrollment and read by the faces of a
person (ListFaces), so an operator correcting a person sees which photo each face came from and how good it was.

Values are text (the registry's face metadata is ``str -> str``, within ``facerec.limits``' metadata rules):
numbers in their shortest exact form, the box as ``x,y,w,h`` in pixels of the upright photo. Faces enrolled
before the measures were stored have only ``photo`` (or nothing): reading them gives None for what is missing.
"""

from __future__ import annotations

from collections.abc import Mapping

from facerec_gateway.domain import Box, Face, FaceQuality

PHOTO = "photo"
FACE_SIZE_PX = "quality.face_size_px"
INTEROCULAR_PX = "quality.interocular_px"
SHARPNESS = "quality.sharpness"
FRONTALITY = "quality.frontality"
BOX = "box"

KEYS = (PHOTO, FACE_SIZE_PX, INTEROCULAR_PX, SHARPNESS, FRONTALITY, BOX)
"""Every key this module writes (6 of a face's 64 metadata entries)."""


def _number(value: float) -> str:
    """A measure as short text that reads back to the same float32 the embedder sent (``repr`` of a rounded float
    would drift; 9 significant digits always round-trip a float32)."""
    return format(value, ".9g")


def face_metadata(photo_name: str, face: Face) -> dict[str, str]:
    """The metadata stored with an enrolled face: its photo's name (when given), its measures and its box."""
    quality, box = face.quality, face.box
    metadata = {
        FACE_SIZE_PX: _number(quality.face_size_px),
        INTEROCULAR_PX: _number(quality.interocular_px),
        SHARPNESS: _number(quality.sharpness),
        FRONTALITY: _number(quality.frontality),
        BOX: f"{box.x},{box.y},{box.width},{box.height}",
    }
    if photo_name:
        metadata[PHOTO] = photo_name
    return metadata


def photo_name(metadata: Mapping[str, str]) -> str:
    """The name of the photo the face was enrolled from ("" when none was given)."""
    return metadata.get(PHOTO, "")


def quality(metadata: Mapping[str, str]) -> FaceQuality | None:
    """The face's measures at enrollment; None when they were not stored (or not all of them, or not numbers)."""
    try:
        return FaceQuality(
            face_size_px=float(metadata[FACE_SIZE_PX]),
            interocular_px=float(metadata[INTEROCULAR_PX]),
            sharpness=float(metadata[SHARPNESS]),
            frontality=float(metadata[FRONTALITY]),
        )
    except (KeyError, ValueError):
        return None


def box(metadata: Mapping[str, str]) -> Box | None:
    """Where the face was in its photo; None when it was not stored (or is not four integers)."""
    parts = metadata.get(BOX, "").split(",")
    try:
        x, y, width, height = (int(part) for part in parts)
    except ValueError:
        return None
    return Box(x, y, width, height)
