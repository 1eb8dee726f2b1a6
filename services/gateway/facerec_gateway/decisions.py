"""Turning distances into decisions: similarity, and one identity per photo.

Distances are euclidean distances between raw dlib ResNet descriptors; a face matches a person when its
distance to that person's nearest enrolled face is at most the threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

# Cost of leaving a face unknown in the assignment. Larger than any distance between descriptors (at most 2
# for unit-ish vectors, in practice < 1.5), so the assignment first matches as many faces as it can, then
# minimises the total distance of those matches.
_UNKNOWN_COST = 1e3
_FORBIDDEN = 1e9


def similarity(distance: float, threshold: float) -> float:
    """Map a distance to [0, 1]: 1 identical, 0.5 exactly at the threshold, 0 at twice the threshold or more."""
    return float(min(1.0, max(0.0, 1.0 - distance / (2.0 * threshold))))


@dataclass(frozen=True)
class Candidate:
    """A person near a face: the distance to their nearest enrolled face."""

    person_id: str
    distance: float


def assign_identities(candidates: Sequence[Sequence[Candidate]], threshold: float) -> list[Candidate | None]:
    """The decision for every face of one photo, with each person given to at most one face.

    ``candidates[i]`` are face ``i``'s nearest people. Only candidates within ``threshold`` are eligible. When
    several faces are nearest to the same person, an optimal assignment (most faces matched, then least total
    distance) gives that person to one face; the others take their next eligible candidate, or stay unknown.
    """
    people = sorted({c.person_id for face in candidates for c in face if c.distance <= threshold})
    if not people:
        return [None] * len(candidates)
    column = {person: j for j, person in enumerate(people)}
    faces = len(candidates)
    # Columns: one per person, then one "unknown" column per face (only that face may use it).
    cost = np.full((faces, len(people) + faces), _FORBIDDEN)
    for i, face in enumerate(candidates):
        cost[i, len(people) + i] = _UNKNOWN_COST
        for c in face:
            if c.distance <= threshold:
                j = column[c.person_id]
                cost[i, j] = min(cost[i, j], c.distance)
    rows, cols = linear_sum_assignment(cost)
    decisions: list[Candidate | None] = [None] * faces
    for i, j in zip(rows, cols, strict=True):
        if j < len(people):
            decisions[i] = Candidate(people[j], float(cost[i, j]))
    return decisions
