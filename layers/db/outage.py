"""What a failure of the database means for a caller: it cannot be reached, or a statement
ran past its timeout.

The drivers (asyncpg, psycopg, SQLAlchemy over asyncpg) say either in many ways; ``outage``
turns each into one ``ServiceUnavailable`` with one of two codes and a message free of
driver text (hosts, ports, errno), which callers log instead of sending.
"""

from __future__ import annotations

import asyncpg
import psycopg
from sqlalchemy import exc as sa

from gis.errors import ServiceUnavailable

UNAVAILABLE = "database_unavailable"
TIMEOUT = "statement_timeout"
QUERY_CANCELED = "57014"
"""SQLSTATE of a statement cancelled by its timeout (or by a cancel request)."""
UNREACHABLE_STATES = ("08", "57P", "53300")
"""SQLSTATEs of a lost connection, of a server shutting down or starting up, and of one
with no connection to spare."""
UNREACHABLE = (
    OSError,  # refused, reset, and TimeoutError: no connection or no answer in time
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    psycopg.OperationalError,
    sa.TimeoutError,  # no pooled connection came free in time
)
"""What the client raises itself when it cannot reach the database or gets no answer."""

UNAVAILABLE_MESSAGE = "the database cannot be reached or does not answer; try again shortly"
TIMEOUT_MESSAGE = (
    "the query took too long and was cancelled; ask for less (a smaller area, a simpler "
    "filter or a smaller page)"
)


def _sqlstate(exc: BaseException) -> str | None:
    if isinstance(exc, sa.DBAPIError):
        exc = exc.orig or exc
    state = getattr(exc, "sqlstate", None)
    return state if isinstance(state, str) else None


def outage(exc: BaseException) -> ServiceUnavailable | None:
    """The 503 error ``exc`` amounts to (code ``statement_timeout`` or
    ``database_unavailable``), or None when it is not a timeout and the database was
    reached."""
    state = _sqlstate(exc)
    if state == QUERY_CANCELED:
        return ServiceUnavailable(TIMEOUT_MESSAGE, code=TIMEOUT)
    if state is not None:
        unreachable = state.startswith(UNREACHABLE_STATES)
    else:  # failures the client saw itself: no connection, a dropped one, no answer
        unreachable = isinstance(exc, UNREACHABLE)
    if isinstance(exc, sa.DBAPIError):
        unreachable = unreachable or bool(exc.connection_invalidated)
        unreachable = unreachable or isinstance(exc, sa.OperationalError | sa.InterfaceError)
    if unreachable:
        return ServiceUnavailable(UNAVAILABLE_MESSAGE, code=UNAVAILABLE)
    return None
