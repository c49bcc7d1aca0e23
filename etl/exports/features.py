"""Export a layer's features to GeoJSON, GeoPackage or FlatGeobuf in any CRS
(``cityhex export features --layer L -o FILE [--crs CRS]``).

Typed properties keep their types (times as ISO 8601 text, objects as JSON text); the extra
properties are spread into fields of their own. The file appears whole or not at all.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyogrio
import shapely

from etl.imports.source_crs import named_crs, wgs84_transformer
from etl.imports.target_table import COLUMNS_SQL
from gis.errors import BadRequest
from gis.hexgrid import to_hex
from layers.catalog.registry import Layer, load_catalog
from layers.db.job_connection import job_connection

DRIVERS = {".geojson": "GeoJSON", ".json": "GeoJSON", ".gpkg": "GPKG", ".fgb": "FlatGeobuf"}
GEOMETRY_TYPES = {"geometry": "Unknown"}


def export_features(url: str, layer_id: str, output: Path, crs: str = "EPSG:4326") -> int:
    """Write every feature of ``layer_id`` to ``output`` (its suffix picks the format) with
    coordinates in ``crs``; the number of features written."""
    output = Path(output)
    driver = DRIVERS.get(output.suffix.lower())
    if driver is None:
        raise BadRequest(
            f"cannot tell the format of {output.name}: use .geojson, .gpkg or .fgb",
            code="unknown_format",
        )
    target = named_crs(crs)
    layer = load_catalog().get(layer_id)
    with job_connection(url) as conn:
        present = {r[0] for r in conn.execute(COLUMNS_SQL, (layer.table,)).fetchall()}
        names = [p for p in layer.properties if p in present and p != layer.id_column]
        extra = layer.extra_properties_column if layer.extra_properties_column in present else None
        selected = [layer.id_column, *names, *([extra] if extra else [])]
        rows = conn.execute(
            f"SELECT {', '.join(selected)}, ST_AsBinary({layer.geometry_column}) "
            f"FROM {layer.table} ORDER BY {layer.id_column}"
        ).fetchall()
    columns = list(zip(*rows, strict=True)) if rows else [()] * (len(selected) + 1)
    fields = {"id": _ids(columns[0], layer)}
    fields.update({name: values for name, values in zip(names, columns[1:], strict=False)})
    if extra:
        for key, values in _spread(columns[len(names) + 1]).items():
            fields.setdefault(key, values)
    geometry = _geometries(columns[-1], target)
    _write(output, driver, geometry, fields, target, layer)
    return len(rows)


def _ids(values: tuple, layer: Layer) -> list[Any]:
    return [to_hex(v) for v in values] if layer.id_type == "h3" else list(values)


def _spread(objects: tuple) -> dict[str, list[Any]]:
    """The keys of the extra-property objects as columns (None where a row lacks the key)."""
    keys = dict.fromkeys(k for obj in objects for k in (obj or {}))
    return {k: [(obj or {}).get(k) for obj in objects] for k in keys}


def _geometries(wkb: tuple, crs: Any) -> np.ndarray:
    geoms = shapely.from_wkb(np.array([bytes(w) for w in wkb], dtype=object))
    move = wgs84_transformer(crs)
    if move is None or not len(geoms):
        return geoms

    def convert(coords: np.ndarray) -> np.ndarray:
        x, y = move.transform(coords[:, 0], coords[:, 1], direction="INVERSE")
        return np.column_stack([x, y])

    return shapely.transform(geoms, convert)


def _field_array(values: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """A column pyogrio can write, and its mask of missing values."""
    present = [v for v in values if v is not None]
    mask = np.array([v is None for v in values], dtype=bool)
    if present and all(isinstance(v, bool) for v in present):
        return np.array([bool(v) for v in values]), mask
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return np.array([v or 0 for v in values], dtype=np.int64), mask
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return np.array([np.nan if v is None else float(v) for v in values]), mask
    return np.array([None if v is None else _text(v) for v in values], dtype=object), mask


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return orjson.dumps(value, default=str).decode()


def _write(
    output: Path,
    driver: str,
    geometry: np.ndarray,
    fields: dict[str, list[Any]],
    crs: Any,
    layer: Layer,
) -> None:
    arrays = [_field_array(list(v)) for v in fields.values()]
    draft = output.with_name(f".{output.stem}.part{output.suffix}")
    draft.unlink(missing_ok=True)
    pyogrio.raw.write(
        draft,
        shapely.to_wkb(geometry),
        [a for a, _ in arrays],
        list(fields),
        field_mask=[m for _, m in arrays],
        layer=output.stem,
        driver=driver,
        geometry_type=GEOMETRY_TYPES.get(layer.geometry_type.lower(), layer.geometry_type),
        crs=f"EPSG:{crs.to_epsg()}" if crs.to_epsg() else crs.to_wkt(),
    )
    os.replace(draft, output)
