"""Storage settings, read from the environment (prefix ``CITYHEX_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class StorageSettings(BaseSettings):
    """Where the data lives: an external database URL, or the embedded cluster's folder; and
    how long CityHex waits for the database."""

    model_config = SettingsConfigDict(env_prefix="CITYHEX_", extra="ignore")

    database_url: str | None = None
    """A PostgreSQL URL (postgresql://user:pass@host:port/db). Unset: the embedded cluster."""

    home: Path = Path(".cityhex")
    """The embedded cluster and other local state live under this folder."""

    pg_port: int = 0
    """Loopback port of the embedded cluster; 0 picks a free one when the cluster is made."""

    pool_size: int = 10
    """Connections each server process keeps open."""

    statement_timeout_ms: int = Field(15_000, gt=0)
    """Longest a statement of an HTTP request may run: the database cancels it then and the
    request answers 503 `statement_timeout`. It bounds every request connection (the main
    pool, grid lookups, tiles unless `CITYHEX_TILE_STATEMENT_TIMEOUT_MS` is set); a
    statement that gets no answer at all within 2 s more is given up as an outage."""

    job_statement_timeout_ms: int = Field(1_800_000, gt=0)
    """Longest a statement of command-line work and jobs (imports, exports, the demo, grid
    builds, hotspot refreshes) may run before the database cancels it."""

    replica_urls: str = ""
    """Streaming replicas of the database, a comma list of PostgreSQL URLs (e.g. from
    `cityhex db replica url`). Tiles, Features reads, spatial queries, grid lookups and
    analytics read from one of them when it has replayed every change notice this server
    has heard for what the request reads; writes, LISTEN and reads inside a write use the
    primary."""

    replica_max_lag_s: float = Field(5.0, gt=0)
    """A replica further behind the primary than this (seconds), or down, is not read from
    until a health check (every second) finds it caught up again."""

    connect_timeout_s: float = Field(3.0, gt=0)
    """How long CityHex waits for the database to accept a connection, to answer the check
    made before a pooled connection is used, or to free a pooled connection; past it the
    request answers 503 `database_unavailable`."""

    def replicas(self) -> list[str]:
        """The replica URLs of ``replica_urls``, in order, blanks left out."""
        return [u.strip() for u in self.replica_urls.split(",") if u.strip()]


@lru_cache
def storage_settings() -> StorageSettings:
    """The process-wide storage settings."""
    return StorageSettings()
