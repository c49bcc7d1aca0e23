"""Tile keys: a number per point that puts every map tile in one range of an index.

``tile_key(geometry)`` is the Morton number of the zoom-24 Web Mercator tile holding a point
(EPSG:3857); NULL for an empty point or one outside the Mercator square. A B-tree on it that
carries the point lets a tile count its points and group them into clusters by reading one
range of the index, without visiting the table (see tiles.mvt).
"""

from __future__ import annotations

from gis.tilemath import KEY_ZOOM, ORIGIN, SPREAD_STEPS

_N = 1 << KEY_ZOOM
POSTGIS_SCHEMA_SQL = (
    "SELECT quote_ident(n.nspname) FROM pg_extension e "
    "JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'postgis'"
)
"""The (quoted) schema PostGIS is installed in."""


def _spread(var: str) -> str:
    return "\n".join(f"    {var} := ({var} | ({var} << {s})) & {m};" for s, m in SPREAD_STEPS)


def tile_key_function_sql(postgis_schema: str) -> str:
    """The SQL that (re)creates ``tile_key(geometry)``, calling PostGIS in
    ``postgis_schema`` by name, so the function works under any search_path (autovacuum's,
    pg_restore's and REINDEX's are empty)."""
    x, y = f"{postgis_schema}.ST_X(g)", f"{postgis_schema}.ST_Y(g)"
    return f"""
CREATE OR REPLACE FUNCTION tile_key(g geometry) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    x bigint := floor(({x} + {ORIGIN!r}) / {2 * ORIGIN!r} * {_N});
    y bigint := floor(({ORIGIN!r} - {y}) / {2 * ORIGIN!r} * {_N});
BEGIN
    IF NOT (x BETWEEN 0 AND {_N - 1} AND y BETWEEN 0 AND {_N - 1}) THEN
        RETURN NULL;
    END IF;
{_spread("x")}
{_spread("y")}
    RETURN x | (y << 1);
END $$;
"""


def index_name(table: str) -> str:
    """The name of ``table``'s tile-key index."""
    return f"ix_{table.replace('.', '_')}_tile_key"


def create_index_sql(table: str, column: str) -> str:
    """The SQL that indexes the points of ``table`` by the tile key of their 3857 ``column``,
    carrying the point, so counts and clusters come from the index alone."""
    return (
        f"CREATE INDEX IF NOT EXISTS {index_name(table)} ON {table} "
        f"(tile_key({column})) INCLUDE ({column})"
    )
