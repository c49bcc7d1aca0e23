"""Bounds on CQL2 filters, read from the environment (prefix ``CITYHEX_FILTER_``)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class FilterSettings(BaseSettings):
    """How much work one CQL2 filter (Features, tiles, spatial queries) may ask of the
    database; a filter past a bound is refused with 400 `filter_too_complex` before it
    reaches the database."""

    model_config = SettingsConfigDict(env_prefix="CITYHEX_FILTER_", extra="ignore")

    max_vertices: int = Field(1_000, gt=0)
    """Most vertices the geometry literals of one filter may have together (a BBOX counts
    4). A spatial predicate's cost grows with them, for every row it tests."""
    max_depth: int = Field(10, gt=0)
    """Deepest nesting of operators: NOT, a run of AND (or of OR), a comparison, arithmetic
    and functions each add a level (`a = 1 AND NOT (b = 2 OR c = 3)` is 4 deep)."""
    max_predicates: int = Field(50, gt=0)
    """Most conditions (comparisons, LIKE, BETWEEN, IN, IS NULL, spatial and temporal
    predicates) in one filter."""


@lru_cache
def filter_settings() -> FilterSettings:
    """The process-wide filter bounds."""
    return FilterSettings()
