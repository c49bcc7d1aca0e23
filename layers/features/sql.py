"""SQL fragments for a catalog layer: quoted names, named parameters, and a feature rendered
as GeoJSON text by PostGIS (so a page of features never goes through Python objects).

Every name in these fragments comes from the catalog (validated identifiers, quoted);
every client value is a named parameter (``:p1``...) bound by SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gis.crs import CRS, CRS84
from layers.catalog.identifiers import column
from layers.catalog.registry import PERSONAL_KEY_PATTERN, Layer

GEOGRAPHIC_DIGITS = 8
PROJECTED_DIGITS = 3
MAX_JSONB_PAIRS = 50


class Params:
    """Named parameters of one statement, each placeholder carrying its SQL type."""

    def __init__(self, prefix: str = "p") -> None:
        self.prefix = prefix
        self.values: dict[str, Any] = {}

    def add(self, value: Any, sql_type: str | None = None) -> str:
        """A placeholder bound to ``value`` (cast to ``sql_type`` when given)."""
        name = f"{self.prefix}{len(self.values) + 1}"
        self.values[name] = value
        return f"CAST(:{name} AS {sql_type})" if sql_type else f":{name}"


def id_json_sql(layer: Layer, alias: str = "t") -> str:
    """The feature id as JSON text (an H3 id as its hex string)."""
    col = column(layer, layer.id_column, alias)
    if layer.id_type == "h3":
        return f"to_json(lpad(to_hex({col}), 15, '0'))::text"
    return f"to_json({col})::text"


def geometry_sql(layer: Layer, crs: CRS, alias: str = "t") -> str:
    """The layer's geometry in ``crs``, axes in the order ``crs`` exchanges them."""
    geom = column(layer, layer.geometry_column, alias)
    if crs.srid != layer.srid:
        geom = f"ST_Transform({geom}, {int(crs.srid)})"
    if crs.lat_first:
        geom = f"ST_FlipCoordinates({geom})"
    return geom


def geojson_geometry_sql(layer: Layer, crs: CRS, alias: str = "t") -> str:
    """The geometry as GeoJSON text in ``crs``."""
    digits = GEOGRAPHIC_DIGITS if crs.geographic else PROJECTED_DIGITS
    return f"ST_AsGeoJSON({geometry_sql(layer, crs, alias)}, {digits})"


def _pairs_sql(pairs: Sequence[tuple[str, str]]) -> str:
    """jsonb_build_object over any number of (key SQL, value SQL) pairs."""
    chunks = [pairs[i : i + MAX_JSONB_PAIRS] for i in range(0, len(pairs), MAX_JSONB_PAIRS)]
    parts = [
        "jsonb_build_object(" + ", ".join(f"{k}, {v}" for k, v in chunk) + ")" for chunk in chunks
    ]
    return " || ".join(parts) if parts else "'{}'::jsonb"


def properties_sql(
    layer: Layer, alias: str = "t", names: Sequence[str] | None = None, params: Params | None = None
) -> str:
    """The feature's properties as jsonb: catalog columns over the free-form extras (as
    the layer's ``extras_view`` shows them), the h3 cell as a hex string; ``names`` keeps
    only those (extras keys become parameters)."""
    wanted = (
        list(layer.properties) if names is None else [n for n in names if n in layer.properties]
    )
    pairs = [(f"'{name}'", column(layer, name, alias)) for name in wanted]
    if layer.h3_column and (names is None or "h3" in names):
        pairs.append(("'h3'", f"lpad(to_hex({column(layer, layer.h3_column, alias)}), 15, '0')"))
    core = _pairs_sql(pairs)
    extra_col = layer.extra_properties_column
    if not extra_col or layer.extras_view == "none":
        return core
    extras = f"COALESCE({column(layer, extra_col, alias)}, '{{}}'::jsonb)"
    if layer.extras_view == "impersonal":
        extras = (
            f"(SELECT COALESCE(jsonb_object_agg(e.key, e.value), '{{}}'::jsonb) "
            f"FROM jsonb_each({extras}) AS e WHERE e.key !~* '{PERSONAL_KEY_PATTERN}' "
            "AND jsonb_typeof(e.value) NOT IN ('object', 'array'))"
        )
    if names is not None:
        if params is None:
            raise ValueError("selecting free-form properties needs a Params")
        keys = [n for n in names if n not in layer.properties and n != "h3"]
        if not keys:
            return core
        extra_pairs = []
        for key in keys:
            placeholder = params.add(key, "text")
            extra_pairs.append((placeholder, f"{extras} -> {placeholder}"))
        extras = f"jsonb_strip_nulls({_pairs_sql(extra_pairs)})"
    return f"({extras} || {core})"


def feature_sql(
    layer: Layer,
    crs: CRS = CRS84,
    alias: str = "t",
    names: Sequence[str] | None = None,
    params: Params | None = None,
) -> str:
    """One feature as GeoJSON text (a Feature with id, geometry and properties)."""
    return (
        '\'{"type":"Feature","id":\' || '
        + id_json_sql(layer, alias)
        + " || ',\"geometry\":' || COALESCE("
        + geojson_geometry_sql(layer, crs, alias)
        + ", 'null') || ',\"properties\":' || ("
        + properties_sql(layer, alias, names, params)
        + ")::text || '}'"
    )


def bbox_sql(
    layer: Layer, bbox: tuple[float, float, float, float], params: Params, alias: str = "t"
) -> str:
    """Features whose geometry intersects a lon/lat box (split at the antimeridian)."""
    minx, miny, maxx, maxy = bbox
    boxes = (
        [(minx, miny, maxx, maxy)]
        if minx <= maxx
        else [(minx, miny, 180.0, maxy), (-180.0, miny, maxx, maxy)]
    )
    geom = column(layer, layer.geometry_column, alias)
    parts = []
    for box in boxes:
        values = ", ".join(params.add(float(v), "double precision") for v in box)
        envelope = f"ST_MakeEnvelope({values}, 4326)"
        if layer.srid != 4326:
            envelope = f"ST_Transform({envelope}, {int(layer.srid)})"
        parts.append(f"ST_Intersects({geom}, {envelope})")
    return "(" + " OR ".join(parts) + ")"
