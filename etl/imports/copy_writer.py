"""Write prepared rows with COPY, in the caller's transaction: append, replace (delete all
first) or upsert (through a staging table: update rows whose key matches, insert the rest).

A row the database refuses (a duplicate code, an unknown department) becomes a CityHexError
naming the source row, so the caller's transaction rolls back and nothing is written.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from psycopg import errors as pg

from etl.copytext.writer import FieldMaker, Progress, copy_fields
from etl.imports.history import record_deletions, update_recording_history
from gis.errors import CityHexError, Conflict, Unprocessable
from layers.catalog.registry import Layer

STAGE = "cityhex_import_stage"
COPY_LINE = re.compile(r"COPY \S+, line (\d+)")


@dataclass(frozen=True)
class RowsToWrite:
    """Columns in COPY order, each with the maker of its COPY text for a run of rows (made a
    chunk at a time, while the database takes in the previous one), and how to name a row."""

    columns: list[str]
    makers: list[FieldMaker]
    count: int
    label: Callable[[int], str]

    def __len__(self) -> int:
        return self.count


@dataclass(frozen=True)
class UpsertKey:
    """How the key of a row is read: a column, or a property of the extra jsonb column."""

    column: str
    json_property: str | None = None

    def sql(self, alias: str) -> str:
        """The key expression on table alias ``alias``."""
        if self.json_property is None:
            return f"{alias}.{self.column}"
        quoted = self.json_property.replace("'", "''")
        return f"({alias}.{self.column} ->> '{quoted}')"


@dataclass
class WriteCounts:
    """Rows inserted, updated and deleted by one write, and where the updated rows were."""

    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    old_extent: tuple[float, float, float, float] | None = None


def copy_into(
    conn: psycopg.Connection, table: str, rows: RowsToWrite, progress: Progress | None
) -> int:
    """COPY ``rows`` into ``table``; the number of rows."""
    with _refusals(rows):
        return copy_fields(conn, table, rows.columns, rows.makers, len(rows), progress)


def write_rows(
    conn: psycopg.Connection,
    layer: Layer,
    rows: RowsToWrite,
    mode: str,
    actor: str,
    key: UpsertKey | None = None,
    update: dict[str, str] | None = None,
    progress: Progress | None = None,
) -> WriteCounts:
    """Write ``rows`` into ``layer``'s table by ``mode``; ``update`` maps the columns an upsert
    sets to their SQL expressions over the staging row ``s`` and the current row ``t``.
    Updated and deleted features get history rows by ``actor``."""
    counts, table = WriteCounts(), layer.table
    if mode == "replace":
        counts.deleted = _delete_all(conn, layer, actor)
    if mode != "upsert":
        counts.inserted = copy_into(conn, table, rows, progress)
        return counts
    assert key is not None and update is not None
    names = ", ".join(rows.columns)
    conn.execute(
        f"CREATE TEMP TABLE {STAGE} ON COMMIT DROP AS SELECT {names} FROM {table} WITH NO DATA"
    )
    copy_into(conn, STAGE, rows, progress)
    conn.execute(f"ANALYZE {STAGE}")
    counts.old_extent = matched_extent(conn, table, layer.geometry_column, key)
    match = f"{key.sql('t')} = {key.sql('s')}"
    assignments = ", ".join(f"{col} = {expr}" for col, expr in update.items())
    with _refusals(rows):
        counts.updated = update_recording_history(conn, layer, STAGE, assignments, match, actor)
        counts.inserted = conn.execute(
            f"INSERT INTO {table} ({names}) SELECT {names} FROM {STAGE} s "
            f"WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE {match})"
        ).rowcount
    conn.execute(f"DROP TABLE {STAGE}")
    return counts


def matched_extent(
    conn: psycopg.Connection, table: str, geometry: str, key: UpsertKey
) -> tuple[float, float, float, float] | None:
    """The lon/lat box of the rows an upsert is about to change (to invalidate their tiles)."""
    match = f"{key.sql('t')} = {key.sql('s')}"
    row = conn.execute(
        f"SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT "
        f"ST_Extent(t.{geometry}) AS e FROM {table} t JOIN {STAGE} s ON {match}) x"
    ).fetchone()
    return None if row is None or row[0] is None else tuple(row)  # type: ignore[return-value]


def _delete_all(conn: psycopg.Connection, layer: Layer, actor: str) -> int:
    table = layer.table
    try:
        with conn.transaction():
            record_deletions(conn, layer, actor)
            return conn.execute(f"DELETE FROM {table}").rowcount
    except pg.ForeignKeyViolation as exc:
        raise Conflict(
            f"--mode replace cannot delete the rows of {table}: other tables refer to them "
            f"({exc.diag.message_detail or exc.diag.message_primary}); use --mode upsert "
            "--key FIELD to update them in place",
            code="referenced_rows",
        ) from None


class _refusals:
    """Turns the database's refusal of a row into a CityHexError naming the source row."""

    def __init__(self, rows: RowsToWrite) -> None:
        self.rows = rows

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, psycopg.Error) and not isinstance(exc, psycopg.OperationalError):
            raise refusal(exc, self.rows) from exc


def refusal(exc: psycopg.Error, rows: RowsToWrite) -> CityHexError:
    """The CityHexError for a row the database refused."""
    diag = exc.diag
    found = COPY_LINE.search(diag.context or "")
    where = f"{rows.label(int(found.group(1)) - 1)}: " if found else ""
    detail = f" ({diag.message_detail})" if diag.message_detail else ""
    message = f"{where}{diag.message_primary or exc}{detail}; nothing was written"
    if isinstance(exc, pg.UniqueViolation):
        return Conflict(
            message + " (use --mode upsert --key FIELD to update existing rows)",
            code="duplicate_feature",
        )
    return Unprocessable(message, code="refused_by_database")
