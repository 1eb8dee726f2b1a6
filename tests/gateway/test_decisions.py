"""Decisions: similarity, and one identity per photo by optimal assignment."""

from __future__ import annotations

import pytest

from facerec_gateway.decisions import Candidate, assign_identities, similarity


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
