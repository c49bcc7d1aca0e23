"""Storage settings, read from the environment (prefix ``CITYHEX_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class StorageSettings(BaseSettings):
    """Where the data lives: an external database URL, or the embedded cluster's folder."""

    model_config = SettingsConfigDict(env_prefix="CITYHEX_", extra="ignore")

    database_url: str | None = None
    """A PostgreSQL URL (postgresql://user:pass@host:port/db). Unset: the embedded cluster."""

    home: Path = Path(".cityhex")
    """The embedded cluster and other local state live under this folder."""

    pg_port: int = 0
    """Loopback port of the embedded cluster; 0 picks a free one when the cluster is made."""

    pool_size: int = 10
    """Connections each server process keeps open."""


@lru_cache
def storage_settings() -> StorageSettings:
    """The process-wide storage settings."""
    return StorageSettings()
