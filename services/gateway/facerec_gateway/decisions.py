"""Turning distances into decisions: thresholds that follow the gallery's size, margins, one identity per photo.

Distances are euclidean distances between raw dlib ResNet descriptors; a face matches a person when its
distance to that person's nearest enrolled face is at most the applied threshold.

A collection either keeps a fixed threshold (``target_fpir`` 0) or names a target false-positive
identification rate (FPIR): the share of strangers who may be declared to be someone enrolled. A stranger
searched against N enrolled entries is falsely matched when at least one of them is under the threshold, which
for independent entries happens with probability ``1 - (1 - FMR(t)) ** N``; the applied threshold is the ``t``
that makes this the target, with ``FMR`` the model's impostor distance distribution (shipped in
``impostor_tail.json``, measured by ``benchmarks/impostor_tail.py``), capped at the collection's threshold.
"""

from __future__ import annotations

import enum
import functools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

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


# ------------------------------------------------------------------------------------------ decision settings

# Chosen with benchmarks/open_set.py (the README's "Decisions" section has the figures): at these defaults
# strangers stay unknown (FPIR <= 1 %) on every labelled set here, at the false negatives stated there. The
# margin of 0.04 costs about half a point of FNIR at the defaults, halves the false positives on LFW, keeps
# galleries enrolled from several photos per person under 1 %, and at FPIR 1 % lowers LFW's FNIR from 47 % to 34 %.
DEFAULT_TARGET_FPIR = 0.01
DEFAULT_MIN_MARGIN = 0.04
# A gallery counts as at least this many people. The shipped distribution is LFW's (varied photos); in a
# small gallery shot in one place (essex_faces94, yalefaces: 8-9 people, one background and light) strangers
# come closer than that, and one look-alike is a whole stranger's photos. 50 keeps every labelled set here
# under 1 % (the threshold of a small gallery is then 0.51, where yalefaces' first stranger appears at 0.512).
MIN_COUNTED_PEOPLE = 50

IMPOSTOR_TAIL_FILE = "impostor_tail.json"


class ThresholdSource(enum.Enum):
    """Where the applied threshold came from."""

    REQUEST = "request"
    COLLECTION = "collection"
    TARGET_FPIR = "target_fpir"


class Decision(enum.Enum):
    """What a face is: a matched person, nobody enrolled, or too close to two people to say."""

    MATCHED = "matched"
    UNKNOWN = "unknown"
    AMBIGUOUS = "ambiguous"


@dataclass(frozen=True)
class DecisionSettings:
    """A collection's decision settings.

    ``threshold`` is the largest distance ever accepted (the fixed threshold when ``target_fpir`` is 0, the cap
    otherwise); ``target_fpir`` in (0, 0.5] makes the threshold follow the gallery's size; ``min_margin`` 0 turns
    the margin rule off.
    """

    threshold: float
    target_fpir: float
    min_margin: float


@dataclass(frozen=True)
class GallerySize:
    """How many people and faces a collection holds."""

    people: int
    faces: int


@dataclass(frozen=True)
class AppliedThreshold:
    """The threshold and minimum margin one identification decides with, and one human line saying why.

    ``target_fpir`` and ``gallery_size`` are those the threshold was derived for (source TARGET_FPIR), else 0.
    """

    threshold: float
    source: ThresholdSource
    target_fpir: float
    gallery_size: int
    min_margin: float
    reason: str


@dataclass(frozen=True)
class FaceDecision:
    """The decision for one face: ``match`` is set exactly when ``decision`` is MATCHED.

    ``margin`` is the second-nearest person's distance minus the nearest's; None with fewer than two candidates.
    """

    decision: Decision
    match: Candidate | None
    margin: float | None


# ------------------------------------------------------------------------------------ the impostor distribution


@dataclass(frozen=True)
class ImpostorDistances:
    """The model's false match rate as a function of the threshold: FMR(t), the share of impostor pairs at or
    under ``t``, tabulated as ``log10`` on increasing thresholds (empirical where pairs were measured, the fitted
    tail below; see ``benchmarks/impostor_tail.py``). Between points it is interpolated linearly in log10."""

    thresholds: np.ndarray
    log10_fmr: np.ndarray

    def false_match_rate(self, threshold: float) -> float:
        """FMR at ``threshold``; below the table, its smallest rate (the table reaches 1e-12 or less)."""
        return float(10.0 ** np.interp(threshold, self.thresholds, self.log10_fmr))

    def threshold_for(self, fmr: float) -> float:
        """The threshold whose FMR is ``fmr`` (clamped to the table's range)."""
        return float(np.interp(math.log10(max(fmr, 1e-300)), self.log10_fmr, self.thresholds))


@functools.cache
def model_impostors() -> ImpostorDistances:
    """The shipped impostor distribution of dlib's ResNet (``impostor_tail.json`` in this package)."""
    text = resources.files("facerec_gateway").joinpath(IMPOSTOR_TAIL_FILE).read_text(encoding="utf-8")
    table = json.loads(text)["table"]
    return ImpostorDistances(
        np.asarray([row[0] for row in table], dtype=np.float64),
        np.asarray([row[1] for row in table], dtype=np.float64),
    )


def per_entry_fmr(target_fpir: float, entries: int) -> float:
    """The false match rate per gallery entry that gives ``target_fpir`` over ``entries`` independent entries:
    the ``p`` with ``1 - (1 - p) ** entries == target_fpir`` (computed without cancellation for large ``entries``)."""
    return -math.expm1(math.log1p(-target_fpir) / max(1, entries))


def fpir_threshold(target_fpir: float, entries: int, impostors: ImpostorDistances | None = None) -> float:
    """The threshold at which a stranger falls under it for one of ``entries`` entries with chance ``target_fpir``."""
    return (impostors or model_impostors()).threshold_for(per_entry_fmr(target_fpir, entries))


# ---------------------------------------------------------------------------------------------- the decision


def gallery_entries(gallery: GallerySize) -> int:
    """The N of ``1 - (1 - FMR) ** N``: the enrolled people (see the README's "Decisions": a stranger's chance
    of falling under a person's nearest of several faces was measured close to that of one face)."""
    return gallery.people


def applied_threshold(
    settings: DecisionSettings,
    gallery: GallerySize,
    *,
    override: float | None = None,
    min_margin_override: float | None = None,
) -> AppliedThreshold:
    """The threshold and minimum margin one identification applies.

    A request's ``override`` is a fixed threshold (source REQUEST). Otherwise a collection with ``target_fpir`` 0
    applies its fixed threshold (COLLECTION); one with a target applies the threshold at which a stranger's
    chance of falling under it for at least one of the gallery's entries is the target (TARGET_FPIR), never above
    the collection's threshold. ``min_margin_override`` replaces the collection's minimum margin.
    """
    margin = settings.min_margin if min_margin_override is None else min_margin_override
    margin_note = f", minimum margin {margin:.2f}" if margin > 0 else ""
    if override is not None:
        return AppliedThreshold(
            override, ThresholdSource.REQUEST, 0.0, 0, margin, f"{override:.2f}: fixed by the request{margin_note}"
        )
    if settings.target_fpir <= 0:
        return AppliedThreshold(
            settings.threshold,
            ThresholdSource.COLLECTION,
            0.0,
            0,
            margin,
            f"{settings.threshold:.2f}: the collection's fixed threshold{margin_note}",
        )
    entries = gallery_entries(gallery)
    derived = fpir_threshold(settings.target_fpir, max(entries, MIN_COUNTED_PEOPLE))
    threshold = min(derived, settings.threshold)
    why = (
        f"target FPIR {settings.target_fpir * 100:g}% over {entries} enrolled {'person' if entries == 1 else 'people'}"
    )
    if entries < MIN_COUNTED_PEOPLE:
        why += f" (counted as {MIN_COUNTED_PEOPLE}, the least a gallery counts)"
    if derived > settings.threshold:
        why += f" (gives {derived:.2f}, capped at the collection's threshold)"
    return AppliedThreshold(
        threshold,
        ThresholdSource.TARGET_FPIR,
        settings.target_fpir,
        entries,
        margin,
        f"{threshold:.2f}: {why}{margin_note}",
    )


def margin_of(candidates: Sequence[Candidate]) -> float | None:
    """The second-nearest person's distance minus the nearest's; None with fewer than two people."""
    nearest: dict[str, float] = {}
    for c in candidates:
        nearest[c.person_id] = min(c.distance, nearest.get(c.person_id, math.inf))
    if len(nearest) < 2:
        return None
    first, second = sorted(nearest.values())[:2]
    return second - first


def decide(candidates: Sequence[Sequence[Candidate]], applied: AppliedThreshold) -> list[FaceDecision]:
    """The decision for every face of one photo.

    ``candidates[i]`` are face ``i``'s nearest people, one entry per person, NOT filtered by the threshold (the
    margin needs the second-nearest person wherever they are). A face whose nearest person is under the
    threshold but whose margin is below the minimum margin is AMBIGUOUS and claims nobody; the other faces share
    the people by :func:`assign_identities` (one identity per photo), and those left without a person are UNKNOWN.
    """
    margins = [margin_of(face) for face in candidates]
    ambiguous = [
        margin is not None and margin < applied.min_margin and min(c.distance for c in face) <= applied.threshold
        for face, margin in zip(candidates, margins, strict=True)
    ]
    # An ambiguous face takes part in no assignment, so it cannot take a person from another face.
    eligible = [[] if unsure else face for face, unsure in zip(candidates, ambiguous, strict=True)]
    matches = assign_identities(eligible, applied.threshold)
    decisions: list[FaceDecision] = []
    for match, margin, unsure in zip(matches, margins, ambiguous, strict=True):
        if unsure:
            decisions.append(FaceDecision(Decision.AMBIGUOUS, None, margin))
        else:
            decisions.append(FaceDecision(Decision.MATCHED if match else Decision.UNKNOWN, match, margin))
    return decisions
