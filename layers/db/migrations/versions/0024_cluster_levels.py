"""Cluster cells of the incidents at zooms 18, 19 and 20: a count and coordinate sums per cell.

``incident_cluster_levels`` holds, for every zoom ``z`` in 18–20 and every zoom-z Web
Mercator tile that holds a case (``cell = tile_key(geom_3857) >> 2 × (24 − z)``), how many
cases it holds and the sums of their EPSG:3857 x and y (numeric, as in 0023). These are the
cluster cells of incident tiles of zooms 14–16 (four zooms deeper), so such a tile counts
its 256 cells, and decides the 68 cells around it, from at most 324 rows of this table
instead of the cases under it (tiles.clusters). Statement-level triggers keep it equal to a
GROUP BY over ``incidents`` after every INSERT (COPY included), DELETE and UPDATE that moves
a case (a cell emptied keeps its row with n = 0).

Revision ID: 0024_cluster_levels
Revises: 0023_aggregates
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0024_cluster_levels"
down_revision: str | Sequence[str] | None = "0023_aggregates"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def cells(rows: str, sign: str = "") -> str:
    """SQL of (z, cell, n, sx, sy) per cell of zooms 18–20 of the cases in ``rows`` (negated
    with ``sign`` '-'): a case's zoom-z cell is its zoom-24 tile key less 2 × (24 − z) bits
    (the key computed once per case)."""
    return f"""
        SELECT l.z, p.k >> (2 * (24 - l.z)), {sign}count(*), {sign}sum(p.x), {sign}sum(p.y)
        FROM (SELECT tile_key(r.geom_3857) AS k, ST_X(r.geom_3857)::numeric AS x,
                     ST_Y(r.geom_3857)::numeric AS y FROM {rows} AS r OFFSET 0) AS p
        CROSS JOIN (VALUES (18), (19), (20)) AS l(z)
        WHERE p.k IS NOT NULL GROUP BY 1, 2"""


def adding(rows: str, sign: str) -> str:
    """SQL adding (``sign`` '+') or removing ('-') the cases of transition table ``rows``."""
    return f"""
        INSERT INTO incident_cluster_levels AS c (z, cell, n, sx, sy) {cells(rows, sign)}
        ON CONFLICT (z, cell) DO UPDATE
        SET n = c.n + EXCLUDED.n, sx = c.sx + EXCLUDED.sx, sy = c.sy + EXCLUDED.sy;"""


MOVED = """(SELECT {side}.geom_3857 FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE o.geom_3857 IS DISTINCT FROM n.geom_3857)"""
"""The cases an UPDATE moved, where they were (side o) or are (side n)."""

FUNCTION = f"""
CREATE FUNCTION incident_cluster_levels_apply() RETURNS trigger LANGUAGE plpgsql AS $$
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
        "CREATE TABLE incident_cluster_levels (z smallint NOT NULL, cell bigint NOT NULL,"
        " n bigint NOT NULL, sx numeric NOT NULL, sy numeric NOT NULL, PRIMARY KEY (z, cell))"
    )
    op.execute(f"INSERT INTO incident_cluster_levels {cells('incidents')}")
    op.execute("ANALYZE incident_cluster_levels")
    op.execute(FUNCTION)
    for event, tables in (
        ("INSERT", "NEW TABLE AS new_rows"),
        ("DELETE", "OLD TABLE AS old_rows"),
        ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
    ):
        op.execute(
            f"CREATE TRIGGER incident_cluster_levels_{event.lower()} AFTER {event} ON incidents"
            f" REFERENCING {tables} FOR EACH STATEMENT"
            " EXECUTE FUNCTION incident_cluster_levels_apply()"
        )


def downgrade() -> None:
    """Drop the triggers, the function and the table."""
    for event in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER incident_cluster_levels_{event} ON incidents")
    op.execute("DROP FUNCTION incident_cluster_levels_apply()")
    op.execute("DROP TABLE incident_cluster_levels")
