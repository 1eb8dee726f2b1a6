"""Decisions: similarity, one identity per photo by optimal assignment, thresholds that follow the gallery's
size, and the margin rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from facerec_gateway.decisions import (
    DEFAULT_MIN_MARGIN,
    DEFAULT_TARGET_FPIR,
    MIN_COUNTED_PEOPLE,
    AppliedThreshold,
    Candidate,
    Decision,
    DecisionSettings,
    FaceDecision,
    GallerySize,
    ThresholdSource,
    applied_threshold,
    assign_identities,
    decide,
    margin_of,
    model_impostors,
    per_entry_fmr,
    similarity,
)


def test_similarity_is_one_for_identical_half_at_threshold_zero_far_away() -> None:
    assert similarity(0.0, 0.6) == 1.0
    assert similarity(0.6, 0.6) == pytest.approx(0.5)
    assert similarity(1.2, 0.6) == 0.0
    assert similarity(5.0, 0.6) == 0.0


def test_each_face_takes_its_nearest_person_when_no_one_is_contested() -> None:
    decisions = assign_identities([[Candidate("ann", 0.3)], [Candidate("bob", 0.4)]], threshold=0.6)
    assert [d.person_id if d else None for d in decisions] == ["ann", "bob"]


def test_face_beyond_the_threshold_is_unknown() -> None:
    decisions = assign_identities([[Candidate("ann", 0.61), Candidate("bob", 0.9)]], threshold=0.6)
    assert decisions == [None]


def test_contested_person_goes_to_the_nearer_face_and_the_other_takes_its_next_candidate() -> None:
    decisions = assign_identities(
        [
            [Candidate("ann", 0.35), Candidate("bob", 0.5)],
            [Candidate("ann", 0.30), Candidate("cid", 0.9)],
        ],
        threshold=0.6,
    )
    assert [d.person_id if d else None for d in decisions] == ["bob", "ann"]


def test_contested_person_leaves_the_other_face_unknown_when_it_has_no_other_candidate() -> None:
    decisions = assign_identities(
        [[Candidate("ann", 0.45)], [Candidate("ann", 0.30), Candidate("bob", 0.8)]], threshold=0.6
    )
    assert decisions[0] is None
    assert decisions[1] == Candidate("ann", 0.30)


def test_assignment_matches_as_many_faces_as_possible() -> None:
    # Greedy nearest-first would give ann to face 0 (0.20) and leave face 1 unknown.
    decisions = assign_identities(
        [[Candidate("ann", 0.20), Candidate("bob", 0.55)], [Candidate("ann", 0.25)]], threshold=0.6
    )
    assert [d.person_id if d else None for d in decisions] == ["bob", "ann"]


def test_no_face_no_decision() -> None:
    assert assign_identities([], threshold=0.6) == []


# ------------------------------------------------------------------------------ thresholds that follow the size

FIXED = DecisionSettings(threshold=0.6, target_fpir=0.0, min_margin=0.0)
TARGET = DecisionSettings(threshold=0.6, target_fpir=0.01, min_margin=0.0)


def test_a_request_threshold_is_fixed_whatever_the_collection_says() -> None:
    applied = applied_threshold(TARGET, GallerySize(people=1000, faces=3000), override=0.5)
    assert (applied.threshold, applied.source) == (0.5, ThresholdSource.REQUEST)
    assert applied.reason == "0.50: fixed by the request"


def test_a_collection_without_a_target_applies_its_fixed_threshold() -> None:
    applied = applied_threshold(FIXED, GallerySize(people=10**6, faces=10**6))
    assert (applied.threshold, applied.source, applied.target_fpir) == (0.6, ThresholdSource.COLLECTION, 0.0)
    assert applied.reason == "0.60: the collection's fixed threshold"


def test_a_target_fpir_gives_the_threshold_whose_chance_over_the_gallery_is_the_target() -> None:
    impostors = model_impostors()
    for people in (50, 376, 10_000, 1_000_000):
        applied = applied_threshold(TARGET, GallerySize(people=people, faces=3 * people))
        assert applied.source is ThresholdSource.TARGET_FPIR
        assert applied.gallery_size == people
        fpir = 1.0 - (1.0 - impostors.false_match_rate(applied.threshold)) ** people
        assert fpir == pytest.approx(0.01, rel=0.05)


def test_the_threshold_falls_as_the_gallery_grows_and_never_exceeds_the_collection_threshold() -> None:
    sizes = (1, 100, 10_000, 1_000_000, 100_000_000)
    thresholds = [applied_threshold(TARGET, GallerySize(n, n)).threshold for n in sizes]
    assert thresholds == sorted(thresholds, reverse=True)
    assert len(set(thresholds)) == len(thresholds) or thresholds[0] == 0.6
    loose = DecisionSettings(threshold=0.6, target_fpir=0.5, min_margin=0.0)
    capped = applied_threshold(loose, GallerySize(people=1, faces=1))
    assert capped.threshold == 0.6
    assert "capped at the collection's threshold" in capped.reason


def test_a_small_gallery_counts_as_the_least_number_of_people_and_says_so() -> None:
    small = applied_threshold(TARGET, GallerySize(people=8, faces=8))
    assert small.threshold == applied_threshold(TARGET, GallerySize(people=MIN_COUNTED_PEOPLE, faces=50)).threshold
    assert small.gallery_size == 8
    assert small.reason == (
        f"{small.threshold:.2f}: target FPIR 1% over 8 enrolled people (counted as {MIN_COUNTED_PEOPLE}, the least "
        "a gallery counts)"
    )


def test_the_reason_says_the_threshold_the_target_and_the_gallery() -> None:
    applied = applied_threshold(TARGET, GallerySize(people=376, faces=900))
    assert applied.reason == f"{applied.threshold:.2f}: target FPIR 1% over 376 enrolled people"


def test_a_margin_override_replaces_the_collection_margin_and_is_named_in_the_reason() -> None:
    settings = DecisionSettings(threshold=0.6, target_fpir=0.0, min_margin=0.05)
    assert applied_threshold(settings, GallerySize(2, 2)).min_margin == 0.05
    applied = applied_threshold(settings, GallerySize(2, 2), min_margin_override=0.1)
    assert applied.min_margin == 0.1
    assert applied.reason.endswith("minimum margin 0.10")


def test_per_entry_fmr_inverts_the_chance_over_n_entries_even_for_huge_galleries() -> None:
    for n in (1, 1000, 10**9):
        p = per_entry_fmr(0.01, n)
        assert -math.expm1(n * math.log1p(-p)) == pytest.approx(0.01, rel=1e-9)


def test_the_shipped_impostor_distribution_is_monotone_and_reaches_far_into_the_tail() -> None:
    impostors = model_impostors()
    assert np.all(np.diff(impostors.thresholds) > 0)
    assert np.all(np.diff(impostors.log10_fmr) > 0)
    assert impostors.log10_fmr[0] <= -12  # 1 % FPIR over 1M people needs 1e-8
    assert impostors.false_match_rate(1.5) == pytest.approx(1.0, abs=1e-3)
    for fmr in (1e-10, 1e-6, 1e-3, 0.1):
        assert impostors.false_match_rate(impostors.threshold_for(fmr)) == pytest.approx(fmr, rel=1e-6)


# ---------------------------------------------------------------------------------------------- the margin rule


def _applied(threshold: float = 0.6, min_margin: float = 0.0) -> AppliedThreshold:
    return AppliedThreshold(threshold, ThresholdSource.COLLECTION, 0.0, 0, min_margin, "test")


def test_a_face_under_the_threshold_is_matched_with_its_margin() -> None:
    [face] = decide([[Candidate("ann", 0.30), Candidate("bob", 0.70)]], _applied(min_margin=0.1))
    assert face.decision is Decision.MATCHED
    assert face.match == Candidate("ann", 0.30)
    assert face.margin == pytest.approx(0.40)


def test_a_face_too_close_to_two_people_is_ambiguous_not_matched() -> None:
    [face] = decide([[Candidate("ann", 0.40), Candidate("bob", 0.43)]], _applied(min_margin=0.05))
    assert face.decision is Decision.AMBIGUOUS
    assert face.match is None
    assert face.margin == pytest.approx(0.03)


def test_without_a_minimum_margin_a_close_call_is_matched() -> None:
    [face] = decide([[Candidate("ann", 0.40), Candidate("bob", 0.43)]], _applied(min_margin=0.0))
    assert face.decision is Decision.MATCHED


def test_a_face_over_the_threshold_is_unknown_even_with_a_small_margin() -> None:
    [face] = decide([[Candidate("ann", 0.70), Candidate("bob", 0.71)]], _applied(min_margin=0.05))
    assert (face.decision, face.match) == (Decision.UNKNOWN, None)


def test_a_single_candidate_has_no_margin_and_no_ambiguity() -> None:
    [face] = decide([[Candidate("ann", 0.30)]], _applied(min_margin=0.2))
    assert (face.decision, face.margin) == (Decision.MATCHED, None)


def test_the_margin_is_taken_between_people_in_any_order() -> None:
    assert margin_of([Candidate("bob", 0.5), Candidate("ann", 0.3), Candidate("cid", 0.9)]) == pytest.approx(0.2)


def test_an_ambiguous_face_takes_no_person_from_another_face_of_the_photo() -> None:
    faces = decide(
        [
            [Candidate("ann", 0.30), Candidate("bob", 0.32)],  # ambiguous
            [Candidate("ann", 0.35), Candidate("cid", 0.90)],
        ],
        _applied(min_margin=0.05),
    )
    assert [f.decision for f in faces] == [Decision.AMBIGUOUS, Decision.MATCHED]
    assert faces[1].match == Candidate("ann", 0.35)


def test_one_identity_per_photo_still_holds_in_decide() -> None:
    faces = decide(
        [[Candidate("ann", 0.35), Candidate("bob", 0.5)], [Candidate("ann", 0.30), Candidate("cid", 0.9)]],
        _applied(),
    )
    assert [f.match.person_id if f.match else None for f in faces] == ["bob", "ann"]
    assert [f.decision for f in faces] == [Decision.MATCHED, Decision.MATCHED]


def test_a_face_whose_person_went_to_another_face_and_has_no_other_candidate_is_unknown() -> None:
    faces = decide([[Candidate("ann", 0.45)], [Candidate("ann", 0.30), Candidate("bob", 0.8)]], _applied())
    assert faces[0] == FaceDecision(Decision.UNKNOWN, None, None)
    assert faces[1].decision is Decision.MATCHED


def test_the_defaults_ask_for_a_target_fpir_within_the_allowed_ranges() -> None:
    assert 0 < DEFAULT_TARGET_FPIR <= 0.5
    assert 0 <= DEFAULT_MIN_MARGIN <= 1
