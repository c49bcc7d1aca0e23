"""The table behind a layer, as the database has it: typed columns, the geometry's type,
the columns CityHex manages itself (id, version, h3, the 3857 copy)."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from etl.imports.property_types import ColumnType, column_type
from gis.errors import BadRequest, NotFound
from layers.catalog.registry import Layer

COLUMNS_SQL = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.atthasdef,
       a.attgenerated <> '' OR a.attidentity <> ''
FROM pg_attribute a
WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
GEOMETRY_TYPE_SQL = """
SELECT upper(type) FROM geometry_columns
WHERE f_table_schema = coalesce(%s, current_schema()) AND f_table_name = %s
  AND f_geometry_column = %s
"""


@dataclass(frozen=True)
class TableColumn:
    """One column: its type, whether it must have a value, and whether the server fills it."""

    name: str
    ctype: ColumnType
    not_null: bool
    has_default: bool
    generated: bool


@dataclass(frozen=True)
class TargetTable:
    """A layer and the columns of its table."""

    layer: Layer
    columns: dict[str, TableColumn]
    geometry_type: str

    @property
    def managed(self) -> set[str]:
        """Columns the importer never fills from the source."""
        layer = self.layer
        names = {
            layer.geometry_column,
            layer.geometry_3857_column,
            *layer.cell_columns.values(),
            layer.version_column,
            layer.extra_properties_column,
        }
        return {n for n in names if n} | {c.name for c in self.columns.values() if c.generated}

    def typed_properties(self) -> dict[str, TableColumn]:
        """The catalog properties stored in columns the source may fill."""
        return {
            name: self.columns[name]
            for name in self.layer.properties
            if name in self.columns and name not in self.managed
        }

    def required(self) -> list[str]:
        """Property columns that must have a value and have no default."""
        return [
            c.name for c in self.typed_properties().values() if c.not_null and not c.has_default
        ]


def split_table_name(table: str) -> tuple[str | None, str]:
    """(schema or None, table) of a possibly schema-qualified name."""
    schema, _, name = table.rpartition(".")
    return schema or None, name


def describe_target(conn: psycopg.Connection, layer: Layer) -> TargetTable:
    """The columns of ``layer``'s table; NotFound when the table is missing, BadRequest for
    a layer CityHex does not import into (the H3 grid)."""
    if layer.id_type == "h3":
        raise BadRequest(
            f"layer {layer.id!r} is made by 'cityhex grid build', not imported; "
            "use 'cityhex raster zonal' to add values to its cells",
            code="not_importable",
        )
    rows = conn.execute(COLUMNS_SQL, (layer.table,)).fetchall()
    if not rows:
        raise NotFound(
            f"the table {layer.table!r} of layer {layer.id!r} does not exist "
            "(run 'cityhex migrate'?)",
            code="missing_table",
        )
    columns = {
        name: TableColumn(name, column_type(sql_type), not_null, has_default, generated)
        for name, sql_type, not_null, has_default, generated in rows
    }
    schema, name = split_table_name(layer.table)
    found = conn.execute(GEOMETRY_TYPE_SQL, (schema, name, layer.geometry_column)).fetchone()
    return TargetTable(layer, columns, found[0] if found else "GEOMETRY")
