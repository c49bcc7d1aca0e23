"""Tile settings, read from the environment (prefix ``CITYHEX_TILE_``)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class TileSettings(BaseSettings):
    """How tiles are built, cached and served."""

    model_config = SettingsConfigDict(env_prefix="CITYHEX_TILE_", extra="ignore")

    cache_mb: float = 256.0
    """Size bound of each worker's tile cache; 0 turns the cache off."""
    pool_size: int = 2
    """Database connections each worker keeps for tiles. Tile queries are CPU-bound: with
    about as many in flight as there are cores, a heavy tile is not time-sliced against
    many others (on 2 cores, 2 per worker gave the same throughput as 3 and half the p99)."""
    statement_timeout_ms: int | None = Field(None, gt=0)
    """A tile query running longer than this is cancelled (503 `statement_timeout`).
    Unset: the statement timeout of every request, `CITYHEX_STATEMENT_TIMEOUT_MS`."""
    max_age: int = 0
    """Cache-Control max-age of tile responses, seconds (clients revalidate with the ETag)."""


@lru_cache
def tile_settings() -> TileSettings:
    """The process-wide tile settings."""
    return TileSettings()
