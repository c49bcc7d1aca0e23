"""Bulk writing for the demo city: columns of values as COPY text, geometries as hex EWKB."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
import psycopg
import shapely
from psycopg import sql

NULL = "\\N"
NO_TIME = np.iinfo(np.int64).min
CHUNK_ROWS = 50_000
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def ewkb_hex(geoms: np.ndarray) -> list[str]:
    """Hex EWKB (SRID 4326) of every geometry in a shapely array."""
    with_srid = shapely.set_srid(geoms, 4326)
    return shapely.to_wkb(with_srid, hex=True, include_srid=True).tolist()


def ring_polygons_ewkb_hex(rings: np.ndarray) -> list[str]:
    """Hex EWKB (SRID 4326) of polygons given as ``(n, k, 2)`` lon/lat rings (left open).

    Written straight from the coordinates, for the many small polygons of the grid.
    """
    n, k, _ = rings.shape
    closed = np.concatenate([rings, rings[:, :1]], axis=1)
    header = bytes.fromhex("0103000020e610000001000000") + (k + 1).to_bytes(4, "little")
    record = np.empty((n, len(header) + 16 * (k + 1)), dtype=np.uint8)
    record[:, : len(header)] = np.frombuffer(header, dtype=np.uint8)
    record[:, len(header) :] = np.ascontiguousarray(closed, "<f8").view(np.uint8).reshape(n, -1)
    text = record.tobytes().hex()
    width = 2 * record.shape[1]
    return [text[i : i + width] for i in range(0, len(text), width)]


def timestamps(seconds: np.ndarray) -> list[str | None]:
    """``timestamptz`` text of Unix seconds (UTC); ``NO_TIME`` becomes None (NULL)."""
    seconds = np.asarray(seconds, dtype=np.int64)
    missing = seconds == NO_TIME
    text = np.datetime_as_string(np.where(missing, 0, seconds).astype("datetime64[s]"), unit="s")
    out: list[str | None] = [t + "+00" for t in text.tolist()]
    for i in np.flatnonzero(missing).tolist():
        out[i] = None
    return out


def json_texts(values: Sequence[Any]) -> list[str]:
    """JSON text of every value (``jsonb`` input)."""
    dumps = orjson.dumps
    return [dumps(v).decode() for v in values]


def text_column(values: Sequence[Any] | np.ndarray) -> list[str]:
    """COPY text fields of one column: numbers as written, None as NULL, text escaped."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "iuf":
        return list(map(str, values.tolist()))
    items = values.tolist() if isinstance(values, np.ndarray) else values
    out = ["" if v is None else str(v) for v in items]
    blob = "".join(out)
    if any(c in blob for c in "\\\t\n\r"):
        out = [s.translate(_ESCAPES) for s in out]
    for i in [i for i, v in enumerate(items) if v is None]:
        out[i] = NULL
    return out


def copy_rows(conn: psycopg.Connection, table: str, columns: dict[str, Any]) -> int:
    """COPY the named columns (equal-length sequences) into ``table``; the number of rows."""
    names = list(columns)
    fields = [text_column(columns[name]) for name in names]
    count = len(fields[0])
    if any(len(f) != count for f in fields):
        raise ValueError(f"columns of {table} differ in length")
    statement = f"COPY {table} ({', '.join(names)}) FROM STDIN"
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for start in range(0, count, CHUNK_ROWS):
            rows = zip(*(f[start : start + CHUNK_ROWS] for f in fields), strict=True)
            copy.write("".join("\t".join(row) + "\n" for row in rows))
    return count


FOREIGN_KEYS = (
    "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
    " WHERE contype = 'f' AND conrelid = ANY(%s::regclass[]) ORDER BY oid"
)
SECONDARY_INDEXES = (
    "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index i"
    " WHERE indrelid = ANY(%s::regclass[])"
    " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)"
    " ORDER BY indexrelid"
)


def drop_checks(conn: psycopg.Connection, tables: Sequence[str]) -> list[sql.Composable]:
    """Drop the foreign keys and secondary indexes of ``tables`` for a bulk load; the
    statements that make them again, with the same names and definitions.

    Run both inside one transaction: a failed load then rolls the drop back too, and a
    finished one pays one index build and one validating join instead of an index insert
    and a key check per row.
    """
    fkeys = conn.execute(FOREIGN_KEYS, (list(tables),)).fetchall()
    indexes = conn.execute(SECONDARY_INDEXES, (list(tables),)).fetchall()
    remake: list[sql.Composable] = [sql.SQL(definition) for _, definition in indexes]
    for table, name, definition in fkeys:
        conn.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
            sql.SQL(table), sql.Identifier(name)))  # fmt: skip
        remake.append(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
            sql.SQL(table), sql.Identifier(name), sql.SQL(definition)))  # fmt: skip
    for name, _ in indexes:
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.SQL(name)))
    return remake
