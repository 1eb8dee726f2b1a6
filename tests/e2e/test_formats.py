"""Every photo format users have, through the gateway on the real stack: enrolled from one format, identified
from another; anything else refused at once with INVALID_ARGUMENT naming the accepted formats, nothing written."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facerec.photo_formats import ACCEPTED_NAMES
from facerec.sdk import AsyncClient, FailedPrecondition, InvalidArgument, NotFound


def converted(path: Path, fmt: str, mode: str = "RGB", **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.open(path).convert(mode).save(buffer, fmt, **options)
    return buffer.getvalue()


def sixteen_bit_grey_png(path: Path) -> bytes:
    """The photo as a 16-bit greyscale PNG holding 12 significant bits, as scientific cameras write them."""
    grey = np.asarray(Image.open(path).convert("L")).astype(np.uint32)
    buffer = io.BytesIO()
    Image.fromarray((grey * 4095 // 255).astype(np.uint16)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("enrolled_as", "identified_as"),
    [("HEIF", "AVIF"), ("TIFF", "PGM"), ("GIF", "PNG16"), ("MPO", "WEBP")],
)
async def test_a_person_enrolled_from_one_format_is_identified_in_another(
    alpha: AsyncClient, samples_dir: Path, enrolled_as: str, identified_as: str
) -> None:
    def photo(fmt: str, path: Path) -> bytes:
        if fmt == "PGM":
            return converted(path, "PPM", mode="L")
        if fmt == "PNG16":
            return sixteen_bit_grey_png(path)
        if fmt == "MPO":
            return converted(path, "MPO", save_all=True)
        return converted(path, fmt)

    collection = f"formats-{uuid.uuid4().hex[:8]}"
    await alpha.create_collection(collection)

    enrolled = await alpha.enroll("obama", photo(enrolled_as, samples_dir / "obama.jpg"), collection=collection)
    result = await alpha.identify(photo(identified_as, samples_dir / "obama2.jpg"), collection=collection)

    assert enrolled.faces_enrolled == 1
    assert len(result.faces) == 1
    match = result.faces[0].match
    assert match is not None and match.person_id == "obama"


async def test_an_unsupported_format_is_refused_at_once_and_nothing_is_written(
    alpha: AsyncClient, samples_dir: Path
) -> None:
    collection = f"formats-{uuid.uuid4().hex[:8]}"
    await alpha.create_collection(collection)
    pcx = converted(samples_dir / "obama.jpg", "PCX")

    with pytest.raises(InvalidArgument, match=ACCEPTED_NAMES):
        await alpha.identify(pcx, collection=collection)
    with pytest.raises(FailedPrecondition, match="not an image in an accepted format"):
        await alpha.enroll("obama", pcx, collection=collection)

    with pytest.raises(NotFound):
        await alpha.get_person("obama", collection=collection)
    assert (await alpha.get_collection(collection)).face_count == 0
