"""A new layer from a file's schema (``import --create``): a table with typed columns, the
EPSG:4326 geometry and its stored EPSG:3857 copy, GiST indexes, the H3 cell, and a catalog
entry in <CITYHEX_HOME>/catalog.d/<layer>.toml that tiles, Features and queries all read.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import psycopg
import shapely

from etl.imports.field_plan import launder
from etl.imports.property_types import FALSE_WORDS, TRUE_WORDS, parse_datetime
from etl.imports.source_table import SourceTable
from gis.errors import BadRequest, Conflict
from gis.hexgrid import EXTRA_LEVELS, level_columns
from layers.catalog.registry import Layer, created_layers_dir, load_catalog
from layers.db.tile_keys import create_index_sql

LAYER_ID = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
RESERVED = ("id", "properties", "version", "h3", *level_columns().values(), "geom", "geom_3857")
SQL_TYPES = {
    "integer": "bigint",
    "number": "double precision",
    "boolean": "boolean",
    "datetime": "timestamptz",
    "string": "text",
    "object": "jsonb",
}
PRIVATE_READERS = ["app", "inspector", "editor", "dispatcher"]
INTEGER = re.compile(r"^[+-]?[0-9]{1,18}$")
DATE_START = re.compile(r"^[0-9]{4}[-/][0-9]{2}[-/][0-9]{2}")
GEOMETRY_TYPES = {
    0: "Point",
    1: "LineString",
    2: "LineString",
    3: "Polygon",
    4: "MultiPoint",
    5: "MultiLineString",
    6: "MultiPolygon",
    7: "GeometryCollection",
}


@dataclass(frozen=True)
class NewLayer:
    """What ``--create`` makes: the catalog entry and the kind of every typed column."""

    layer: Layer
    column_kinds: dict[str, str]


def infer_kind(values: np.ndarray, declared: str | None) -> str:
    """The kind of a field: as declared by a typed format, else (CSV) judged by its values."""
    if declared is not None:
        return "datetime" if declared == "date" else declared
    texts = [str(v).strip() for v in values.tolist() if v is not None]
    if not texts:
        return "string"
    if all(INTEGER.match(t) for t in texts):
        return "integer"
    if all(_is_float(t) for t in texts):
        return "number"
    if all(t.lower() in TRUE_WORDS | FALSE_WORDS and not t.isdigit() for t in texts):
        return "boolean"
    if all(DATE_START.match(t) and _is_datetime(t) for t in texts):
        return "datetime"
    return "string"


def _is_float(text: str) -> bool:
    try:
        return float(text) == float(text) and abs(float(text)) != float("inf")
    except ValueError:
        return False


def _is_datetime(text: str) -> bool:
    try:
        parse_datetime(text)
    except ValueError:
        return False
    return True


def geometry_type_of(table: SourceTable) -> str:
    """The one geometry type of the source (a single type becomes multi when both occur),
    or Geometry for a mix."""
    if table.geometry is None:
        return "Point"
    ids = set(shapely.get_type_id(table.geometry[~shapely.is_missing(table.geometry)]).tolist())
    names = {GEOMETRY_TYPES[i] for i in ids}
    if len(names) == 1:
        return names.pop()
    multis = {n if n.startswith("Multi") else f"Multi{n}" for n in names}
    return (
        multis.pop() if len(multis) == 1 and "MultiGeometryCollection" not in multis else "Geometry"
    )


def plan_new_layer(
    layer_id: str,
    table: SourceTable,
    source_name: str,
    title: str | None,
    time_field: str | None,
    public: bool,
) -> NewLayer:
    """The layer ``--create`` would make from ``table`` (fields already renamed by --map)."""
    if not LAYER_ID.match(layer_id) or layer_id in RESERVED:
        raise BadRequest(
            f"{layer_id!r} cannot name a new layer: use lower-case letters, "
            "digits and '_', starting with a letter",
            code="invalid_layer_name",
        )
    if layer_id in load_catalog():
        raise Conflict(
            f"layer {layer_id!r} exists already: import into it without --create",
            code="layer_exists",
        )
    kinds: dict[str, str] = {}
    for name, values in table.columns.items():
        column = launder(name)
        if column is None or column in RESERVED or column in kinds:
            continue
        kinds[column] = infer_kind(values, table.kinds.get(name))
    time_column = _time_column(time_field, kinds)
    geometry_type = geometry_type_of(table)
    layer = Layer(
        id=layer_id,
        title=title or layer_id.replace("_", " ").capitalize(),
        description=f"Imported from {source_name}.",
        table=layer_id,
        geometry_type=geometry_type,
        geometry_3857_column="geom_3857",
        tile_key=geometry_type == "Point",
        h3_column="h3",
        h3_levels=list(EXTRA_LEVELS),
        version_column="version",
        time_column=time_column,
        extra_properties_column="properties",
        properties={c: k for c, k in kinds.items()},
        public=public,
        read_by=[] if public else PRIVATE_READERS,
        editable_by=["editor"],
    )
    return NewLayer(layer, kinds)


def _time_column(time_field: str | None, kinds: dict[str, str]) -> str | None:
    if time_field is None:
        return None
    column = launder(time_field)
    if column not in kinds:
        raise BadRequest(
            f"--time-field {time_field!r} is not a field of the file; its fields: "
            f"{', '.join(kinds)}",
            code="unknown_field",
        )
    if kinds[column] not in ("datetime", "string"):
        raise BadRequest(
            f"--time-field {time_field!r} holds {kinds[column]} values, not dates and times",
            code="invalid_time_field",
        )
    kinds[column] = "datetime"
    return column


def create_table(conn: psycopg.Connection, new: NewLayer) -> None:
    """Make the layer's table (no indexes yet: they are built after the rows are in)."""
    layer = new.layer
    if conn.execute("SELECT to_regclass(%s)", (layer.table,)).fetchone()[0] is not None:
        raise Conflict(
            f"a table named {layer.table!r} exists already; choose another layer name",
            code="layer_exists",
        )
    geom = layer.geometry_type
    typed = "".join(f"    {c} {SQL_TYPES[k]},\n" for c, k in new.column_kinds.items())
    cells = "".join(f"    {c} bigint,\n" for c in layer.cell_columns.values())
    conn.execute(
        f"CREATE TABLE {layer.table} (\n"
        "    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,\n"
        f"{typed}"
        "    properties jsonb NOT NULL DEFAULT '{}'::jsonb,\n"
        "    version integer NOT NULL DEFAULT 1,\n"
        f"{cells}"
        f"    geom geometry({geom}, 4326) NOT NULL,\n"
        f"    geom_3857 geometry({geom}, 3857) "
        "GENERATED ALWAYS AS (ST_Transform(geom, 3857)) STORED\n)"
    )


def create_indexes(conn: psycopg.Connection, new: NewLayer) -> None:
    """The GiST indexes of both geometries, the tile-key index of a point layer, and the
    indexes of the H3 and time columns."""
    table = new.layer.table
    conn.execute(f"CREATE INDEX ix_{table}_geom ON {table} USING gist (geom)")
    conn.execute(f"CREATE INDEX ix_{table}_geom_3857 ON {table} USING gist (geom_3857)")
    if new.layer.tile_key:
        conn.execute(create_index_sql(table, "geom_3857"))
    conn.execute(f"CREATE INDEX ix_{table}_h3 ON {table} (h3)")
    if new.layer.time_column:
        column = new.layer.time_column
        conn.execute(f"CREATE INDEX ix_{table}_{column} ON {table} ({column})")
    conn.execute(f"ANALYZE {table}")


def layer_toml(layer: Layer) -> str:
    """The catalog entry of ``layer`` as TOML (the format of layers/catalog.toml)."""
    data = layer.model_dump(exclude={"id"}, exclude_none=True)
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    lines = [f"[layers.{layer.id}]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in data.items() if k not in tables]
    for name, table in tables.items():
        lines.append(f"\n[layers.{layer.id}.{name}]")
        lines += [f"{orjson.dumps(k).decode()} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return orjson.dumps(str(value)).decode()


def write_catalog_entry(layer: Layer) -> Path:
    """Publish ``layer``: write its TOML file in catalog.d (every process's catalog reads it
    from its next load on)."""
    folder = created_layers_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{layer.id}.toml"
    draft = path.with_suffix(".toml.tmp")
    draft.write_text(layer_toml(layer), encoding="utf-8")
    os.replace(draft, path)
    return path
