"""Build or rebuild the unit grid: cover a boundary with H3 cells and store them.

Each stored cell carries its polygon, its area and the district holding most of it. A
rebuild keeps the inspector and supervisor area of every cell that stays, records the
release of every dropped cell's inspector in the assignment history, and reports the cells
added and dropped. A new cell's supervisor area is its district.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import h3
import numpy as np
import psycopg
import shapely
from shapely.geometry.base import BaseGeometry

from gis.errors import BadRequest, Unprocessable
from gis.hexgrid import DEFAULT_RES, cell_polygons, cover_cells, largest_overlap
from layers.catalog.changes import publish_change_sync
from layers.db.engine import connect_sync

MAX_CELLS = 3_000_000
GRID_LOCK = 0x43_48_58_47  # "CHXG": one structural grid change (build, partition) at a time
METRES_PER_DEGREE = 111_320.0

STAGE = """
CREATE TEMP TABLE grid_build_stage (
    h3 bigint PRIMARY KEY, res smallint, district_id integer, area_m2 float8,
    geom geometry(Polygon, 4326)
) ON COMMIT DROP
"""

RELEASE_DROPPED = """
INSERT INTO grid_assignments
    (h3, from_inspector_id, to_inspector_id, from_supervisor, to_supervisor, actor, note)
SELECT g.h3, g.inspector_id, NULL, g.supervisor, NULL, %(actor)s, 'cell dropped by grid rebuild'
FROM grid_cells g
WHERE NOT EXISTS (SELECT 1 FROM grid_build_stage s WHERE s.h3 = g.h3)
  AND (g.inspector_id IS NOT NULL OR g.supervisor IS NOT NULL)
"""

DELETE_DROPPED = """
DELETE FROM grid_cells g
WHERE NOT EXISTS (SELECT 1 FROM grid_build_stage s WHERE s.h3 = g.h3)
RETURNING g.h3
"""

UPDATE_KEPT = """
UPDATE grid_cells g SET res = s.res, district_id = s.district_id, area_m2 = s.area_m2,
    geom = s.geom
FROM grid_build_stage s
WHERE g.h3 = s.h3 AND (g.district_id IS DISTINCT FROM s.district_id OR g.res <> s.res)
"""

INSERT_ADDED = """
INSERT INTO grid_cells (h3, res, district_id, area_m2, supervisor, geom)
SELECT s.h3, s.res, s.district_id, s.area_m2, d.code, s.geom
FROM grid_build_stage s LEFT JOIN districts d ON d.id = s.district_id
WHERE NOT EXISTS (SELECT 1 FROM grid_cells g WHERE g.h3 = s.h3)
RETURNING h3
"""

KEPT_ASSIGNED = """
SELECT count(*) FROM grid_cells g JOIN grid_build_stage s USING (h3)
WHERE g.inspector_id IS NOT NULL
"""

EXTENT = (
    "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
    "FROM (SELECT ST_Extent(geom) AS e {}) AS x"
)


@dataclass
class BuildReport:
    """What a build did: the grid's size and resolution, the cells added and dropped."""

    res: int
    cells: int
    added: list[int] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)
    kept_assignments: int = 0
    seconds: float = 0.0

    def as_json(self, limit: int = 1000) -> dict[str, object]:
        """The report for a client: counts, and at most ``limit`` added and dropped cells."""
        return {
            "res": self.res,
            "cells": self.cells,
            "added_count": len(self.added),
            "dropped_count": len(self.dropped),
            "kept_assignments": self.kept_assignments,
            "added": [h3.int_to_str(c) for c in self.added[:limit]],
            "dropped": [h3.int_to_str(c) for c in self.dropped[:limit]],
            "truncated": len(self.added) > limit or len(self.dropped) > limit,
            "seconds": round(self.seconds, 3),
        }


def checked_res(res: int) -> int:
    """``res`` when it is an H3 resolution (0–15); BadRequest otherwise."""
    if not 0 <= res <= 15:
        raise BadRequest(f"resolution {res} is not an H3 resolution (0–15)", code="invalid_res")
    return res


def estimated_cells(area: BaseGeometry, res: int) -> int:
    """About how many cells at ``res`` cover the lon/lat ``area``."""
    lat = (area.bounds[1] + area.bounds[3]) / 2
    m2 = area.area * METRES_PER_DEGREE**2 * math.cos(math.radians(lat))
    return int(m2 / h3.average_hexagon_area(res, unit="m^2"))


def grid_cover(area: BaseGeometry, res: int) -> tuple[np.ndarray, np.ndarray]:
    """The sorted cells at ``res`` that overlap ``area``, and their polygons."""
    expected = estimated_cells(area, checked_res(res))
    if expected > MAX_CELLS:
        raise Unprocessable(
            f"the boundary needs about {expected:,} cells at resolution {res}; "
            f"the grid holds at most {MAX_CELLS:,}: choose a coarser resolution",
            code="grid_too_large",
        )
    cells = np.array(sorted(cover_cells(area, res)), dtype=np.int64)
    polys = cell_polygons(cells.tolist())
    touching = shapely.intersects(polys, area)
    return cells[touching], polys[touching]


def cell_districts(conn: psycopg.Connection, polys: np.ndarray) -> list[int | None]:
    """The id of the district holding most of each polygon (None where no district is)."""
    rows = conn.execute("SELECT id, ST_AsBinary(geom) FROM districts ORDER BY id").fetchall()
    if not rows:
        return [None] * len(polys)
    ids = [r[0] for r in rows]
    shapes = shapely.from_wkb([bytes(r[1]) for r in rows])
    return [ids[i] if i >= 0 else None for i in largest_overlap(polys, shapes).tolist()]


def district_area(conn: psycopg.Connection) -> BaseGeometry:
    """The union of every district boundary; Unprocessable when there is no district."""
    row = conn.execute("SELECT ST_AsBinary(ST_Union(geom)) FROM districts").fetchone()
    if row is None or row[0] is None:
        raise Unprocessable("the districts table is empty: nothing to grid", code="no_districts")
    return shapely.from_wkb(bytes(row[0]))


def build_grid(
    conn: psycopg.Connection, area: BaseGeometry, res: int = DEFAULT_RES, actor: str = "cli"
) -> BuildReport:
    """Make the stored grid exactly the cells at ``res`` overlapping the lon/lat ``area``,
    keeping the assignments of the cells that stay; commits on success."""
    started = time.perf_counter()
    cells, polys = grid_cover(area, res)
    areas = [h3.cell_area(h3.int_to_str(c), unit="m^2") for c in cells.tolist()]
    ewkb = shapely.to_wkb(shapely.set_srid(polys, 4326), hex=True, include_srid=True)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (GRID_LOCK,))
        districts = cell_districts(conn, polys)
        before = conn.execute(EXTENT.format("FROM grid_cells")).fetchone()
        conn.execute(STAGE)
        with conn.cursor().copy(
            "COPY grid_build_stage (h3, res, district_id, area_m2, geom) FROM STDIN"
        ) as copy:
            for row in zip(cells.tolist(), districts, areas, ewkb.tolist(), strict=True):
                copy.write_row((row[0], res, row[1], row[2], row[3]))
        conn.execute("ANALYZE grid_build_stage")
        kept = conn.execute(KEPT_ASSIGNED).fetchone()[0]
        conn.execute(RELEASE_DROPPED, {"actor": actor})
        dropped = [r[0] for r in conn.execute(DELETE_DROPPED).fetchall()]
        conn.execute(UPDATE_KEPT)
        added = [r[0] for r in conn.execute(INSERT_ADDED).fetchall()]
        after = conn.execute(EXTENT.format("FROM grid_build_stage")).fetchone()
        boxes = [tuple(b) for b in (before, after) if b[0] is not None]
        publish_change_sync(conn, "grid", boxes)
    return BuildReport(
        res=res,
        cells=len(cells),
        added=sorted(added),
        dropped=sorted(dropped),
        kept_assignments=kept,
        seconds=time.perf_counter() - started,
    )


def build_from(url: str, area: BaseGeometry | None, res: int, actor: str) -> BuildReport:
    """Build the grid in the database at ``url`` over ``area``, or over the districts when
    ``area`` is None."""
    with connect_sync(url, autocommit=True) as conn:
        return build_grid(conn, area if area is not None else district_area(conn), res, actor)
