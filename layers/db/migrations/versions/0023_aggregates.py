"""Cluster cells of the incidents: a count and coordinate sums per zoom-17 tile-key cell.

``incident_cluster_cells`` holds, for every zoom-17 Web Mercator tile that holds a case
(``tile_key(geom_3857) >> 14``), how many cases it holds and the sums of their EPSG:3857 x
and y (numeric, so adding and removing a case leaves no rounding behind). Every coarser
cluster cell is a range of these (tile keys nest), so incident tiles of zooms ≤ 13 count
their clusters and place them at their mean from this table instead of reading every case
(tiles.clusters). Statement-level triggers keep it equal to a GROUP BY over ``incidents``
after every INSERT (COPY included), DELETE and UPDATE that moves a case (a cell
emptied keeps its row with n = 0).

Revision ID: 0023_aggregates
Revises: 0022_rate_buckets
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0023_aggregates"
down_revision: str | Sequence[str] | None = "0022_rate_buckets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CELL = "tile_key({t}.geom_3857) >> 14"
"""The zoom-17 cell of a case: its zoom-24 tile key less 2 × (24 − 17) bits."""


def adding(rows: str, sign: str) -> str:
    """SQL adding (``sign`` '+') or removing ('-') the cases of transition table ``rows``."""
    cell = CELL.format(t="r")
    return f"""
        INSERT INTO incident_cluster_cells AS c (cell, n, sx, sy)
        SELECT {cell}, {sign}count(*), {sign}sum(ST_X(r.geom_3857)::numeric),
               {sign}sum(ST_Y(r.geom_3857)::numeric)
        FROM {rows} AS r WHERE {cell} IS NOT NULL GROUP BY 1
        ON CONFLICT (cell) DO UPDATE
        SET n = c.n + EXCLUDED.n, sx = c.sx + EXCLUDED.sx, sy = c.sy + EXCLUDED.sy;"""


MOVED = """(SELECT {side}.geom_3857 FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE o.geom_3857 IS DISTINCT FROM n.geom_3857)"""
"""The cases an UPDATE moved, where they were (side o) or are (side n)."""

FUNCTION = f"""
CREATE FUNCTION incident_cluster_cells_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN  -- only the cases that moved: a status change moves nothing
        {adding(MOVED.format(side="o"), "-")}
        {adding(MOVED.format(side="n"), "")}
    ELSIF TG_OP = 'DELETE' THEN
        {adding("old_rows", "-")}
    ELSE
        {adding("new_rows", "")}
    END IF;
    RETURN NULL;
END $$;
"""


def upgrade() -> None:
    """The table, filled from the cases, and its triggers."""
    op.execute(
        "CREATE TABLE incident_cluster_cells (cell bigint PRIMARY KEY, n bigint NOT NULL,"
        " sx numeric NOT NULL, sy numeric NOT NULL)"
    )
    cell = CELL.format(t="i")
    op.execute(
        f"INSERT INTO incident_cluster_cells SELECT {cell}, count(*),"
        " sum(ST_X(i.geom_3857)::numeric), sum(ST_Y(i.geom_3857)::numeric)"
        f" FROM incidents i WHERE {cell} IS NOT NULL GROUP BY 1"
    )
    op.execute(FUNCTION)
    for event, tables in (
        ("INSERT", "NEW TABLE AS new_rows"),
        ("DELETE", "OLD TABLE AS old_rows"),
        ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
    ):
        op.execute(
            f"CREATE TRIGGER incident_cluster_cells_{event.lower()} AFTER {event} ON incidents"
            f" REFERENCING {tables} FOR EACH STATEMENT"
            " EXECUTE FUNCTION incident_cluster_cells_apply()"
        )


def downgrade() -> None:
    """Drop the triggers, the function and the table."""
    for event in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER incident_cluster_cells_{event} ON incidents")
    op.execute("DROP FUNCTION incident_cluster_cells_apply()")
    op.execute("DROP TABLE incident_cluster_cells")
