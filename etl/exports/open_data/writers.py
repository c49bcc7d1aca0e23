"""Open datasets written to files: CSV and GeoJSON row by row as the chunks arrive,
GeoPackage with pyogrio a chunk at a time, so no file is ever held whole in memory.

Geometries are lon/lat (EPSG:4326). In CSV a spatial dataset has a last column ``wkt``.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyogrio
import shapely

from etl.exports.open_data.datasets import Dataset, FieldType
from etl.exports.open_data.sources import Chunk

Writer = Callable[[Path, Dataset, Iterable[Chunk]], int]


def write_csv(path: Path, dataset: Dataset, chunks: Iterable[Chunk]) -> int:
    """Write ``dataset`` as CSV (UTF-8, a header row, geometry as WKT); the rows written."""
    spatial = dataset.geometry_type is not None
    written = 0
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow([*dataset.field_names, *(["wkt"] if spatial else [])])
        for chunk in chunks:
            if chunk.geometries is None:
                writer.writerows(chunk.rows)
            else:
                wkt = shapely.to_wkt(chunk.geometries, rounding_precision=-1).tolist()
                writer.writerows((*row, text) for row, text in zip(chunk.rows, wkt, strict=True))
            written += len(chunk.rows)
    return written


def write_geojson(path: Path, dataset: Dataset, chunks: Iterable[Chunk]) -> int:
    """Write ``dataset`` as a GeoJSON FeatureCollection (a table's features have a null
    geometry); the features written."""
    names = dataset.field_names
    written = 0
    with path.open("wb") as out:
        out.write(b'{"type":"FeatureCollection","name":' + orjson.dumps(dataset.id))
        out.write(b',"features":[\n')
        for chunk in chunks:
            if chunk.geometries is None:
                geometries: Iterable[str] = repeat("null")
            else:
                geometries = shapely.to_geojson(chunk.geometries).tolist()
            for row, geometry in zip(chunk.rows, geometries, strict=False):
                if written:
                    out.write(b",\n")
                properties = orjson.dumps(dict(zip(names, row, strict=True)))
                out.write(b'{"type":"Feature","properties":' + properties)
                out.write(b',"geometry":' + geometry.encode() + b"}")
                written += 1
        out.write(b"\n]}\n")
    return written


def write_gpkg(path: Path, dataset: Dataset, chunks: Iterable[Chunk]) -> int:
    """Write ``dataset`` as one GeoPackage layer named after it (a table: no geometry
    column); the features written."""
    written = 0
    for chunk in chunks:
        _write_gpkg_chunk(path, dataset, chunk, append=written > 0)
        written += len(chunk.rows)
    if not written:
        spatial = dataset.geometry_type is not None
        empty = Chunk([], np.array([], dtype=object) if spatial else None)
        _write_gpkg_chunk(path, dataset, empty, append=False)
    return written


def _write_gpkg_chunk(path: Path, dataset: Dataset, chunk: Chunk, append: bool) -> None:
    columns = list(zip(*chunk.rows, strict=True)) if chunk.rows else [()] * len(dataset.fields)
    arrays = [_field_array(f.type, c) for f, c in zip(dataset.fields, columns, strict=True)]
    spatial = chunk.geometries is not None
    pyogrio.raw.write(
        path,
        shapely.to_wkb(chunk.geometries) if spatial else None,
        [values for values, _ in arrays],
        dataset.field_names,
        field_mask=[mask for _, mask in arrays],
        layer=dataset.id,
        driver="GPKG",
        geometry_type=dataset.geometry_type,
        crs="EPSG:4326" if spatial else None,
        append=append,
    )


def _field_array(kind: FieldType, values: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """A column of ``kind`` as pyogrio writes it, and its mask of missing values."""
    mask = np.array([v is None for v in values], dtype=bool)
    if kind == "integer":
        return np.array([0 if v is None else v for v in values], dtype=np.int64), mask
    if kind == "number":
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64), mask
    return np.array(values, dtype=object), mask


@dataclass(frozen=True)
class Format:
    """A download format: its file suffix, media type, name and writer."""

    suffix: str
    media_type: str
    title: str
    write: Writer


FORMATS = {
    f.suffix: f
    for f in (
        Format("csv", "text/csv", "CSV", write_csv),
        Format("geojson", "application/geo+json", "GeoJSON", write_geojson),
        Format("gpkg", "application/geopackage+sqlite3", "GeoPackage", write_gpkg),
    )
}
