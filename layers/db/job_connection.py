"""The database connection of one ETL job (import, zonal statistics, export)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from gis.errors import ServiceUnavailable
from layers.db.engine import connect_sync


@contextmanager
def job_connection(url: str) -> Iterator[psycopg.Connection]:
    """A psycopg connection to ``url``; ServiceUnavailable when the database cannot be
    reached or drops the connection during the job (its transaction is then rolled back)."""
    try:
        with connect_sync(url) as conn:
            yield conn
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ServiceUnavailable(
            f"the database cannot be reached or failed during the job: {reason}",
            code="database_unavailable",
        ) from exc
