"""From checked source rows to the rows written: typed property columns (every value of the
column's type, or a problem naming field and row), the layer's own rules, required values,
upsert keys, and the COPY text of it all."""

from __future__ import annotations

import numpy as np
import psycopg

from etl.copytext.ewkb import ewkb_hex, ewkb_hex_points
from etl.copytext.fields import escape_texts
from etl.copytext.writer import FieldMaker
from etl.imports.asset_rules import apply_asset_rules
from etl.imports.copy_writer import RowsToWrite, UpsertKey
from etl.imports.district_rules import district_problems
from etl.imports.extra_properties import extra_objects
from etl.imports.feature_rows import h3_texts
from etl.imports.field_plan import FieldPlan
from etl.imports.geometry_prep import PreparedGeometry
from etl.imports.options import ImportOptions
from etl.imports.property_types import Coerced, coerce
from etl.imports.report import Problem
from etl.imports.source_table import SourceTable
from etl.imports.target_table import TargetTable
from gis.errors import BadRequest


def typed_columns(
    table: SourceTable, target: TargetTable, plan: FieldPlan
) -> tuple[dict[str, Coerced], list[Problem]]:
    """Every field bound for a typed column, coerced to that column's type."""
    columns: dict[str, Coerced] = {}
    problems: list[Problem] = []
    for field, column in plan.typed.items():
        coerced, found = coerce(table.columns[field], target.columns[column].ctype, field, table)
        columns[column] = coerced
        problems += found
    return columns, problems


def layer_rules(
    conn: psycopg.Connection,
    target: TargetTable,
    columns: dict[str, Coerced],
    table: SourceTable,
    geometry: PreparedGeometry,
    options: ImportOptions,
) -> list[Problem]:
    """The problems the layer's own rules find (asset codes and states, district codes)."""
    if target.layer.table == "assets":
        return apply_asset_rules(conn, columns, table, geometry.lon, geometry.lat, options.division)
    if target.layer.table == "districts":
        return district_problems(columns, table)
    return []


def missing_values(
    target: TargetTable, columns: dict[str, Coerced], table: SourceTable
) -> list[Problem]:
    """A problem for each row lacking a value the layer requires; BadRequest when the file
    has no field for a required property at all."""
    required = dict.fromkeys([*target.required(), *target.layer.required])
    absent = [
        name
        for name in required
        if name not in columns
        and name in target.typed_properties()
        and not target.columns[name].has_default
    ]
    if absent:
        raise BadRequest(
            f"layer {target.layer.id!r} needs {', '.join(absent)} in every row and the file "
            f"has no such field: name the field that holds it with --map FIELD={absent[0]}",
            code="missing_field",
        )
    return [
        Problem(table.label(i), f"{name} is empty")
        for name in required
        if name in columns
        for i in np.flatnonzero(columns[name].null).tolist()
    ]


def upsert_key(
    options: ImportOptions,
    target: TargetTable,
    columns: dict[str, Coerced],
    plan: FieldPlan,
    table: SourceTable,
) -> tuple[UpsertKey | None, list[Problem]]:
    """The key an upsert matches rows on, and a problem for each missing or repeated key."""
    name = options.key
    if options.mode != "upsert" or name is None:
        return None, []
    extra = target.layer.extra_properties_column
    if name in columns:
        key, values = UpsertKey(name), columns[name].values.tolist()
        null = columns[name].null
    elif name in plan.extra and extra:
        key, values = UpsertKey(extra, name), table.columns[name].tolist()
        null = np.array([v is None for v in values], dtype=bool)
    else:
        raise BadRequest(
            f"--key {name!r} is not a field of the file (after --map)", code="unknown_key"
        )
    problems = [
        Problem(table.label(i), f"key {name} is empty") for i in np.flatnonzero(null).tolist()
    ]
    seen: dict[object, int] = {}
    for i, value in enumerate(values):
        if value is not None and seen.setdefault(value, i) != i:
            problems.append(
                Problem(
                    table.label(i), f"key {name} = {value!r} repeats {table.label(seen[value])}"
                )
            )
    return key, problems


def build_rows(
    table: SourceTable,
    geometry: PreparedGeometry,
    columns: dict[str, Coerced],
    plan: FieldPlan,
    target: TargetTable,
    actor: str,
) -> RowsToWrite:
    """The COPY rows: typed columns, extra properties, actor, H3 cells, geometry."""
    layer = target.layer
    names = list(columns)
    makers: list[FieldMaker] = [columns[c].texts_of for c in names]
    if plan.extra and layer.extra_properties_column:
        extras = {f: table.columns[f] for f in plan.extra}
        names.append(layer.extra_properties_column)
        makers.append(
            lambda a, b: escape_texts(
                extra_objects({f: v[a:b] for f, v in extras.items()}, table.kinds)
            )
        )
    if "updated_by" in target.columns and "updated_by" not in columns:
        names.append("updated_by")
        makers.append(lambda a, b: escape_texts([actor]) * (b - a))
    lon, lat = geometry.lon, geometry.lat
    for res, column in layer.cell_columns.items():
        names.append(column)
        makers.append(lambda a, b, res=res: h3_texts(lon[a:b], lat[a:b], res))
    names.append(layer.geometry_column)
    if geometry.is_points:
        makers.append(lambda a, b: ewkb_hex_points(lon[a:b], lat[a:b]))
    else:
        geoms = geometry.geoms
        makers.append(lambda a, b: ewkb_hex(geoms[a:b]))
    return RowsToWrite(names, makers, len(table), table.label)


def upsert_assignments(
    rows: RowsToWrite, target: TargetTable, key: UpsertKey, keep: set[str]
) -> dict[str, str]:
    """What an upsert sets on a matched row: the file's values (extra properties merged),
    a new version, the time of the change; never the columns in ``keep``."""
    layer = target.layer
    plain_key = key.column if key.json_property is None else None
    sets = {c: f"s.{c}" for c in rows.columns if c not in keep and c != plain_key}
    if layer.extra_properties_column in sets:
        column = layer.extra_properties_column
        sets[column] = f"t.{column} || s.{column}"
    if layer.version_column in target.columns:
        sets[layer.version_column] = f"t.{layer.version_column} + 1"
    if "updated_at" in target.columns and "updated_at" not in sets:
        sets["updated_at"] = "now()"
    return sets


def kept_on_update(target: TargetTable, plan: FieldPlan) -> set[str]:
    """Columns an upsert leaves as they are: an asset's code when the importer made it."""
    made_code = target.layer.table == "assets" and "code" not in plan.typed.values()
    return {"code"} if made_code else set()
