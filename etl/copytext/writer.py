"""Writing COPY text into a table: columns whose fields are made a chunk of rows at a time,
sent while the database takes in the previous chunk."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import psycopg
from psycopg.copy import QueuedLibpqWriter

from etl.copytext.fields import text_column

CHUNK_ROWS = 50_000
FieldMaker = Callable[[int, int], list[str]]
"""The COPY fields of rows ``start`` to ``stop`` of one column."""
Progress = Callable[[int], None]
"""Told how many rows each written chunk held."""


def copy_chunks(
    makers: Sequence[FieldMaker], count: int, progress: Progress | None = None
) -> Iterator[str]:
    """The COPY text of ``count`` rows whose columns ``makers`` make, CHUNK_ROWS at a time."""
    for start in range(0, count, CHUNK_ROWS):
        stop = min(start + CHUNK_ROWS, count)
        parts = [make(start, stop) for make in makers]
        yield "\n".join(map("\t".join, zip(*parts, strict=True))) + "\n"
        if progress:
            progress(stop - start)


def copy_fields(
    conn: psycopg.Connection,
    table: str,
    columns: Sequence[str],
    makers: Sequence[FieldMaker],
    count: int,
    progress: Progress | None = None,
) -> int:
    """COPY ``count`` rows into ``columns`` of ``table``, each column's fields made by its
    maker; the number of rows."""
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    with conn.cursor() as cur, cur.copy(statement, writer=QueuedLibpqWriter(cur)) as copy:
        for chunk in copy_chunks(makers, count, progress):
            copy.write(chunk)
    return count


def copy_columns(
    conn: psycopg.Connection, table: str, columns: Mapping[str, Sequence[Any] | np.ndarray]
) -> int:
    """COPY whole columns of values (equal-length sequences, each encoded by text_column)
    into ``table``; the number of rows."""
    fields = [text_column(values) for values in columns.values()]
    count = len(fields[0])
    if any(len(f) != count for f in fields):
        raise ValueError(f"columns of {table} differ in length")
    makers = [lambda start, stop, f=f: f[start:stop] for f in fields]
    return copy_fields(conn, table, list(columns), makers, count)
