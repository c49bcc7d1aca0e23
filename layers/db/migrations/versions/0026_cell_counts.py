"""Counts of the cases per H3 cell at every analysis resolution, kept on write.

``incident_cell_counts`` holds, for every resolution 5–11 and every cell holding a case at it
(the stored cell columns ``h3_5`` … ``h3_9``, ``h3`` at 10, ``h3_11``), how many cases it
holds. An unfiltered count per cell (Gi* and ``/analytics/h3`` over every case) then reads
these rows instead of counting millions of index entries (127,564 cells at res 10 for
6.5 M cases). Statement-level triggers keep it equal to a GROUP BY over ``incidents`` after
every INSERT (COPY included), DELETE and UPDATE that changes a case's cells (a cell emptied
keeps its row with n = 0).

Revision ID: 0026_cell_counts
Revises: 0025_metrics_fast
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0026_cell_counts"
down_revision: str | Sequence[str] | None = "0025_metrics_fast"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEVELS = {5: "h3_5", 6: "h3_6", 7: "h3_7", 8: "h3_8", 9: "h3_9", 10: "h3", 11: "h3_11"}
"""The stored cell column of the cases at each resolution."""
CELLS = ", ".join(f"({res}, r.{column})" for res, column in LEVELS.items())


def adding(*parts: tuple[str, str]) -> str:
    """One SQL statement adding (sign '+') or removing ('-') the cases of each (rows, sign)
    part (alias r); it locks the count rows in key order, so concurrent writers queue
    instead of deadlocking."""
    rows = " UNION ALL ".join(
        f"SELECT l.res, l.cell, {sign}1 AS d FROM {source} AS r"
        f" CROSS JOIN LATERAL (VALUES {CELLS}) AS l(res, cell) WHERE l.cell IS NOT NULL"
        for source, sign in parts
    )
    return f"""
        INSERT INTO incident_cell_counts AS c (res, cell, n)
        SELECT res, cell, sum(d) FROM ({rows}) AS x GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (res, cell) DO UPDATE SET n = c.n + EXCLUDED.n;"""


MOVED = f"""(SELECT {{side}}.* FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE ({", ".join("o." + c for c in LEVELS.values())}) IS DISTINCT FROM
              ({", ".join("n." + c for c in LEVELS.values())}))"""
"""The cases an UPDATE gave other cells, as they were (side o) or are (side n)."""

FUNCTION = f"""
CREATE FUNCTION incident_cell_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN  -- only the cases whose cells changed
        {adding((MOVED.format(side="o"), "-"), (MOVED.format(side="n"), ""))}
    ELSIF TG_OP = 'DELETE' THEN
        {adding(("old_rows", "-"))}
    ELSE
        {adding(("new_rows", ""))}
    END IF;
    RETURN NULL;
END $$;
"""


def upgrade() -> None:
    """The table, filled from the cases (one index-only count per level), and its triggers."""
    op.execute(
        "CREATE TABLE incident_cell_counts (res smallint NOT NULL, cell bigint NOT NULL,"
        " n bigint NOT NULL, PRIMARY KEY (res, cell))"
    )
    for res, column in LEVELS.items():
        op.execute(
            f"INSERT INTO incident_cell_counts SELECT {res}, {column}, count(*)"
            f" FROM incidents WHERE {column} IS NOT NULL GROUP BY 2"
        )
    op.execute(FUNCTION)
    for event, tables in (
        ("INSERT", "NEW TABLE AS new_rows"),
        ("DELETE", "OLD TABLE AS old_rows"),
        ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
    ):
        op.execute(
            f"CREATE TRIGGER incident_cell_counts_{event.lower()} AFTER {event} ON incidents"
            f" REFERENCING {tables} FOR EACH STATEMENT"
            " EXECUTE FUNCTION incident_cell_counts_apply()"
        )


def downgrade() -> None:
    """Drop the triggers, the function and the table."""
    for event in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER incident_cell_counts_{event} ON incidents")
    op.execute("DROP FUNCTION incident_cell_counts_apply()")
    op.execute("DROP TABLE incident_cell_counts")
