"""The SQL of feature layers: subqueries yielding one row ``(mvt, next)``, the layer's MVT
bytes and when a clock-derived attribute of its rows next changes.

Rows are found through the index on the stored EPSG:3857 geometry with ``&&`` against the
tile envelope widened by the buffer, so a feature outside the tile that reaches into its
buffer is in the tile. Points are then tested exactly against that widened envelope and
moved onto the tile grid by arithmetic; lines and polygons are simplified to one unit of
the tile's grid and clipped to the buffer by ST_AsMVTGeom. Which features show as clusters
is tiles.clusters' business.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gis.tilemath import BUFFER, EXTENT, buffer_margin, pixel_size, tile_bounds
from layers.catalog.registry import Layer
from layers.features.cql.compile import filter_clause
from tiles.derived import derived_attributes
from tiles.filters import TileFilters, by_count_column_only
from tiles.sources import Source, feature_attributes

ENVELOPE = "ST_TileEnvelope($1, $2, $3)"
MARGIN_ENVELOPE = f"ST_TileEnvelope($1, $2, $3, margin => {buffer_margin()!r})"


@dataclass
class Statement:
    """SQL under construction with asyncpg ``$n`` parameters; $1..$3 are z, x, y."""

    args: list[Any] = field(default_factory=list)

    def param(self, value: Any) -> str:
        """The placeholder of a new parameter holding ``value``."""
        self.args.append(value)
        return f"${len(self.args)}"


def quoted(name: str) -> str:
    """A catalog identifier (already checked to be plain) as a quoted SQL name."""
    return ".".join(f'"{part}"' for part in name.split("."))


def attribute_sql(name: str, kind: str, alias: str = "f") -> str:
    """The SQL of one catalog property as an MVT attribute value. ST_AsMVT writes any other
    type as its text form: times as ISO text in the session's zone, UTC for tiles
    (``2026-10-31 08:00:00+00``)."""
    col = f"{alias}.{quoted(name)}"
    return {
        "object": f"{col}::text",
        "integer": f"{col}::bigint",
        "number": f"{col}::float8",
        "boolean": f"{col}::boolean",
    }.get(kind, col)


def single_points(layer: Layer) -> bool:
    """Whether every feature is one point (so ST_X and ST_Y apply)."""
    return layer.geometry_type.lower() == "point"


def geometry_3857(layer: Layer, alias: str = "f") -> str:
    """The layer's geometry in EPSG:3857: the stored copy when it has one."""
    if layer.geometry_3857_column:
        return f"{alias}.{quoted(layer.geometry_3857_column)}"
    return f"ST_Transform({alias}.{quoted(layer.geometry_column)}, 3857)"


def index_filter(layer: Layer, envelope: str, alias: str = "f") -> str:
    """The index condition: the layer's geometry box overlaps ``envelope`` (EPSG:3857)."""
    if layer.geometry_3857_column:
        return f"{alias}.{quoted(layer.geometry_3857_column)} && {envelope}"
    return f"{alias}.{quoted(layer.geometry_column)} && ST_Transform({envelope}, {layer.srid})"


def row_filters(layer: Layer, filters: TileFilters, st: Statement, alias: str = "f") -> list[str]:
    """The conditions that ``from``, ``to``, ``category`` and ``filter`` put on the rows,
    and the caller's read scope on a layer that has one."""
    conds = []
    visible = layer.visibility(filters.visible)
    if visible.limited:
        conds += visible.conditions(
            dict(layer.read_scope), alias, lambda value, kind: f"{st.param(value)}::{kind}"
        )
    if layer.time_column and filters.start:
        conds.append(f"{alias}.{quoted(layer.time_column)} >= {st.param(filters.start)}")
    if layer.time_column and filters.end:
        conds.append(f"{alias}.{quoted(layer.time_column)} < {st.param(filters.end)}")
    if layer.category_column and filters.categories:
        col = f"{alias}.{quoted(layer.category_column)}::text"
        codes = st.param(list(filters.categories))
        conds.append(f"({col} = ANY({codes}::text[]) OR left({col}, 2) = ANY({codes}::text[]))")
    if filters.cql is not None:
        sql, params = filter_clause(
            layer,
            filters.cql,
            filters.cql_lang,
            style="asyncpg",
            first_param=len(st.args) + 1,
            alias=alias,
        )
        st.args.extend(params)
        conds.append(f"({sql})")
    return conds


def passing_values(layer: Layer, filters: TileFilters, st: Statement) -> str | None:
    """For a tile filtered by its CQL filter on the layer's ``count_by`` column alone
    (``by_count_column_only``) where that column has an enum: SQL of the enum's values the
    filter keeps (one column named as the column, over the alias ``v``). None otherwise."""
    column = layer.count_by
    if column not in layer.enums or filters.cql is None:
        return None
    if not by_count_column_only(layer, filters):
        return None
    sql, params = filter_clause(
        layer, filters.cql, filters.cql_lang, first_param=len(st.args) + 2, alias="v"
    )
    values = st.param(list(layer.enums[column]))
    st.args.extend(params)
    col = quoted(column)
    return f"SELECT v.{col} FROM unnest({values}::text[]) AS v({col}) WHERE {sql}"


def where(conds: list[str]) -> str:
    """A WHERE clause joining ``conds`` with AND."""
    return "WHERE " + " AND ".join(conds)


def feature_id(layer: Layer, alias: str = "f") -> str | None:
    """The SQL of the MVT feature id (integer and H3 ids; string ids have none)."""
    if layer.id_type == "string":
        return None
    return f"{alias}.{quoted(layer.id_column)}::bigint"


def tile_geometry(layer: Layer, z: int, x: int, y: int, st: Statement) -> str:
    """The SQL of a row's geometry in tile coordinates, clipped to the buffer. Points (which
    the row filter already keeps inside the buffer) are moved onto the tile grid directly;
    lines and polygons are simplified to one grid unit, then clipped by ST_AsMVTGeom."""
    geom = geometry_3857(layer)
    if single_points(layer):
        minx, _, maxx, maxy = tile_bounds(z, x, y)
        scale = EXTENT / (maxx - minx)
        # ST_AsMVT truncates coordinates: half a unit more makes that a rounding
        half = 0.5 / scale
        args = (-minx + half, -maxy - half, scale, -scale)
        shift_x, shift_y, k, flip = (st.param(v) for v in args)
        return (
            f"ST_TransScale({geom}, {shift_x}::float8, {shift_y}::float8, "
            f"{k}::float8, {flip}::float8)"
        )
    simplified = f"ST_Simplify({geom}, {st.param(pixel_size(z))}::float8, true)"
    return f"ST_AsMVTGeom({simplified}, {ENVELOPE}, {EXTENT}, {BUFFER}, true)"


def point_in_buffer(layer: Layer, z: int, x: int, y: int, st: Statement) -> str:
    """The exact test that a point lies in the tile widened by the buffer (the index filter
    compares single-precision boxes, which can reach a metre further)."""
    g = geometry_3857(layer)
    minx, miny, maxx, maxy = (st.param(v) for v in tile_bounds(z, x, y, buffer_margin()))
    return f"ST_X({g}) BETWEEN {minx} AND {maxx} AND ST_Y({g}) BETWEEN {miny} AND {maxy}"


def feature_columns(
    source: Source, z: int, x: int, y: int, filters: TileFilters, st: Statement
) -> list[str]:
    """The select list of a source's features: id, attributes, tile geometry."""
    layer = source.layer
    cols = []
    fid = feature_id(layer)
    if fid:
        cols.append(f'{fid} AS "__fid"')
    for name, kind in feature_attributes(source).items():
        if not filters.keeps(name):
            continue
        if name == "cell" and layer.id_type == "h3":
            cols.append(f'to_hex(f.{quoted(layer.id_column)}) AS "cell"')
        elif name in layer.properties:
            cols.append(f"{attribute_sql(name, kind)} AS {quoted(name)}")
    derived = derived_attributes(layer)
    cols += [f"{d.sql} AS {quoted(d.name)}" for d in derived if filters.keeps(d.name)]
    cols.append(f'{tile_geometry(layer, z, x, y, st)} AS "__geom"')
    return cols


def row_columns(source: Source, filters: TileFilters) -> list[str]:
    """The table columns a source's feature select list reads (quoted, over ``f``)."""
    layer = source.layer
    names = [layer.id_column]
    names += [n for n in layer.properties if filters.keeps(n)]
    names += [c for d in derived_attributes(layer) for c in d.columns]
    names.append(layer.geometry_3857_column or layer.geometry_column)
    return [f"f.{quoted(n)}" for n in dict.fromkeys(names)]


def next_change(layer: Layer) -> str:
    """The aggregate SQL of when a clock-derived attribute of the rows ``f`` next changes
    (NULL when none does)."""
    derived = derived_attributes(layer)
    changes = ", ".join(d.changes_at for d in derived)
    return f"min(least({changes}))" if derived else "min(NULL::timestamptz)"


def features_select(
    source: Source, rows: str, conds: list[str], cols: list[str], st: Statement
) -> str:
    """A subquery: one row ``(mvt, next)`` of the features in ``rows`` (a FROM item aliased
    ``f``) meeting ``conds``, with the select list ``cols``."""
    mvt = mvt_call(source.name, st, feature_id(source.layer) is not None)
    return (
        f"SELECT {mvt} AS mvt, {next_change(source.layer)} AS next FROM {rows} "
        f"CROSS JOIN LATERAL (SELECT {', '.join(cols)}) AS t"
        + (f" {where(conds)}" if conds else "")
    )


def features_part(
    source: Source, z: int, x: int, y: int, filters: TileFilters, st: Statement
) -> str:
    """A subquery: the source's features in the tile and its buffer, each as itself."""
    layer = source.layer
    conds = row_filters(layer, filters, st)
    cols = feature_columns(source, z, x, y, filters, st)
    exact = [point_in_buffer(layer, z, x, y, st)] if single_points(layer) else []
    found = [index_filter(layer, MARGIN_ENVELOPE), *exact, *conds]
    return features_select(source, f"{quoted(layer.table)} AS f", found, cols, st)


def mvt_call(name: str, st: Statement, with_id: bool) -> str:
    """ST_AsMVT over rows ``t`` as layer ``name``."""
    fid = ", '__fid'" if with_id else ""
    return f"ST_AsMVT(t, {st.param(name)}::text, {EXTENT}, '__geom'{fid})"
