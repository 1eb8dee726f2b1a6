"""Decoding for detection: a large JPEG decoded at reduced scale inside libjpeg, every other photo at full size."""

from __future__ import annotations

import numpy as np
from PIL import Image

from facerec_embedder.images import decode_image

from .photos import encoded, sample_image


def phone_photo() -> bytes:
    """The obama sample (910x1137) upscaled to 3024x3780, as a phone's JPEG of the same shape."""
    return encoded(sample_image("obama.jpg").convert("RGB").resize((3024, 3780), Image.Resampling.BICUBIC), "JPEG")


def test_a_large_jpeg_is_decoded_at_the_smallest_scale_still_as_long_as_the_bound() -> None:
    view = decode_image(phone_photo(), draft_side=640)

    assert view.shape == (945, 756, 3)  # 1/4 scale: 1/8 (473 px) would be shorter than 640


def test_the_reduced_decode_shows_the_same_picture_as_the_full_one() -> None:
    photo = phone_photo()

    view = decode_image(photo, draft_side=640)
    full = decode_image(photo)

    shrunk = np.asarray(Image.fromarray(full).resize((756, 945), Image.Resampling.BOX), dtype=np.float64)
    assert np.abs(view.astype(np.float64) - shrunk).mean() < 4  # grey levels 0-255


def test_a_reduced_jpeg_is_upright_like_the_full_one() -> None:
    upright = sample_image("obama.jpg").convert("RGB").resize((3024, 3780), Image.Resampling.BICUBIC)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored a quarter turn left: "rotate 90 degrees clockwise to display"
    stored = encoded(upright.transpose(Image.Transpose.ROTATE_90), "JPEG", exif=exif.tobytes())

    assert decode_image(stored, draft_side=640).shape == (945, 756, 3)


def test_a_jpeg_too_small_to_reduce_and_other_formats_decode_at_full_size() -> None:
    small = encoded(sample_image("obama.jpg").convert("RGB"), "JPEG")  # 910x1137: half would be under 640

    assert decode_image(small, draft_side=640).shape == (1137, 910, 3)
    assert decode_image(encoded(sample_image("obama.jpg"), "PNG"), draft_side=320).shape == (1137, 910, 3)
