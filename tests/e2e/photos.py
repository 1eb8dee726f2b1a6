"""Photos for end-to-end tests, built from the real sample photos."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def side_by_side(*paths: Path, height: int = 500) -> bytes:
    """One JPEG with the given photos next to each other (each scaled to ``height``): a multi-face photo."""
    images = []
    for path in paths:
        with Image.open(path) as photo:
            rgb = photo.convert("RGB")
            width = round(rgb.width * height / rgb.height)
            images.append(rgb.resize((width, height)))
    canvas = Image.new("RGB", (sum(i.width for i in images) + 40 * len(images), height + 40), "white")
    x = 20
    for image in images:
        canvas.paste(image, (x, 20))
        x += image.width + 40
    out = io.BytesIO()
    canvas.save(out, format="JPEG", quality=95)
    return out.getvalue()


def faceless(width: int = 400, height: int = 300) -> bytes:
    """A PNG of smooth noise: decodes fine, shows no face."""
    rng = np.random.default_rng(7)
    pixels = (rng.random((height // 10, width // 10, 3)) * 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).resize((width, height)).save(out, format="PNG")
    return out.getvalue()
