"""Rules of the registry's domain that need no store."""

from __future__ import annotations

import numpy as np
import pytest

from facerec.runtime.errors import InvalidArgument
from facerec_registry.domain import (
    PersonAttributes,
    PersonUpdate,
    as_vector,
    decode_page_token,
    encode_page_token,
    page_size_or_default,
    validate_collection_name,
    validate_person_id,
)


@pytest.mark.parametrize("name", ["a", "A-1_b", "9" * 64, "acme__staff", "t" * 32 + "__" + "c" * 48])
def test_collection_names_of_the_allowed_alphabet_are_accepted(name: str) -> None:
    assert validate_collection_name(name) == name


@pytest.mark.parametrize("person_id", ["p", "Ünïcødé name", "x" * 128])
def test_person_ids_of_1_to_128_printable_characters_are_accepted(person_id: str) -> None:
    assert validate_person_id(person_id) == person_id


@pytest.mark.parametrize("person_id", ["", "x" * 129, "tab\there", "bell\x07", "c1\x85"])
def test_empty_long_or_control_character_person_ids_are_refused(person_id: str) -> None:
    with pytest.raises(InvalidArgument):
        validate_person_id(person_id)


def test_vectors_become_float32_of_the_expected_dimension() -> None:
    vector = as_vector([0.5, 1, 2], 3, "query")

    assert vector.dtype == np.float32
    assert vector.tolist() == [0.5, 1.0, 2.0]


@pytest.mark.parametrize("values", [[1.0, 2.0], [[1.0, 2.0, 3.0]], [1.0, float("nan"), 3.0]])
def test_malformed_vectors_are_refused(values: list[object]) -> None:
    with pytest.raises(InvalidArgument):
        as_vector(values, 3, "query")  # type: ignore[arg-type]


def test_page_tokens_round_trip_any_person_id() -> None:
    for person_id in ["a", "person/with=odd chars", "ü" * 128]:
        assert decode_page_token(encode_page_token(person_id)) == person_id


def test_an_empty_page_token_starts_at_the_first_person() -> None:
    assert decode_page_token("") is None


@pytest.mark.parametrize(("asked", "used"), [(0, 100), (1, 1), (1000, 1000)])
def test_page_size_zero_means_100(asked: int, used: int) -> None:
    assert page_size_or_default(asked) == used


def test_person_update_keeps_the_display_name_when_not_given() -> None:
    current = PersonAttributes("p", "Ada", {"a": "1"})

    assert PersonUpdate("p", metadata={"b": "2"}).apply(current) == PersonAttributes("p", "Ada", {"a": "1", "b": "2"})


def test_person_update_can_clear_the_display_name() -> None:
    current = PersonAttributes("p", "Ada", {})

    assert PersonUpdate("p", display_name="").apply(current).display_name == ""
