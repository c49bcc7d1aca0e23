"""Open-data settings, read from the environment (prefix ``CITYHEX_OPEN_DATA_``)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class OpenDataSettings(BaseSettings):
    """What the open-data catalog says about its datasets, and how long a download may take."""

    model_config = SettingsConfigDict(env_prefix="CITYHEX_OPEN_DATA_", extra="ignore")

    license: str = "https://creativecommons.org/licenses/by/4.0/"
    """URL of the licence every open dataset is published under (CC BY 4.0 by default)."""
    license_name: str = "CC-BY-4.0"
    """Short name (SPDX identifier) of that licence."""
    publisher: str = "CityHex"
    """Who publishes the open data (the city's name or its data office)."""
    statement_timeout_ms: int = Field(60_000, gt=0)
    """A query of the open-data catalog or of one download running longer than this is
    cancelled (503)."""
    max_age: int = Field(300, ge=0)
    """Cache-Control max-age of open-data answers, seconds (clients revalidate with the ETag)."""


@lru_cache
def open_data_settings() -> OpenDataSettings:
    """The process-wide open-data settings."""
    return OpenDataSettings()
