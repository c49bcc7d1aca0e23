"""TileJSON 3.0.0 documents for a list of tile sources."""

from __future__ import annotations

import time
from typing import Any

from gis.tilemath import BBox
from tiles.filters import TileFilters
from tiles.mvt import quoted
from tiles.service import Fetcher
from tiles.sources import Source, feature_attributes, hex_attributes

TILEJSON_VERSION = "3.0.0"
WORLD: BBox = (-180.0, -85.0511287798066, 180.0, 85.0511287798066)
BOUNDS_SECONDS = 300.0
FIELD_TYPES = {"integer": "Number", "number": "Number", "boolean": "Boolean"}
_bounds: dict[tuple[int, str], tuple[float, BBox | None]] = {}


def field_type(kind: str) -> str:
    """The TileJSON type name of a catalog property type."""
    return FIELD_TYPES.get(kind, "String")


def vector_layer(source: Source) -> dict[str, Any]:
    """The ``vector_layers`` entry of one source."""
    attrs = hex_attributes(source) if source.hex else feature_attributes(source)
    fields = {name: field_type(kind) for name, kind in attrs.items()}
    layer = source.layer
    if not source.hex and (layer.cluster_below > source.minzoom or layer.cluster_cell_max):
        fields["count"] = "Number"
    kind = "H3 cells with counts of " if source.hex else ""
    entry = {
        "id": source.name,
        "description": kind + (source.layer.description or source.layer.title),
        "minzoom": source.minzoom,
        "maxzoom": source.maxzoom,
        "fields": fields,
    }
    return entry


async def layer_bounds(db: Fetcher, source: Source) -> BBox | None:
    """The lon/lat extent of a layer's rows (from planner statistics when there are any),
    remembered for a few minutes; None when it has no rows."""
    layer = source.layer
    now = time.monotonic()
    cached = _bounds.get((id(db), layer.id))
    if cached and now - cached[0] < BOUNDS_SECONDS:
        return cached[1]
    schema, _, table = layer.table.rpartition(".")
    geom = layer.geometry_column
    estimated = (
        f"ST_EstimatedExtent({_literal(schema or 'public')}, {_literal(table)}, {_literal(geom)})"
    )
    sql = (
        "SELECT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b) FROM (SELECT ST_Transform("
        f"ST_SetSRID(coalesce({estimated}::geometry, (SELECT ST_Extent({quoted(geom)})::geometry"
        f" FROM {quoted(layer.table)})), {layer.srid}), 4326) AS b) AS e"
    )
    row = await db.fetchrow(sql)
    box = tuple(float(v) for v in row) if row and row[0] is not None else None
    _bounds[(id(db), layer.id)] = (now, box)  # type: ignore[assignment]
    return box  # type: ignore[return-value]


def _literal(text: str) -> str:
    """A catalog identifier (plain, checked) as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def union(boxes: list[BBox]) -> BBox:
    """The box holding every box (the world when there are none)."""
    if not boxes:
        return WORLD
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


async def tilejson(
    db: Fetcher, sources: list[Source], base: str, filters: TileFilters
) -> dict[str, Any]:
    """The TileJSON of ``sources`` served from ``base`` with ``filters`` in the tile URL."""
    names = ",".join(s.name for s in sources)
    query = filters.key()
    url = f"{base}/tiles/{names}/{{z}}/{{x}}/{{y}}.mvt" + (f"?{query}" if query else "")
    found = [b for s in sources if (b := await layer_bounds(db, s)) is not None]
    bounds = union(found)
    minzoom = min(s.minzoom for s in sources)
    maxzoom = max(s.maxzoom for s in sources)
    center_zoom = max(minzoom, min(maxzoom, 12))
    return {
        "tilejson": TILEJSON_VERSION,
        "name": names,
        "description": "; ".join(s.layer.title for s in sources),
        "scheme": "xyz",
        "tiles": [url],
        "minzoom": minzoom,
        "maxzoom": maxzoom,
        "bounds": list(bounds),
        "center": [(bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2, center_zoom],
        "vector_layers": [vector_layer(s) for s in sources],
    }
