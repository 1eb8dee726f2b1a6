"""The two search beams: nearest faces with ``search_ef``, one face per person with ``people_search_ef``."""

from __future__ import annotations

import pytest

from facerec_registry.app import store_config
from facerec_registry.settings import RegistrySettings
from facerec_registry.store.base import StoreConfig
from facerec_registry.store.edge import search_params


def test_both_beams_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEREC_REGISTRY_SEARCH_EF", "48")
    monkeypatch.setenv("FACEREC_REGISTRY_PEOPLE_SEARCH_EF", "256")

    config = store_config(RegistrySettings())

    assert (config.hnsw_ef, config.people_hnsw_ef) == (48, 256)


def test_defaults_search_people_with_a_wider_beam_than_faces() -> None:
    config = store_config(RegistrySettings())

    assert (config.hnsw_ef, config.people_hnsw_ef) == (StoreConfig.hnsw_ef, StoreConfig.people_hnsw_ef)
    assert config.people_hnsw_ef > config.hnsw_ef


def test_edge_searches_for_distinct_people_use_the_people_beam() -> None:
    config = StoreConfig(hnsw_ef=40, people_hnsw_ef=300)

    assert search_params(config).hnsw_ef == 40
    assert search_params(config, distinct_people=True).hnsw_ef == 300
