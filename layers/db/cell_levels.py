"""Filling the level cell columns (``h3_5`` … ``h3_11``) of rows already in a table.

Every writer computes a row's cells itself; this is for rows that were written without
them: the rows there before the columns were added (migration 0015), or rows loaded by
plain SQL. Each row's point (a line's or polygon's point on surface, by PostGIS) is read,
its cells are computed with the h3 package, and the rows are updated in batches.
"""

from __future__ import annotations

import numpy as np
import psycopg

from gis.hexgrid import level_cells, level_columns

BATCH = 50_000


def fill_cell_levels(conn: psycopg.Connection, table: str, geometry: str = "geom") -> int:
    """Compute and store the level cells of every row of ``table`` (a trusted identifier with
    an ``id`` column); the number of rows updated. Runs in ``conn``'s transaction."""
    columns = list(level_columns().values())
    sets = ", ".join(f"{c} = v.{c}" for c in columns)
    arrays = ", ".join("%s::bigint[]" for _ in columns)
    done, last = 0, None
    while True:
        after = "" if last is None else "AND id > %(last)s"
        rows = conn.execute(
            f"SELECT id, ST_X(p), ST_Y(p) FROM (SELECT id, ST_PointOnSurface({geometry}) AS p"
            f" FROM {table} WHERE {geometry} IS NOT NULL {after} ORDER BY id LIMIT %(n)s) AS t",
            {"last": last, "n": BATCH},
        ).fetchall()
        if not rows:
            return done
        ids, lon, lat = (np.array(c) for c in zip(*rows, strict=True))
        cells = level_cells(lon.astype(np.float64), lat.astype(np.float64))
        conn.execute(
            f"UPDATE {table} AS t SET {sets} FROM unnest(%s::bigint[], {arrays})"
            f" AS v(id, {', '.join(columns)}) WHERE t.id = v.id",
            [ids.tolist(), *(cells[c].tolist() for c in columns)],
        )
        done += len(rows)
        last = int(ids[-1])
