"""Cluster cells of the incidents by status.

``incident_cluster_cells`` (0023, zoom 17) and ``incident_cluster_levels`` (0024, zooms
18–20) gain the column ``status``: they now hold the count and coordinate sums of the cases
per cell and status. Incident tiles filtered by status alone (the web app's open and closed
sources) then count their cells from these rows, summing the statuses the filter keeps, as
unfiltered tiles sum them all (tiles.clusters), instead of counting millions of index
entries. The triggers now also move a case between rows when its status changes, and lock
the rows in key order, so concurrent workflow steps queue instead of deadlocking.

Revision ID: 0030_status_cluster_cells
Revises: 0029_status_tile_key
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0030_status_cluster_cells"
down_revision: str | Sequence[str] | None = "0029_status_tile_key"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = {
    "incident_cluster_cells": ("cell", "(VALUES (17)) AS l(z)"),
    "incident_cluster_levels": ("z, cell", "(VALUES (18), (19), (20)) AS l(z)"),
}
"""Each table: its key before the status, and the zooms of its cells."""


def cells(table: str, parts: list[tuple[str, str]], by_status: bool) -> str:
    """SQL of the table's key, n, sx, sy per cell (and, ``by_status``, status) of the cases
    of each (rows, sign) part, signed ('-' removes), summed in key order."""
    key, zooms = TABLES[table]
    z = "l.z, " if "z" in key else ""
    status = ", p.status" if by_status else ""
    groups = ", ".join(str(i + 1) for i in range(key.count(",") + 1 + by_status))
    points = " UNION ALL ".join(
        f"SELECT tile_key(r.geom_3857) AS k, {sign}1 AS d, {sign}ST_X(r.geom_3857)::numeric AS x,"
        f" {sign}ST_Y(r.geom_3857)::numeric AS y, r.status FROM {rows} AS r"
        for rows, sign in parts
    )
    return f"""
        SELECT {z}p.k >> (2 * (24 - l.z)){status}, sum(p.d), sum(p.x), sum(p.y)
        FROM ({points} OFFSET 0) AS p CROSS JOIN {zooms}
        WHERE p.k IS NOT NULL GROUP BY {groups} ORDER BY {groups}"""


def adding(table: str, parts: list[tuple[str, str]], by_status: bool) -> str:
    """One SQL statement adding (sign '') or removing ('-') the cases of each (rows, sign)
    part to ``table``; it locks the rows in key order, so concurrent writers queue instead
    of deadlocking."""
    key = TABLES[table][0] + (", status" if by_status else "")
    return f"""
        INSERT INTO {table} AS c ({key}, n, sx, sy) {cells(table, parts, by_status)}
        ON CONFLICT ({key}) DO UPDATE
        SET n = c.n + EXCLUDED.n, sx = c.sx + EXCLUDED.sx, sy = c.sy + EXCLUDED.sy;"""


def changed(columns: list[str], side: str) -> str:
    """The cases an UPDATE changed in ``columns``, as they were (side o) or are (side n)."""
    return f"""(SELECT {side}.* FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE ({", ".join("o." + c for c in columns)}) IS DISTINCT FROM
              ({", ".join("n." + c for c in columns)}))"""


def function(table: str, by_status: bool) -> str:
    """The trigger function keeping ``table`` (by status or not)."""
    columns = ["geom_3857", "status"] if by_status else ["geom_3857"]
    return f"""
CREATE OR REPLACE FUNCTION {table}_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN  -- only the cases moved to other rows
        {adding(table, [(changed(columns, "o"), "-"), (changed(columns, "n"), "")], by_status)}
    ELSIF TG_OP = 'DELETE' THEN
        {adding(table, [("old_rows", "-")], by_status)}
    ELSE
        {adding(table, [("new_rows", "")], by_status)}
    END IF;
    RETURN NULL;
END $$;
"""


def rebuild(by_status: bool) -> None:
    """Both tables keyed (``by_status``) by status or not, refilled from the cases, with
    their trigger functions."""
    op.execute("LOCK TABLE incidents IN SHARE MODE")
    for table, (key, _) in TABLES.items():
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey")
        op.execute(f"TRUNCATE {table}")
        if by_status:
            op.execute(f"ALTER TABLE {table} ADD COLUMN status varchar(16) NOT NULL")
        else:
            op.execute(f"ALTER TABLE {table} DROP COLUMN status")
        names = key + (", status" if by_status else "")
        op.execute(
            f"INSERT INTO {table} ({names}, n, sx, sy)"
            f" {cells(table, [('incidents', '')], by_status)}"
        )
        op.execute(f"ALTER TABLE {table} ADD PRIMARY KEY ({names})")
        op.execute(f"ANALYZE {table}")
        op.execute(function(table, by_status))


def upgrade() -> None:
    """The tables by status."""
    rebuild(by_status=True)


def downgrade() -> None:
    """The tables by cell alone again (0023 and 0024)."""
    rebuild(by_status=False)
