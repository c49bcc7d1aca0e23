"""Engines and connections: one async engine per server process, psycopg for bulk work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import psycopg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine

from layers.db.embedded import EmbeddedCluster
from layers.db.settings import storage_settings


def embedded_cluster(home: Path | None = None) -> EmbeddedCluster:
    """The embedded cluster under ``home`` (default: CITYHEX_HOME or .cityhex)."""
    settings = storage_settings()
    return EmbeddedCluster(home or settings.home, port=settings.pg_port)


def database_url() -> str:
    """The plain postgresql:// URL CityHex uses: CITYHEX_DATABASE_URL, else the embedded one."""
    settings = storage_settings()
    return settings.database_url or embedded_cluster().url()


def with_driver(url: str, driver: str) -> str:
    """The same URL with an explicit SQLAlchemy driver (asyncpg, psycopg)."""
    u = make_url(url)
    return u.set(drivername=f"postgresql+{driver}").render_as_string(hide_password=False)


def plain_url(url: str) -> str:
    """The URL without a SQLAlchemy driver suffix, as libpq and asyncpg take it."""
    u = make_url(url)
    return u.set(drivername="postgresql").render_as_string(hide_password=False)


def create_async_engine(url: str | None = None, pool_size: int | None = None) -> AsyncEngine:
    """An asyncpg-backed engine whose pool survives database restarts (pre-ping)."""
    settings = storage_settings()
    return _create_async_engine(
        with_driver(url or database_url(), "asyncpg"),
        pool_size=pool_size or settings.pool_size,
        max_overflow=settings.pool_size,
        pool_pre_ping=True,
        pool_recycle=3600,
    )


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """A session factory bound to ``engine`` that keeps objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def raw_connection(conn: AsyncConnection) -> AsyncIterator[asyncpg.Connection]:
    """The asyncpg connection under a SQLAlchemy connection, for hot paths."""
    raw = await conn.get_raw_connection()
    yield raw.driver_connection  # type: ignore[misc]


def connect_sync(url: str | None = None, autocommit: bool = False) -> psycopg.Connection:
    """A psycopg 3 connection, for COPY and command-line work."""
    return psycopg.connect(plain_url(url or database_url()), autocommit=autocommit)
