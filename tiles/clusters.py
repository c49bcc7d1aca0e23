"""Clusters decided by density: each feature shows as itself or inside a cluster according to
its cluster cell alone, never to a tile's total, so two neighbouring tiles agree.

A cluster cell is a tile ``CLUSTER_ZOOMS`` zooms deeper than the tile (16 pixels of a
256-pixel tile); it holds the features whose centre (the point; a line's or polygon's box
centre) lies in it. A cell holding more than the layer's ``cluster_cell_max`` features
shows as one cluster, a point with their ``count`` at their mean; a sparser cell shows its
features. Below the layer's ``cluster_below`` every cell is a cluster.

A cluster belongs to the tile holding its cell, and its point is kept more than the
buffer's width inside that tile (at most four pixels from the mean), so it never lies in a
neighbour's buffer. A tile thus holds the clusters of its own dense cells and every feature
in it and its buffer whose cell is sparse; a feature in the buffer belongs to a cell of a
tile around it, which the tile counts up to ``cluster_cell_max + 1`` to decide. Whatever
lies in the strip two tiles share is shown the same way by both.

Point layers with a tile-key index (layers.db.tile_keys) do this on key ranges: a cell is a
key prefix, so the tile's cells are counted and averaged from one range of the index, each
cell around it from a short one, and features are read only from the ranges between dense
cells. With no filter, or a filter on the ``count_by`` column alone (which the stored cells
carry), the counts come from the layer's stored cells instead of the index:
its ``cluster_cells`` table (a count and coordinate sums per zoom-17 cell, which the cells
of zooms ≤ 17 are ranges of) and its ``cluster_levels`` table (the same per cell of zooms
18–20); a tile whose cells are stored cells reads its cells and the ring of cells around it
from at most 324 rows, and reads cases only from its sparse cells and the sparse cells of
the ring. A tile whose only condition is a filter on the layer's ``count_by`` column
(incidents: ``status``) finds the rows of each key range through the index on that column
and the tile key, one range per passing value (``value_ranges``). Other layers find their
rows through the spatial index.
"""

from __future__ import annotations

from gis.tilemath import (
    BUFFER,
    EXTENT,
    KEY_ZOOM,
    ORIGIN,
    buffer_margin,
    cell_ring,
    key_shift,
    pixel_size,
    tile_bounds,
    tile_key_range,
    tile_size,
)
from layers.catalog.registry import Layer
from tiles.filters import TileFilters, by_count_column_only
from tiles.mvt import (
    ENVELOPE,
    MARGIN_ENVELOPE,
    Statement,
    feature_columns,
    feature_id,
    geometry_3857,
    index_filter,
    mvt_call,
    next_change,
    passing_values,
    point_in_buffer,
    quoted,
    row_columns,
    row_filters,
    single_points,
    where,
)
from tiles.sources import Source

CLUSTER_ZOOMS = 4
"""A cluster cell is a tile this many zooms deeper than the tile."""
CELLS_ZOOM = 17
"""The zoom of the cells of a layer's ``cluster_cells`` table (migration 0023)."""
LEVEL_ZOOMS = range(18, 21)
"""The zooms of the cells of a layer's ``cluster_levels`` table (migration 0024)."""
STRIPS_MAX = 600
"""A tile holding at most this many features finds the features of its buffer by reading its
buffer strips (about 1/15 of what the ring of cells around it holds, when it is like the
tile) even where the stored cells could decide them: cheaper than probing the 68 stored
cells of the ring, which pays where the strips hold many."""
CELLS, FOUND, OUTSIDE, BUFFER_ROWS, SPARSE, RING, COUNTED, STORED, AROUND, ROWS = (
    '"tile$cells"',
    '"tile$found"',
    '"tile$outside"',
    '"tile$buffer"',
    '"tile$sparse"',
    '"tile$ring"',
    '"tile$counted"',
    '"tile$stored"',
    '"tile$around"',
    '"tile$rows"',
)
"""Names of the statement's own CTEs: no catalog table can have them ('$' is not allowed in
a catalog identifier), so a layer's table is never taken for one."""


def keyed(layer: Layer, z: int) -> bool:
    """Whether tiles of zoom ``z`` count and cluster ``layer``'s points by tile key: the
    layer has the key index, and a cluster cell of this zoom is a whole key cell."""
    return layer.tile_key and single_points(layer) and z + CLUSTER_ZOOMS <= KEY_ZOOM


def tile_key(layer: Layer) -> str:
    """The SQL of a row's tile key (the indexed expression)."""
    return f"tile_key({geometry_3857(layer)})"


def key_span(layer: Layer, low: str, high: str) -> str:
    """The condition that a row's tile key lies in ``[low, high)`` (one index range)."""
    return f"{tile_key(layer)} >= {low} AND {tile_key(layer)} < {high}"


def centre(layer: Layer) -> tuple[str, str]:
    """SQL of a row's representative point: the point itself, or its box centre."""
    g = geometry_3857(layer)
    if single_points(layer):
        return f"ST_X({g})", f"ST_Y({g})"
    return f"(ST_XMin({g}) + ST_XMax({g})) / 2", f"(ST_YMin({g}) + ST_YMax({g})) / 2"


def stored_cells(layer: Layer, zoom: int, st: Statement) -> tuple[str, list[str]] | None:
    """The FROM item (aliased ``a``: ``cell``, ``n``, ``sx``, ``sy``) and conditions of the
    layer's stored cells of zoom ``zoom``, or None when that zoom is not stored."""
    if zoom == CELLS_ZOOM and layer.cluster_cells:
        return f"{quoted(layer.cluster_cells)} AS a", []
    if zoom in LEVEL_ZOOMS and layer.cluster_levels:
        return f"{quoted(layer.cluster_levels)} AS a", [f"a.z = {st.param(zoom)}::smallint"]
    return None


def cell_index(cx: str, cy: str, z: int, st: Statement) -> tuple[str, str]:
    """SQL of the column and row, counted over the whole map, of the cluster cell of zoom-``z``
    tiles holding the point ``(cx, cy)`` (EPSG:3857)."""
    origin, size = st.param(ORIGIN), st.param(tile_size(z + CLUSTER_ZOOMS))
    return (
        f"floor(({cx} + {origin}::float8) / {size}::float8)::bigint",
        f"floor(({origin}::float8 - {cy}) / {size}::float8)::bigint",
    )


def in_tile(col: str, row: str, x: int, y: int, st: Statement, around: int = 0) -> str:
    """The condition that cell ``col, row`` lies in tile ``x, y`` (of the cells' zoom less
    ``CLUSTER_ZOOMS``), or at most ``around`` cells outside it."""
    n = 1 << CLUSTER_ZOOMS
    first_col, first_row = x * n - around, y * n - around
    last_col, last_row = x * n + n - 1 + around, y * n + n - 1 + around
    c0, c1, r0, r1 = (st.param(v) for v in (first_col, last_col, first_row, last_row))
    return (
        f"{col} BETWEEN {c0}::bigint AND {c1}::bigint AND {row} BETWEEN {r0}::bigint AND "
        f"{r1}::bigint"
    )


def cluster_point(cx: str, cy: str, z: int, x: int, y: int, st: Statement) -> str:
    """SQL of a cluster's point in tile coordinates: ``(cx, cy)`` (EPSG:3857), moved, if need
    be, to more than the buffer's width inside the tile."""
    inset = (BUFFER + 1) * pixel_size(z)
    minx, miny, maxx, maxy = tile_bounds(z, x, y)
    left, bottom, right, top = (
        st.param(v) for v in (minx + inset, miny + inset, maxx - inset, maxy - inset)
    )
    px = f"least(greatest({cx}, {left}::float8), {right}::float8)"
    py = f"least(greatest({cy}, {bottom}::float8), {top}::float8)"
    point = f"ST_SetSRID(ST_MakePoint({px}, {py}), 3857)"
    return f"ST_AsMVTGeom({point}, {ENVELOPE}, {EXTENT}, {BUFFER}, true)"


def value_ranges(layer: Layer, filters: TileFilters, st: Statement) -> list[str]:
    """An index condition for a tile whose only row condition is a CQL2 filter reading
    nothing but the layer's ``count_by`` column, which has an enum (incidents: ``status``):
    the column is one of the enum's values that pass the filter (the filter compiled over
    them), so the rows are found through the index on ``(count_by, tile_key)`` one key
    range per passing value (migration 0029). It adds to the filter, which stays, and
    needs the enum to list every value the column holds (incidents: NOT NULL and checked).
    Empty for any other tile."""
    passing = passing_values(layer, filters, st)
    if passing is None:
        return []
    return [f"f.{quoted(layer.count_by or '')} = ANY(ARRAY({passing}))"]


def keyed_filters(layer: Layer, z: int, filters: TileFilters, st: Statement) -> list[str]:
    """The row conditions of a tile (``row_filters``) and, when its cells are counted by
    tile key, the index condition of ``value_ranges``."""
    conds = row_filters(layer, filters, st)
    return [*conds, *value_ranges(layer, filters, st)] if keyed(layer, z) else conds


def countable(layer: Layer, filters: TileFilters, conds: list[str]) -> bool:
    """Whether the layer's stored cells can count a tile with row conditions ``conds``: it
    is unfiltered, or filtered on the ``count_by`` column alone, which the stored cells
    carry (migration 0030)."""
    return not conds or by_count_column_only(layer, filters)


def stored_rows(layer: Layer, table: str, conds: list[str]) -> str:
    """The FROM item of a countable tile's stored cells ``table`` (a FROM item aliased
    ``a``), with the tile's row conditions ``conds``, which then read the stored ``count_by``
    column as ``f``'s (the only column they name), so they go in its WHERE clause as they are."""
    if not conds:
        return table
    column = quoted(layer.count_by or "")
    return f"{table} CROSS JOIN LATERAL (SELECT a.{column} AS {column}) AS f"


def cells_sql(
    layer: Layer, z: int, x: int, y: int, st: Statement, conds: list[str], filters: TileFilters
) -> str:
    """A subquery: the tile's cells that hold features meeting ``conds``, one row each with
    ``n`` (how many) and ``cx, cy`` (their mean centre). Keyed layers group one key range by
    key prefix (column ``cell``), from the layer's stored cells where they can count the
    tile (``countable``; summed over the rows its filter keeps); others group the centres
    found through the spatial index by cell column and row (``col, row``).
    (``OFFSET 0`` keeps the inner select whole, so each row's centre is computed once.)"""
    cx, cy = centre(layer)
    table = f"{quoted(layer.table)} AS f"
    zc = z + CLUSTER_ZOOMS
    sums = "sum(a.n)::bigint AS n, (sum(a.sx) / sum(a.n))::float8 AS cx, (sum(a.sy) / sum(a.n))"
    stored = keyed(layer, z) and countable(layer, filters, conds)
    if stored and zc in LEVEL_ZOOMS and (cells := stored_cells(layer, zc, st)):
        low, high = (f"{st.param(v >> key_shift(zc))}::bigint" for v in tile_key_range(z, x, y))
        kept = [*cells[1], f"a.cell >= {low}", f"a.cell < {high}", "a.n > 0", *conds]
        return (
            f"SELECT a.cell, {sums}::float8 AS cy FROM {stored_rows(layer, cells[0], conds)} "
            f"{where(kept)} "
            f"GROUP BY a.cell HAVING sum(a.n) > 0"
        )
    if stored and layer.cluster_cells and zc <= CELLS_ZOOM:
        low, high = (
            f"{st.param(v >> key_shift(CELLS_ZOOM))}::bigint" for v in tile_key_range(z, x, y)
        )
        shift = st.param(key_shift(z + CLUSTER_ZOOMS) - key_shift(CELLS_ZOOM))
        kept = [f"a.cell >= {low}", f"a.cell < {high}", *conds]
        table = stored_rows(layer, f"{quoted(layer.cluster_cells)} AS a", conds)
        return (
            f"SELECT a.cell >> {shift} AS cell, {sums}::float8 AS cy FROM {table} {where(kept)} "
            f"GROUP BY 1 HAVING sum(a.n) > 0"
        )
    if keyed(layer, z):
        low, high = (f"{st.param(v)}::bigint" for v in tile_key_range(z, x, y))
        shift = st.param(key_shift(z + CLUSTER_ZOOMS))
        return (
            f"SELECT {tile_key(layer)} >> {shift} AS cell, count(*)::bigint AS n, avg({cx}) AS cx,"
            f" avg({cy}) AS cy FROM {table} {where([key_span(layer, low, high), *conds])} "
            f"GROUP BY 1"
        )
    col, row = cell_index("p.cx", "p.cy", z, st)
    found = where([index_filter(layer, ENVELOPE), *conds])
    centres = f"SELECT {cx} AS cx, {cy} AS cy FROM {table} {found}"
    return (
        f"SELECT q.col, q.row, count(*)::bigint AS n, avg(q.cx) AS cx, avg(q.cy) AS cy FROM "
        f"(SELECT p.cx, p.cy, {col} AS col, {row} AS row FROM ({centres} OFFSET 0) AS p) AS q "
        f"WHERE {in_tile('q.col', 'q.row', x, y, st)} GROUP BY q.col, q.row"
    )


def clusters_part(
    source: Source, z: int, x: int, y: int, filters: TileFilters, st: Statement
) -> str:
    """A subquery: every cell of the tile as a cluster (zooms below ``cluster_below``)."""
    conds = keyed_filters(source.layer, z, filters, st)
    cells = cells_sql(source.layer, z, x, y, st, conds, filters)
    point = cluster_point("c.cx", "c.cy", z, x, y, st)
    return (
        f"SELECT {mvt_call(source.name, st, False)} AS mvt, NULL::timestamptz AS next FROM "
        f'(SELECT c.n AS "count", {point} AS "__geom" FROM ({cells}) AS c) AS t'
    )


def buffer_strips(layer: Layer, z: int, x: int, y: int, st: Statement) -> str:
    """The index condition that a row's geometry meets the tile's buffer outside the tile
    (four strips, the corners with the top and bottom ones)."""
    minx, miny, maxx, maxy = tile_bounds(z, x, y)
    left, bottom, right, top = tile_bounds(z, x, y, buffer_margin())
    strips = [
        (left, maxy, right, top),
        (left, bottom, right, miny),
        (left, miny, minx, maxy),
        (maxx, miny, right, maxy),
    ]
    boxes = [
        "ST_MakeEnvelope({}, 3857)".format(", ".join(f"{st.param(v)}::float8" for v in box))
        for box in strips
    ]
    return "(" + " OR ".join(index_filter(layer, box) for box in boxes) + ")"


def keyed_rows(
    source: Source, z: int, x: int, y: int, filters: TileFilters, st: Statement, limit: str
) -> str:
    """The CTEs ``tile$cells`` (the tile's cells, by key prefix) and ``tile$rows`` (the rows
    of the features to show as themselves) of a keyed layer: the tile's features come from
    the key ranges between its dense cells; the buffer's from ``counted_around`` or, for an
    unfiltered tile holding more than ``STRIPS_MAX`` whose cells are stored, from
    ``stored_around`` (both give the same rows)."""
    layer = source.layer
    conds = keyed_filters(layer, z, filters, st)
    table = f"{quoted(layer.table)} AS f"
    cols = ", ".join(row_columns(source, filters))
    shift = st.param(key_shift(z + CLUSTER_ZOOMS))
    low, high = (f"{st.param(v)}::bigint" for v in tile_key_range(z, x, y))
    dense = f"FROM {CELLS} WHERE n > {limit}"
    spans = (
        f"SELECT coalesce(lag((cell + 1) << {shift}) OVER (ORDER BY cell), {low}) AS lo, "
        f"cell << {shift} AS hi {dense} "
        f"UNION ALL SELECT coalesce(max(cell + 1) << {shift}, {low}), {high} {dense}"
    )
    inside = [key_span(layer, "s.lo", "s.hi"), *conds]
    stored = (
        stored_cells(layer, z + CLUSTER_ZOOMS, st) if countable(layer, filters, conds) else None
    )
    if stored:
        total, most = f"(SELECT coalesce(sum(n), 0) FROM {CELLS})", st.param(STRIPS_MAX)
        around = (
            f"{counted_around(source, z, x, y, filters, st, limit, COUNTED)}, "
            f"{stored_around(source, z, x, y, filters, st, limit, stored, STORED)}, "
            f"{AROUND} AS (SELECT * FROM {COUNTED} WHERE {total} <= {most}::bigint "
            f"UNION ALL SELECT * FROM {STORED} WHERE {total} > {most}::bigint)"
        )
    else:
        around = counted_around(source, z, x, y, filters, st, limit, AROUND)
    return (
        f"{CELLS} AS MATERIALIZED ({cells_sql(layer, z, x, y, st, conds, filters)}), {around}, "
        f"{ROWS} AS MATERIALIZED (SELECT f.* FROM (SELECT * FROM ({spans}) AS s WHERE lo < hi)"
        f' AS s CROSS JOIN LATERAL (SELECT {cols}, NULL::bigint AS "tile$cell" FROM {table} '
        f"{where(inside)} OFFSET 0) AS f UNION ALL SELECT * FROM {AROUND})"
    )


def counted_around(
    source: Source,
    z: int,
    x: int,
    y: int,
    filters: TileFilters,
    st: Statement,
    limit: str,
    name: str,
) -> str:
    """The CTE ``name``: the rows in a keyed layer's buffer (found through the spatial index)
    whose cell, counted from its key range up to ``limit + 1``, holds at most ``limit``;
    with their cell ``tile$cell``."""
    layer = source.layer
    conds = row_filters(layer, filters, st)
    table = f"{quoted(layer.table)} AS f"
    cols = ", ".join(row_columns(source, filters))
    shift = st.param(key_shift(z + CLUSTER_ZOOMS))
    low, high = (f"{st.param(v)}::bigint" for v in tile_key_range(z, x, y))
    around = [
        buffer_strips(layer, z, x, y, st),
        point_in_buffer(layer, z, x, y, st),
        f"NOT ({key_span(layer, low, high)})",
        *conds,
    ]
    cell_span = key_span(layer, f"(b.cell << {shift})", f"((b.cell + 1) << {shift})")
    counted = [cell_span, *conds, *value_ranges(layer, filters, st)]
    cell_count = (
        f"(SELECT count(*) FROM (SELECT FROM {table} {where(counted)} LIMIT {limit} + 1) AS k)"
    )
    sparse = (
        f'SELECT b.cell FROM (SELECT DISTINCT "tile$cell" AS cell FROM {BUFFER_ROWS}) AS b '
        f"WHERE {cell_count} <= {limit}"
    )
    return (
        f"{BUFFER_ROWS} AS MATERIALIZED (SELECT {cols}, {tile_key(layer)} >> {shift} AS "
        f'"tile$cell" FROM {table} {where(around)}), '
        f"{SPARSE} AS MATERIALIZED ({sparse}), "
        f"{name} AS MATERIALIZED (SELECT b.* FROM {BUFFER_ROWS} AS b JOIN {SPARSE} AS p "
        f'ON p.cell = b."tile$cell")'
    )


def stored_around(
    source: Source,
    z: int,
    x: int,
    y: int,
    filters: TileFilters,
    st: Statement,
    limit: str,
    stored: tuple[str, list[str]],
    name: str,
) -> str:
    """The CTE ``name``: the rows in the buffer of a keyed layer whose cells are ``stored``
    (stored_cells), unfiltered or filtered on the ``count_by`` column alone
    (countable). The cells of the ring around the tile holding at most ``limit`` are
    taken from the stored counts, and only their key ranges are read; a point of the buffer
    lies in one of them, as the buffer is narrower than a cell."""
    layer = source.layer
    table = f"{quoted(layer.table)} AS f"
    cols = ", ".join(row_columns(source, filters))
    shift = st.param(key_shift(z + CLUSTER_ZOOMS))
    ring = st.param(cell_ring(z, x, y, CLUSTER_ZOOMS))
    conds = keyed_filters(layer, z, filters, st)
    near = [*stored[1], f"a.cell = ANY({ring}::bigint[])", "a.n > 0", *conds]
    cell_span = key_span(layer, f"(r.cell << {shift})", f"((r.cell + 1) << {shift})")
    rows = [cell_span, point_in_buffer(layer, z, x, y, st), *conds]
    return (
        f"{RING} AS MATERIALIZED (SELECT a.cell FROM {stored_rows(layer, stored[0], conds)} "
        f"{where(near)} "
        f"GROUP BY a.cell HAVING sum(a.n) BETWEEN 1 AND {limit}), "
        f"{name} AS MATERIALIZED (SELECT f.* FROM {RING} AS r CROSS JOIN LATERAL "
        f'(SELECT {cols}, r.cell AS "tile$cell" FROM {table} {where(rows)} OFFSET 0) AS f)'
    )


def indexed_rows(
    source: Source, z: int, x: int, y: int, filters: TileFilters, st: Statement, limit: str
) -> str:
    """The CTEs ``tile$cells`` (the cells of the tile and of the ring around it, by column
    and row) and ``tile$rows`` (the rows of the features to show as themselves) of a layer
    read through its spatial index. One read of the tile widened by a cell finds every
    member of those cells; a feature in the buffer centred farther out (a long line) has
    its cell counted up to ``limit + 1``."""
    layer = source.layer
    conds = row_filters(layer, filters, st)
    table = f"{quoted(layer.table)} AS f"
    cols = ", ".join(row_columns(source, filters))
    cx, cy = centre(layer)
    col, row = cell_index(cx, cy, z, st)
    shown = (
        point_in_buffer(layer, z, x, y, st)
        if single_points(layer)
        else (index_filter(layer, MARGIN_ENVELOPE))
    )
    ring = f"ST_TileEnvelope($1, $2, $3, margin => {1 / (1 << CLUSTER_ZOOMS)!r})"
    origin, size = st.param(ORIGIN), st.param(tile_size(z + CLUSTER_ZOOMS))
    cell_box = (
        f"ST_MakeEnvelope(o.col * {size}::float8 - {origin}::float8, {origin}::float8 - "
        f"(o.row + 1) * {size}::float8, (o.col + 1) * {size}::float8 - {origin}::float8, "
        f"{origin}::float8 - o.row * {size}::float8, 3857)"
    )
    in_cell = [index_filter(layer, cell_box), f"{col} = o.col", f"{row} = o.row", *conds]
    cell_count = (
        f"(SELECT count(*) FROM (SELECT FROM {table} {where(in_cell)} LIMIT {limit} + 1) AS k)"
    )
    near = in_tile('"tile$col"', '"tile$row"', x, y, st, around=1)
    return (
        f'{FOUND} AS MATERIALIZED (SELECT {cols}, {cx} AS "tile$x", {cy} AS "tile$y", '
        f'{col} AS "tile$col", {row} AS "tile$row", {shown} AS "tile$shown" FROM {table} '
        f"{where([index_filter(layer, ring), *conds])}), "
        f'{CELLS} AS MATERIALIZED (SELECT "tile$col" AS col, "tile$row" AS row, '
        f'count(*)::bigint AS n, avg("tile$x") AS cx, avg("tile$y") AS cy FROM {FOUND} '
        f"WHERE {near} GROUP BY 1, 2), "
        f"{OUTSIDE} AS MATERIALIZED (SELECT o.col, o.row, {cell_count} AS n FROM "
        f'(SELECT DISTINCT "tile$col" AS col, "tile$row" AS row FROM {FOUND} '
        f'WHERE "tile$shown" AND NOT ({near})) AS o), '
        f"{ROWS} AS MATERIALIZED (SELECT d.* FROM {FOUND} AS d "
        f'LEFT JOIN {CELLS} AS c ON c.col = d."tile$col" AND c.row = d."tile$row" '
        f'LEFT JOIN {OUTSIDE} AS o ON o.col = d."tile$col" AND o.row = d."tile$row" '
        f'WHERE d."tile$shown" AND coalesce(c.n, o.n) <= {limit})'
    )


def density_part(
    source: Source, z: int, x: int, y: int, filters: TileFilters, st: Statement
) -> str:
    """A subquery: the source's features in the tile and its buffer whose cell holds at most
    the layer's ``cluster_cell_max`` features, and a cluster for each denser cell of the
    tile, in one MVT layer (clusters carry ``count`` and no id)."""
    layer = source.layer
    limit = f"{st.param(layer.cluster_cell_max)}::bigint"
    build = keyed_rows if keyed(layer, z) else indexed_rows
    ctes = build(source, z, x, y, filters, st, limit)
    cols = feature_columns(source, z, x, y, filters, st)
    blanks = ["NULL"] * len(cols)
    blanks[next(i for i, c in enumerate(cols) if c.endswith(' AS "__geom"'))] = cluster_point(
        "c.cx", "c.cy", z, x, y, st
    )
    raw = (
        f'SELECT t.*, NULL::bigint AS "count" FROM {ROWS} AS f '
        f"CROSS JOIN LATERAL (SELECT {', '.join(cols)}) AS t"
    )
    dense = [f"c.n > {limit}"]
    if not keyed(layer, z):
        dense.append(in_tile("c.col", "c.row", x, y, st))
    clusters = f"SELECT {', '.join(blanks)}, c.n FROM {CELLS} AS c {where(dense)}"
    mvt = mvt_call(source.name, st, feature_id(layer) is not None)
    return (
        f"WITH {ctes} SELECT (SELECT {mvt} FROM ({raw} UNION ALL {clusters}) AS t) AS mvt, "
        f"(SELECT {next_change(layer)} FROM {ROWS} AS f) AS next"
    )
