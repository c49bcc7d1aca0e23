"""Counts per H3 cell by status, and an index of the cases a deadline can still make overdue.

``incident_cell_counts`` (0026) gains the column ``status``: it now holds, for every
resolution 5–11, cell and status, how many cases in that status the cell holds. An H3
aggregate tile (``incidents_hex``) unfiltered or filtered by status alone then reads its
counts, and its count per status, from these rows instead of the cases under it (2.2 M
cases under a zoom-10 tile of the 10× city); unfiltered counts sum the statuses. The
triggers now also move a case between rows when its status changes, so every workflow
step updates the seven rows of its cells.

``ix_incidents_open_geom`` indexes the cases that are not closed or cancelled (the only ones
a deadline can make overdue): an aggregate tile counts its overdue cases from them.

Revision ID: 0028_status_counts
Revises: 0027_metrics_days
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0028_status_counts"
down_revision: str | Sequence[str] | None = "0027_metrics_days"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEVELS = {5: "h3_5", 6: "h3_6", 7: "h3_7", 8: "h3_8", 9: "h3_9", 10: "h3", 11: "h3_11"}
"""The stored cell column of the cases at each resolution."""
CELLS = ", ".join(f"({res}, r.{column})" for res, column in LEVELS.items())
KEPT = [*LEVELS.values(), "status"]
"""The columns whose change moves a case between count rows."""


def adding(*parts: tuple[str, str], by_status: bool = True) -> str:
    """One SQL statement adding (sign '+') or removing ('-') the cases of each (rows, sign)
    part (alias r), per cell and (``by_status``) status; it locks the count rows in key
    order, so concurrent writers queue instead of deadlocking."""
    status, key = (", r.status", "res, cell, status") if by_status else ("", "res, cell")
    rows = " UNION ALL ".join(
        f"SELECT l.res, l.cell{status}, {sign}1 AS d FROM {source} AS r"
        f" CROSS JOIN LATERAL (VALUES {CELLS}) AS l(res, cell) WHERE l.cell IS NOT NULL"
        for source, sign in parts
    )
    return f"""
        INSERT INTO incident_cell_counts AS c ({key}, n)
        SELECT {key}, sum(d) FROM ({rows}) AS x GROUP BY {key} ORDER BY {key}
        ON CONFLICT ({key}) DO UPDATE SET n = c.n + EXCLUDED.n;"""


def moved(columns: list[str], side: str) -> str:
    """The cases an UPDATE changed in ``columns``, as they were (side o) or are (side n)."""
    return f"""(SELECT {side}.* FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE ({", ".join("o." + c for c in columns)}) IS DISTINCT FROM
              ({", ".join("n." + c for c in columns)}))"""


def function(columns: list[str], by_status: bool) -> str:
    """The trigger function keeping the counts (by status or not)."""
    return f"""
CREATE OR REPLACE FUNCTION incident_cell_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN  -- only the cases moved to other rows
        {adding((moved(columns, "o"), "-"), (moved(columns, "n"), ""), by_status=by_status)}
    ELSIF TG_OP = 'DELETE' THEN
        {adding(("old_rows", "-"), by_status=by_status)}
    ELSE
        {adding(("new_rows", ""), by_status=by_status)}
    END IF;
    RETURN NULL;
END $$;
"""


def refill(by_status: bool) -> None:
    """Count every case again (one grouped read per resolution)."""
    status = ", status" if by_status else ""
    op.execute("TRUNCATE incident_cell_counts")
    for res, column in LEVELS.items():
        op.execute(
            f"INSERT INTO incident_cell_counts (res, cell{status}, n) SELECT {res}, {column}"
            f"{status}, count(*) FROM incidents WHERE {column} IS NOT NULL GROUP BY 2{status}"
        )
    op.execute("ANALYZE incident_cell_counts")


def upgrade() -> None:
    """Counts by status, their trigger function, and the index of open cases."""
    op.execute("LOCK TABLE incidents IN SHARE MODE")
    op.execute("ALTER TABLE incident_cell_counts DROP CONSTRAINT incident_cell_counts_pkey")
    op.execute("ALTER TABLE incident_cell_counts ADD COLUMN status varchar(16) NOT NULL DEFAULT ''")
    op.execute("ALTER TABLE incident_cell_counts ALTER COLUMN status DROP DEFAULT")
    refill(by_status=True)
    op.execute("ALTER TABLE incident_cell_counts ADD PRIMARY KEY (res, cell, status)")
    op.execute(function(KEPT, by_status=True))
    op.execute(
        "CREATE INDEX ix_incidents_open_geom ON incidents USING gist (geom_3857)"
        " WHERE status::text <> ALL ('{cancelled,closed}'::text[])"  # as pg_get_indexdef prints it
    )


def downgrade() -> None:
    """Counts per cell alone again, with 0026's trigger function; no open-case index."""
    op.execute("LOCK TABLE incidents IN SHARE MODE")
    op.execute("DROP INDEX ix_incidents_open_geom")
    op.execute(function(list(LEVELS.values()), by_status=False))
    op.execute("ALTER TABLE incident_cell_counts DROP CONSTRAINT incident_cell_counts_pkey")
    op.execute("TRUNCATE incident_cell_counts")
    op.execute("ALTER TABLE incident_cell_counts DROP COLUMN status")
    refill(by_status=False)
    op.execute("ALTER TABLE incident_cell_counts ADD PRIMARY KEY (res, cell)")
