"""Engines and connections: one async engine per server process, psycopg for bulk work.

Every connection made here is bounded in time: connecting, the check made before a pooled
connection is used, and each statement (the database cancels it after the statement
timeout; the client gives up a little later, for a database that no longer answers).
"""

from __future__ import annotations

import math
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

from layers.db.embedded import EmbeddedCluster, ReplicaCluster
from layers.db.settings import StorageSettings, storage_settings

ANSWER_GRACE_S = 2.0
"""How much longer than the statement timeout the client waits for a statement's answer:
the database reports its own timeout first, so no answer by then means it has stopped
answering."""


def embedded_cluster(home: Path | None = None) -> EmbeddedCluster:
    """The embedded cluster under ``home`` (default: CITYHEX_HOME or .cityhex)."""
    settings = storage_settings()
    return EmbeddedCluster(home or settings.home, port=settings.pg_port)


def replica_cluster(port: int = 0, home: Path | None = None) -> ReplicaCluster:
    """The embedded cluster's streaming replica (``port`` 0: a free one, when it is made)."""
    return ReplicaCluster(home or storage_settings().home, embedded_cluster(home), port=port)


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


async def _check_before_use(connection: Any) -> None:
    """The ``setup`` hook of a checked request pool: the database must answer on the
    connection within the connect timeout, or the connection is closed (TimeoutError)."""
    try:
        await connection.execute("SELECT 1", timeout=storage_settings().connect_timeout_s)
    except BaseException:
        connection.terminate()  # mid-statement: not reusable
        raise


class RequestPool(asyncpg.Pool):
    """An asyncpg pool of request connections whose waits are bounded: a free connection
    is waited for no longer than a statement (``wait_s``), and a connection is handed back
    within the connect timeout (one whose statement was given up, the database not
    answering, is closed rather than waited on)."""

    wait_s: float | None = None

    def acquire(self, *, timeout: float | None = None) -> Any:
        """A connection (see asyncpg.Pool.acquire), by default within ``wait_s``."""
        return super().acquire(timeout=self.wait_s if timeout is None else timeout)

    async def release(self, connection: Any, *, timeout: float | None = None) -> None:
        """Hand ``connection`` back (see asyncpg.Pool.release), by default within the
        connect timeout."""
        bound = storage_settings().connect_timeout_s if timeout is None else timeout
        await super().release(connection, timeout=bound)


POOL_DEFAULTS: dict[str, Any] = {
    "min_size": 0,
    "max_size": 10,
    "max_queries": 50_000,
    "max_inactive_connection_lifetime": 300.0,
    "loop": None,
    "connection_class": asyncpg.Connection,
    "record_class": asyncpg.Record,
}
"""The arguments asyncpg.Pool requires, at asyncpg.create_pool's defaults except
``min_size``: no connection is opened before one is needed."""


async def create_pool(
    url: str, statement_ms: int | None = None, checked: bool = True, **options: Any
) -> asyncpg.Pool:
    """A RequestPool to ``url`` with the bounds of asyncpg_options (the statement timeout of
    requests unless ``statement_ms`` is given) and asyncpg.create_pool's ``options``
    (``server_settings`` among them are added to the statement timeout); a free connection
    is waited for as long as the command timeout. A ``checked`` pool makes sure the
    database answers on a connection before handing it out."""
    bounds = asyncpg_options(statement_ms)
    server_settings = {**options.pop("server_settings", {}), **bounds.pop("server_settings")}
    arguments = {**POOL_DEFAULTS, **bounds, **options}
    pool = RequestPool(
        plain_url(url),
        server_settings=server_settings,
        setup=_check_before_use if checked else None,
        **arguments,
    )
    pool.wait_s = arguments["command_timeout"]
    return await pool


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
