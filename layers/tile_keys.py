"""Tile keys: a number per feature that puts every map tile in one range of an index.

``tile_key(geometry)`` is the Morton number of the zoom-24 Web Mercator tile holding the
centre of the geometry's box (EPSG:3857). A B-tree on it (with the geometry included for
point layers) lets a tile count its features and group them into clusters by reading one
range of the index, without visiting the table (see tiles.mvt).
"""

from __future__ import annotations

from gis.tilemath import KEY_ZOOM, ORIGIN, SPREAD_STEPS

_N = 1 << KEY_ZOOM


def _spread(var: str) -> str:
    return "\n".join(f"    {var} := ({var} | ({var} << {s})) & {m};" for s, m in SPREAD_STEPS)


TILE_KEY_FUNCTION = f"""
CREATE OR REPLACE FUNCTION tile_key(g geometry) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    x bigint := least(greatest(floor(
        ((ST_XMin(g) + ST_XMax(g)) / 2 + {ORIGIN!r}) / {2 * ORIGIN!r} * {_N}), 0), {_N - 1});
    y bigint := least(greatest(floor(
        ({ORIGIN!r} - (ST_YMin(g) + ST_YMax(g)) / 2) / {2 * ORIGIN!r} * {_N}), 0), {_N - 1});
BEGIN
{_spread("x")}
{_spread("y")}
    RETURN x | (y << 1);
END $$;
"""
"""The SQL that (re)creates ``tile_key(geometry)`` for geometries in EPSG:3857."""


def index_name(table: str) -> str:
    """The name of ``table``'s tile-key index."""
    return f"ix_{table.replace('.', '_')}_tile_key"


def create_index_sql(table: str, column: str, points: bool) -> str:
    """The SQL that indexes ``table`` by the tile key of its 3857 ``column``; point layers
    carry the geometry in the index too, so clusters are made from the index alone."""
    include = f" INCLUDE ({column})" if points else ""
    return (
        f"CREATE INDEX IF NOT EXISTS {index_name(table)} ON {table} (tile_key({column})){include}"
    )
