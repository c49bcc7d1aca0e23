"""Bulk loading without per-row checks: the foreign keys and secondary indexes of the demo's
tables are dropped before its COPY and made again, as they were, after it."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from psycopg import sql

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
