"""Face-like synthetic descriptors: people as clusters, the distances dlib's model gives on real photos.

Identity centres are random directions with norm ~1 (dlib descriptors have norm ~1); each face is its centre
plus noise, so that two faces of one person are ~0.3-0.45 apart and faces of two people ~0.8-0.9 apart
(docs/architecture.md, "Qdrant"; measured on the labelled photos). Uniform random vectors would be a
different, worst-case problem.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

DIMENSION = 128
MODEL_ID = "dlib-resnet-v1"
# Per-component noise: two faces differ by sqrt(2 * 128) * sigma ~ 0.38 on average.
FACE_NOISE = 0.024
# Centres ~0.78 apart (sqrt(2) * r for random directions of norm r); with the noise faces ~0.87 apart.
CENTRE_NORM = 0.55


# "facelike": real descriptors do not fill 128 dimensions evenly: their variance decays over the principal
# directions (an effective dimension of a few tens), so strangers are not all equally far from a face. Centres
# then come from a Gaussian whose variances fall as 1/(i+1), scaled to the same mean distance between centres.
# test_facelike_calibration.py checks it against deepface's 13 people: 68% of the spread of their identity
# centres lies along the top 5 directions, 69% for these centres at the same sizes, 54% for isotropic ones.
FACELIKE_DECAY = 1.0


def identity_centres(
    people: int, rng: np.random.Generator, dimension: int = DIMENSION, spectrum: str = "isotropic"
) -> npt.NDArray[np.float32]:
    """``people`` identity centres ~``sqrt(2) * CENTRE_NORM`` apart on average.

    ``isotropic``: random directions of norm ``CENTRE_NORM`` (every stranger about equally far: the hard case
    for a graph index); ``facelike``: a decaying spectrum, as real descriptors have.
    """
    if spectrum == "isotropic":
        centres = rng.normal(size=(people, dimension))
        centres *= CENTRE_NORM / np.linalg.norm(centres, axis=1, keepdims=True)
        return centres.astype(np.float32)
    if spectrum != "facelike":
        raise ValueError(f"unknown spectrum {spectrum!r}")
    scales = (1.0 + np.arange(dimension)) ** (-FACELIKE_DECAY / 2)
    scales *= CENTRE_NORM / np.sqrt(np.sum(scales**2))
    return (rng.normal(size=(people, dimension)) * scales).astype(np.float32)


def faces_around(centre: npt.NDArray[np.float32], count: int, rng: np.random.Generator) -> npt.NDArray[np.float32]:
    """``count`` descriptors of the person whose identity centre is ``centre``."""
    noise = rng.normal(scale=FACE_NOISE, size=(count, centre.shape[0]))
    return (centre[None, :] + noise).astype(np.float32)


def gallery(
    people: int,
    faces_per_person: int,
    rng: np.random.Generator,
    dimension: int = DIMENSION,
    spectrum: str = "isotropic",
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """(descriptors [people*faces, dim], person index of each, identity centres)."""
    centres = identity_centres(people, rng, dimension, spectrum)
    noise = rng.normal(scale=FACE_NOISE, size=(people, faces_per_person, dimension))
    vectors = (centres[:, None, :] + noise).reshape(-1, dimension).astype(np.float32)
    owners = np.repeat(np.arange(people), faces_per_person)
    return vectors, owners, centres
