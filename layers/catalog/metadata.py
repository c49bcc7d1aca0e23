"""What a layer holds, as OGC API Features describes it: its spatial extent and its
queryables (a JSON Schema of the catalog properties plus the free-form keys imports
brought along, found in the data).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine

from layers.catalog.identifiers import column, quote
from layers.catalog.registry import Layer

log = logging.getLogger("cityhex")
EXTENT_TTL_S = 300.0
EXTRA_KEYS_SAMPLE = 20_000
MAX_EXTRA_KEYS = 500
GEOMETRY_FORMATS = {
    "point": "geometry-point",
    "multipoint": "geometry-multipoint",
    "linestring": "geometry-linestring",
    "multilinestring": "geometry-multilinestring",
    "polygon": "geometry-polygon",
    "multipolygon": "geometry-multipolygon",
}
JSON_TYPES = {
    "string": {"type": "string"},
    "integer": {"type": "integer"},
    "number": {"type": "number"},
    "boolean": {"type": "boolean"},
    "datetime": {"type": "string", "format": "date-time"},
    "object": {"type": "object"},
}
JSONB_TYPES = {
    "string": "string",
    "number": "number",
    "boolean": "boolean",
    "object": "object",
    "array": "array",
}

_extents: dict[tuple[str, str], tuple[float, list[float] | None]] = {}
"""Extents by database and layer, with the time they expire."""


async def layer_extent(engine: AsyncEngine, layer: Layer) -> list[float] | None:
    """The lon/lat box of the layer's features (None when it is empty), cached a while for
    each database."""
    key = (engine.url.render_as_string(hide_password=True), layer.id)
    cached = _extents.get(key)
    if cached and cached[0] > time.monotonic():
        return cached[1]
    geom = column(layer, layer.geometry_column)
    box = f"ST_Extent({geom})" if layer.srid == 4326 else (f"ST_Extent(ST_Transform({geom}, 4326))")
    sql = (
        f"SELECT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b) FROM "
        f"(SELECT {box} AS b FROM {quote(layer.table)} AS t) s"
    )
    try:
        async with engine.connect() as conn:
            row = (await conn.execute(text(sql))).first()
    except ProgrammingError:  # a catalog entry whose table is missing: no extent to show
        log.warning("layer %s: cannot read the extent of %s", layer.id, layer.table)
        row = None
    extent = [float(v) for v in row] if row and row[0] is not None else None
    _extents[key] = (time.monotonic() + EXTENT_TTL_S, extent)
    return extent


async def extra_keys(engine: AsyncEngine, layer: Layer) -> dict[str, str | None]:
    """The keys found in the layer's free-form properties and their JSON type (None when
    the values mix types), from a sample of the newest rows."""
    found = {}
    for key, kinds in (await _extra_key_kinds(engine, layer)).items():
        kinds = [k for k in kinds if k != "null"]
        found[key] = JSONB_TYPES.get(kinds[0]) if len(kinds) == 1 else None
    return found


async def _extra_key_kinds(engine: AsyncEngine, layer: Layer) -> dict[str, list[str]]:
    """The keys found in a sample of the newest rows' free-form properties, each with the
    JSON types (jsonb_typeof) of its values."""
    if not layer.extra_properties_column:
        return {}
    extras = column(layer, layer.extra_properties_column)
    sql = (
        f"SELECT e.key, array_agg(DISTINCT jsonb_typeof(e.value)) FROM "
        f"(SELECT {extras} AS p FROM {quote(layer.table)} AS t "
        f"ORDER BY {column(layer, layer.id_column)} DESC LIMIT :n) s, "
        f"jsonb_each(CASE WHEN jsonb_typeof(s.p) = 'object' THEN s.p END) AS e "
        f"GROUP BY e.key ORDER BY e.key LIMIT :m"
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(text(sql), {"n": EXTRA_KEYS_SAMPLE, "m": MAX_EXTRA_KEYS})).all()
    return {key: list(kinds) for key, kinds in rows}


NESTED_KEYS_TTL_S = 60.0
_nested_keys: dict[tuple[str, str], tuple[float, frozenset[str]]] = {}


async def nested_extra_keys(engine: AsyncEngine, layer: Layer) -> frozenset[str]:
    """The free-form keys holding an object or a list in the sample ``extra_keys`` reads,
    kept for ``NESTED_KEYS_TTL_S``."""
    key = (engine.url.render_as_string(hide_password=True), layer.id)
    cached = _nested_keys.get(key)
    if cached and cached[0] > time.monotonic():
        return cached[1]
    found = frozenset(
        name
        for name, kinds in (await _extra_key_kinds(engine, layer)).items()
        if {"object", "array"} & set(kinds)
    )
    _nested_keys[key] = (time.monotonic() + NESTED_KEYS_TTL_S, found)
    return found


async def with_hidden_extras(engine: AsyncEngine, view: Layer) -> Layer:
    """A caller's view of a layer that, when it shows free-form properties impersonally,
    hides the keys that hold nested values whole (a filter on one is a 400, as on a key
    named like personal data), so a filter cannot tell what the caller may not read."""
    if view.extras_view != "impersonal":
        return view
    hidden = await nested_extra_keys(engine, view)
    return view.model_copy(update={"hidden_extras": hidden}) if hidden else view


def _property_schema(layer: Layer, name: str, kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = {"title": name, **JSON_TYPES[kind]}
    if name in layer.patterns:
        schema["pattern"] = layer.patterns[name]
    if name in layer.enums:
        schema["enum"] = list(layer.enums[name])
    if name in layer.managed_columns or name in layer.readonly:
        schema["readOnly"] = True
    return schema


async def queryables(engine: AsyncEngine, layer: Layer) -> dict[str, Any]:
    """The layer's queryables as a JSON Schema (without ``$id``, which needs the URL)."""
    geometry = GEOMETRY_FORMATS.get(layer.geometry_type.lower(), "geometry-any")
    properties: dict[str, Any] = {
        "geometry": {"title": "geometry", "format": geometry, "x-ogc-role": "primary-geometry"},
        "id": {
            "title": "id",
            "x-ogc-role": "id",
            "type": "integer" if layer.id_type == "integer" else "string",
        },
    }
    for name, kind in layer.properties.items():
        properties[name] = _property_schema(layer, name, kind)
    if layer.time_column and layer.time_column in properties:
        properties[layer.time_column]["x-ogc-role"] = "primary-instant"
    for key, kind in (await extra_keys(engine, layer)).items():
        if key in properties or not layer.shows_extra(key):
            continue
        properties[key] = {"title": key, "description": "free-form property"}
        if kind:
            properties[key]["type"] = kind
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "title": layer.title,
        "description": layer.description,
        "properties": properties,
        "additionalProperties": layer.extras_view != "none" and bool(layer.extra_properties_column),
    }
