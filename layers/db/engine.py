"""Engines and connections: one async engine per server process, psycopg for bulk work.

Every connection made here is bounded in time: connecting, the check made before a pooled
connection is used, and each statement (the database cancels it after the statement
timeout; the client gives up a little later, for a database that no longer answers).
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine

from layers.db.embedded import EmbeddedCluster
from layers.db.settings import StorageSettings, storage_settings

ANSWER_GRACE_S = 2.0
"""How much longer than the statement timeout the client waits for a statement's answer:
the database reports its own timeout first, so no answer by then means it has stopped
answering."""
CHECK_WINDOW_S = 1.0
"""A pooled asyncpg connection handed out within this many seconds is not checked again."""


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


def statement_timeout_ms(job: bool = False) -> int:
    """The statement timeout of request connections, or of jobs and command-line work."""
    settings = storage_settings()
    return settings.job_statement_timeout_ms if job else settings.statement_timeout_ms


def answer_timeout_s(statement_ms: int) -> float:
    """How long the client waits for a statement bounded by ``statement_ms`` to answer."""
    return statement_ms / 1000 + ANSWER_GRACE_S


def asyncpg_options(
    statement_ms: int | None = None, settings: StorageSettings | None = None
) -> dict[str, Any]:
    """Connection arguments of an asyncpg connection serving requests: the connect timeout,
    the statement timeout (server side) and the command timeout (client side)."""
    settings = settings or storage_settings()
    statement_ms = statement_ms or settings.statement_timeout_ms
    return {
        "timeout": settings.connect_timeout_s,
        "command_timeout": answer_timeout_s(statement_ms),
        "server_settings": {"statement_timeout": str(statement_ms)},
    }


def _check_on_checkout(timeout: float) -> Callable[..., None]:
    """A pool checkout hook that makes sure a connection answers within ``timeout`` before
    it is used; one that does not is dropped and replaced by a new connection."""

    def check(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        try:
            dbapi_connection.run_async(lambda pg: pg.execute("SELECT 1", timeout=timeout))
        except BaseException as exc:
            dbapi_connection.driver_connection.terminate()  # mid-statement: not reusable
            if isinstance(exc, Exception):
                raise DisconnectionError("the database did not answer the check") from exc
            raise

    return check


def create_async_engine(
    url: str | None = None, pool_size: int | None = None, job: bool = False
) -> AsyncEngine:
    """An asyncpg-backed engine whose pool survives database restarts and outages: each
    connection is checked before use, and every wait on the database is bounded (the
    statement timeout of requests, or of jobs with ``job``)."""
    settings = storage_settings()
    engine = _create_async_engine(
        with_driver(url or database_url(), "asyncpg"),
        pool_size=pool_size or settings.pool_size,
        max_overflow=settings.pool_size,
        pool_timeout=settings.connect_timeout_s,
        pool_recycle=3600,
        connect_args=asyncpg_options(statement_timeout_ms(job), settings),
    )
    event.listen(
        engine.sync_engine.pool, "checkout", _check_on_checkout(settings.connect_timeout_s)
    )
    return engine


class CheckedConnection(asyncpg.Connection):
    """A pooled request connection that is checked before it is handed out, unless it was
    handed out within the last CHECK_WINDOW_S (a busy pool pays nothing for the checks)."""

    handed_out_at = -math.inf

    async def check(self, timeout: float) -> None:
        """Make sure the database answers on this connection within ``timeout``; when it
        does not, close the connection and raise TimeoutError (or what the driver raised)."""
        now = time.monotonic()
        if now - self.handed_out_at > CHECK_WINDOW_S:
            try:
                await self.execute("SELECT 1", timeout=timeout)
            except BaseException:
                self.terminate()  # mid-statement: not reusable
                raise
        self.handed_out_at = now


async def _check_before_use(connection: Any) -> None:
    """The ``setup`` hook of request pools: CheckedConnection.check with the connect timeout."""
    await connection.check(storage_settings().connect_timeout_s)


async def create_pool(url: str, statement_ms: int | None = None, **options: Any) -> asyncpg.Pool:
    """An asyncpg pool of request connections to ``url`` with the bounds of asyncpg_options
    (the statement timeout of requests unless ``statement_ms`` is given), whose connections
    are CheckedConnections (``connection_class`` in ``options`` must derive from it);
    ``server_settings`` in ``options`` are added to the statement timeout."""
    bounds = asyncpg_options(statement_ms)
    server_settings = {**options.pop("server_settings", {}), **bounds.pop("server_settings")}
    return await asyncpg.create_pool(
        plain_url(url),
        server_settings=server_settings,
        setup=_check_before_use,
        **{**bounds, "connection_class": CheckedConnection, **options},
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
    """A psycopg 3 connection, for COPY and command-line work, with the connect timeout and
    the statement timeout of jobs."""
    settings = storage_settings()
    conninfo = plain_url(url or database_url())
    options = conninfo_to_dict(conninfo).get("options", "")
    bounded = make_conninfo(
        conninfo,
        connect_timeout=max(2, math.ceil(settings.connect_timeout_s)),
        options=f"{options} -c statement_timeout={settings.job_statement_timeout_ms}".strip(),
    )
    return psycopg.connect(bounded, autocommit=autocommit)
