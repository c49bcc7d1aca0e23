"""Which driver failures are a database outage, which a statement timeout, and which
neither (the drivers' own exception classes, as they raise them)."""

from __future__ import annotations

import asyncpg
import psycopg
import pytest
from sqlalchemy import exc as sa

from layers.db.outage import outage

TIMEOUTS = [
    asyncpg.QueryCanceledError("canceling statement due to statement timeout"),
    psycopg.errors.QueryCanceled("canceling statement due to statement timeout"),
]
OUTAGES = [
    ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)"),
    TimeoutError(),
    asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
    asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
    asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
    asyncpg.InterfaceError("cannot perform operation: connection is closed"),
    psycopg.OperationalError("connection failed: Connection refused"),
    psycopg.errors.TooManyConnections("sorry, too many clients already"),
    sa.TimeoutError("QueuePool limit of size 10 overflow 10 reached"),
]
NEITHER = [
    asyncpg.exceptions.UniqueViolationError("duplicate key value"),
    psycopg.errors.LockNotAvailable("could not obtain lock"),
    ValueError("not a database failure"),
]


@pytest.mark.parametrize("error", TIMEOUTS, ids=lambda e: type(e).__name__)
def test_a_cancelled_statement_is_a_timeout(error: Exception) -> None:
    failure = outage(error)
    assert failure is not None and failure.code == "statement_timeout"
    assert "canceling" not in failure.message


@pytest.mark.parametrize("error", OUTAGES, ids=lambda e: type(e).__name__)
def test_an_unreachable_database_is_an_outage(error: Exception) -> None:
    failure = outage(error)
    assert failure is not None and failure.code == "database_unavailable"
    assert "127.0.0.1" not in failure.message and "111" not in failure.message


@pytest.mark.parametrize("error", NEITHER, ids=lambda e: type(e).__name__)
def test_other_failures_are_neither(error: Exception) -> None:
    assert outage(error) is None


def test_sqlalchemy_wrapped_errors_are_judged_by_the_driver_error_inside() -> None:
    cancelled = sa.DBAPIError("SELECT 1", None, TIMEOUTS[1])
    assert outage(cancelled).code == "statement_timeout"  # type: ignore[union-attr]
    violated = sa.IntegrityError("INSERT", None, psycopg.errors.UniqueViolation("duplicate"))
    assert outage(violated) is None
    dropped = sa.DBAPIError("SELECT 1", None, psycopg.OperationalError("closed"))
    dropped.connection_invalidated = True
    assert outage(dropped).code == "database_unavailable"  # type: ignore[union-attr]
