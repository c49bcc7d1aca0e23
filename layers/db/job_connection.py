"""The database connection of one ETL job (import, zonal statistics, export)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from layers.db.engine import connect_sync
from layers.db.outage import outage

log = logging.getLogger("cityhex")


@contextmanager
def job_connection(url: str) -> Iterator[psycopg.Connection]:
    """A psycopg connection to ``url`` (with the connect timeout and the statement timeout
    of jobs); ServiceUnavailable when the database cannot be reached, drops the connection
    during the job, or cancels a statement that ran past its timeout (its transaction is
    then rolled back)."""
    try:
        with connect_sync(url) as conn:
            yield conn
    except psycopg.OperationalError as exc:
        failure = outage(exc)
        if failure is None:
            raise
        log.warning("job connection: %s: %s", failure.code, exc)
        raise failure from exc
