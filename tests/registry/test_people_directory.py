"""The people directory the embedded store keeps beside its faces: counts and ordered keyset pages."""

from __future__ import annotations

import pytest

from facerec_registry.store.people import PeopleDirectory


def test_counts_and_order_follow_recorded_faces() -> None:
    people = PeopleDirectory({"bo": 2, "al": 1, "gone": 0})

    people.record(added=["cy", "al", "cy"], removed=["bo"])

    assert (people.people(), people.faces()) == (3, 5)
    assert [people.faces_of(p) for p in ("al", "bo", "cy", "gone")] == [2, 1, 2, 0]
    assert people.after(None, 10) == ["al", "bo", "cy"]


def test_pages_resume_after_the_last_id_even_when_it_is_gone() -> None:
    people = PeopleDirectory({f"p{i:03d}": 1 for i in range(50)})

    people.remove_person("p010")

    assert people.after("p009", 2) == ["p011", "p012"]
    assert people.after("p010", 2) == ["p011", "p012"]
    assert people.after("p049", 5) == []


def test_many_new_people_in_one_write_stay_ordered() -> None:
    people = PeopleDirectory({"m": 1})

    people.record(added=[f"n{i}" for i in range(40, 0, -1)] + ["a"])

    assert people.after(None, 100) == sorted(["m", "a", *(f"n{i}" for i in range(1, 41))])
    assert people.people() == 42


def test_a_person_cannot_lose_more_faces_than_they_have() -> None:
    people = PeopleDirectory({"al": 1})

    with pytest.raises(ValueError):
        people.record(removed=["al", "al"])
