"""H3 aggregate layers (``<layer>_hex``): the cells over a tile with the count of rows in each.

The cells are those of the zoom's resolution that overlap the tile widened by its buffer;
their polygons come from the h3 package and go to PostGIS as parameters. A row belongs to
the cell that contains its point at that resolution (a line's or polygon's point on
surface): its stored cell column of that resolution, or, for a layer that stores none, the
cell polygon its point falls in. So a hexagon's number is the count of the points inside
it, and every tile shows the same count for a cell, whole, however tile edges cut it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import h3
import numpy as np
import shapely

from gis.tilemath import (
    BUFFER,
    EXTENT,
    BBox,
    buffer_margin,
    hex_resolution,
    mercator_to_lonlat,
    tile_bounds,
)
from layers.catalog.registry import Layer
from tiles.derived import derived_attributes
from tiles.filters import TileFilters, by_count_column_only
from tiles.mvt import (
    ENVELOPE,
    Statement,
    geometry_3857,
    mvt_call,
    passing_values,
    quoted,
    row_filters,
    where,
)
from tiles.sources import Source

EARTH_RADIUS = 6378137.0
MAX_SPAN_DEGREES = 90.0


@dataclass(frozen=True)
class HexCover:
    """The cells over a tile, their EPSG:3857 polygons as WKB, and a box holding every
    point whose cell is one of them."""

    res: int
    cells: list[int]
    wkb: list[bytes]
    bbox: BBox


def lonlat_boxes(z: int, x: int, y: int) -> list[BBox]:
    """The tile widened by its buffer, in lon/lat, cut into boxes narrow enough for H3
    (polygons wider than 180 degrees are read as crossing the antimeridian)."""
    minx, miny, maxx, maxy = tile_bounds(z, x, y, buffer_margin())
    west, south = mercator_to_lonlat(minx, miny)
    east, north = mercator_to_lonlat(maxx, maxy)
    west, east = max(west, -180.0), min(east, 180.0)
    parts = max(1, int(np.ceil((east - west) / MAX_SPAN_DEGREES)))
    step = (east - west) / parts
    return [(west + i * step, south, west + (i + 1) * step, north) for i in range(parts)]


def cells_over(boxes: list[BBox], res: int) -> set[int]:
    """Every cell at ``res`` overlapping one of the lon/lat boxes."""
    cells: set[int] = set()
    for w, s, e, n in boxes:
        poly = h3.LatLngPoly([(s, w), (s, e), (n, e), (n, w)])
        found = h3.h3shape_to_cells_experimental(poly, res, contain="overlap")
        cells.update(h3.str_to_int(c) for c in found)
    return cells


def mercator(lonlat: np.ndarray) -> np.ndarray:
    """Lon/lat coordinates (n, 2) in EPSG:3857 metres."""
    lon = np.radians(lonlat[:, 0])
    lat = np.radians(np.clip(lonlat[:, 1], -85.0511287798066, 85.0511287798066))
    return np.column_stack([lon, np.log(np.tan(np.pi / 4 + lat / 2))]) * EARTH_RADIUS


def cell_ring(cell: int) -> np.ndarray:
    """The cell's boundary as lon/lat pairs."""
    return np.array([(lng, lat) for lat, lng in h3.cell_to_boundary(h3.int_to_str(cell))])


@lru_cache(maxsize=4096)
def tile_cover(z: int, x: int, y: int) -> HexCover:
    """The aggregate cells of tile ``z/x/y`` (a source's zoom range keeps them no finer than
    its stored cells)."""
    res = hex_resolution(z)
    cells = sorted(cells_over(lonlat_boxes(z, x, y), res))
    rings = [cell_ring(c) for c in cells]
    polygons = [shapely.Polygon(mercator(r)) for r in rings]
    every = np.vstack(rings) if rings else np.zeros((0, 2))
    bbox = box_with_slack(every, res)
    return HexCover(res, cells, [shapely.to_wkb(p) for p in polygons], bbox)


SLACK = 0.01
"""The share of a cell edge the box of a cover is widened by: H3 edges are arcs, not the
straight Mercator lines between the vertices (they differ by well under 1 % of an edge)."""


def box_with_slack(lonlat: np.ndarray, res: int) -> BBox:
    """The EPSG:3857 box of the cell vertices, widened by a hundredth of a cell edge, so it
    holds every point whose cell is one of the cells."""
    if not len(lonlat):
        return (0.0, 0.0, 0.0, 0.0)
    pts = mercator(lonlat)
    lat = np.radians(np.abs(lonlat[:, 1]).max())
    slack = SLACK * h3.average_hexagon_edge_length(res, unit="m") / max(np.cos(lat), 0.05)
    lo, hi = pts.min(axis=0) - slack, pts.max(axis=0) + slack
    return (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))


def hex_part(source: Source, z: int, x: int, y: int, filters: TileFilters, st: Statement) -> str:
    """A subquery: the cells over the tile that hold rows, with ``count``, the count of each
    derived flag (``overdue``) and, with ``count_by``, one count per value."""
    layer = source.layer
    cover = tile_cover(z, x, y)
    if (
        layer.cell_counts
        and cover.res in layer.cell_columns
        and by_count_column_only(layer, filters)
    ):
        return stored_hex_part(source, cover, filters, st)
    cells, wkb = st.param(cover.cells), st.param(cover.wkb)
    box = ", ".join(st.param(v) for v in cover.bbox)
    h3col = f"f.{quoted(layer.h3_column or '')}"
    derived = derived_attributes(layer)
    cols = [f"{cell_sql(layer, cover.res, cells, wkb)} AS cell"]
    cols += [f"{d.sql} AS {quoted('d_' + d.name)}" for d in derived]
    cols += [f'{d.changes_at} AS "n_{d.name}"' for d in derived]
    group = f"f.{quoted(layer.count_by)}::text" if layer.count_by else "NULL::text"
    cols.append(f"{group} AS grp")
    conds = [
        f"{geometry_3857(layer)} && ST_MakeEnvelope({box}, 3857)",
        f"{h3col} IS NOT NULL",
        *row_filters(layer, filters, st),
    ]
    counts = ['count(*)::bigint AS "count"']
    counts += [
        f"count(*) FILTER (WHERE {quoted('d_' + d.name)})::bigint AS {quoted(d.name)}"
        for d in derived
    ]
    nexts = ", ".join(f'min("n_{d.name}")' for d in derived) or "NULL::timestamptz"
    by_cte, by_col, by_join = "", "", ""
    if layer.count_by:
        prefix = st.param(layer.count_by + "_")
        by_cte = (
            f", byv AS (SELECT cell, jsonb_object_agg({prefix}::text || coalesce(grp, 'null'), n)"
            f" AS by_value FROM (SELECT cell, grp, count(*) AS n FROM pts "
            f"WHERE cell = ANY({cells}::bigint[]) GROUP BY cell, grp) AS g GROUP BY cell)"
        )
        by_col, by_join = "v.by_value, ", " LEFT JOIN byv AS v USING (cell)"
    return (
        f"WITH pts AS MATERIALIZED (SELECT {', '.join(cols)} FROM {quoted(layer.table)} AS f "
        f"{where(conds)}), "
        f"agg AS (SELECT cell, {', '.join(counts)}, least({nexts}) AS next FROM pts "
        f"WHERE cell = ANY({cells}::bigint[]) GROUP BY cell){by_cte} "
        f"SELECT (SELECT {mvt_call(source.name, st, True)} FROM ("
        f'SELECT c.cell AS "__fid", to_hex(c.cell) AS "cell", {visible_counts(derived)}{by_col}'
        f"ST_AsMVTGeom(ST_GeomFromWKB(c.wkb, 3857), {ENVELOPE}, {EXTENT}, {BUFFER}, true) "
        f'AS "__geom" FROM agg AS a JOIN unnest({cells}::bigint[], {wkb}::bytea[]) '
        f"AS c(cell, wkb) USING (cell){by_join}) AS t) AS mvt, "
        f"(SELECT min(next) FROM agg) AS next"
    )


def stored_hex_part(source: Source, cover: HexCover, filters: TileFilters, st: Statement) -> str:
    """``hex_part`` for a layer with stored counts per cell and ``count_by`` value (incidents:
    ``incident_cell_counts``) and filters on that value alone: ``count`` and the count per
    value are sums of the stored rows the filter keeps; a derived flag is counted from the
    rows that can carry it (``Derived.live``), found through their own index."""
    layer = source.layer
    cells, wkb = st.param(cover.cells), st.param(cover.wkb)
    box = ", ".join(st.param(v) for v in cover.bbox)
    prefix = st.param(f"{layer.count_by}_")
    kept = [
        f"a.res = {st.param(cover.res)}::smallint",
        f"a.cell = ANY({cells}::bigint[])",
        "a.n > 0",
        *row_filters(layer, filters, st, alias="a"),
    ]
    agg = (
        f'SELECT a.cell, sum(a.n)::bigint AS "count", jsonb_object_agg({prefix}::text || '
        f"a.{quoted(layer.count_by or '')}, a.n) AS by_value FROM "
        f"{quoted(layer.cell_counts or '')} AS a {where(kept)} GROUP BY a.cell"
    )
    derived = derived_attributes(layer)
    flags = "".join(
        f", count(*) FILTER (WHERE {d.sql})::bigint AS {quoted(d.name)}" for d in derived
    )
    nexts = ", ".join(f"min({d.changes_at})" for d in derived) or "NULL::timestamptz"
    live = [d.live for d in derived] or ["false"]
    rows = [
        f"{geometry_3857(layer)} && ST_MakeEnvelope({box}, 3857)",
        f"({' OR '.join(live)})",
        *row_filters(layer, filters, st),
    ]
    passing = passing_values(layer, filters, st)
    if passing is not None:  # no row is read when no value the filter keeps can be live
        values = " OR ".join(d.live for d in derived_attributes(layer, "v")) or "false"
        rows.append(f"EXISTS (SELECT FROM ({passing}) AS v WHERE {values})")
    flagged = (
        f"SELECT {cell_sql(layer, cover.res, cells, wkb)} AS cell{flags}, least({nexts}) AS next"
        f" FROM {quoted(layer.table)} AS f {where(rows)} GROUP BY 1"
    )
    counts = ", ".join(f"coalesce(d.{quoted(x.name)}, 0) AS {quoted(x.name)}" for x in derived)
    return (
        f"WITH agg AS MATERIALIZED ({agg}), flagged AS MATERIALIZED ({flagged}) "
        f"SELECT (SELECT {mvt_call(source.name, st, True)} FROM ("
        f'SELECT c.cell AS "__fid", to_hex(c.cell) AS "cell", a."count", '
        f"{counts + ', ' if counts else ''}a.by_value, "
        f"ST_AsMVTGeom(ST_GeomFromWKB(c.wkb, 3857), {ENVELOPE}, {EXTENT}, {BUFFER}, true) "
        f'AS "__geom" FROM agg AS a JOIN unnest({cells}::bigint[], {wkb}::bytea[]) '
        f"AS c(cell, wkb) USING (cell) LEFT JOIN flagged AS d USING (cell)) AS t) AS mvt, "
        f"(SELECT min(next) FROM flagged WHERE cell = ANY({cells}::bigint[])) AS next"
    )


def cell_sql(layer: Layer, res: int, cells: str, wkb: str) -> str:
    """SQL for the res-``res`` cell of a row of ``f``: its stored column of that resolution,
    or else the cover cell (``cells``/``wkb`` parameters) whose polygon holds its point."""
    column = layer.cell_columns.get(res)
    if column:
        return f"f.{quoted(column)}"
    point = geometry_3857(layer)
    if not layer.is_point:
        point = f"ST_PointOnSurface({point})"
    return (
        f"(SELECT c.cell FROM unnest({cells}::bigint[], {wkb}::bytea[]) AS c(cell, wkb)"
        f" WHERE ST_Intersects(ST_GeomFromWKB(c.wkb, 3857), {point}) LIMIT 1)"
    )


def visible_counts(derived: list) -> str:
    """The count columns of an aggregate cell, as selected from ``agg AS a``."""
    names = ['"count"', *(quoted(d.name) for d in derived)]
    return "".join(f"a.{n}, " for n in names)
