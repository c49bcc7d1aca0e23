"""Read CSV files whose rows carry coordinates (lon/lat or x/y columns) or WKT geometries.

Coordinate columns are found by their usual names (any case; lon/lat before a WKT column)
or named by the caller. A CSV states no CRS: columns named lon/lng/long/longitude and
lat/latitude say the values are degrees, taken as EPSG:4326; x/y and WKT columns need
``--src-crs``. Every other field is read as text and typed later against the target layer.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pyogrio
import shapely

from etl.imports.report import Problem, refuse
from etl.imports.source_table import SourceTable
from etl.imports.vector_source import READ_ERRORS, unreadable
from gis.errors import BadRequest

LON_NAMES = ("lon", "lng", "long", "longitude", "x")
LAT_NAMES = ("lat", "latitude", "y")
WKT_NAMES = ("wkt", "geometry", "geom", "the_geom", "shape")
DEGREE_NAMES = {"lon", "lng", "long", "longitude", "lat", "latitude"}


def find_column(fields: list[str], wanted: str | None, usual: tuple[str, ...]) -> str | None:
    """The field named ``wanted`` (checked), else the first with one of the usual names."""
    by_lower = {f.lower(): f for f in fields}
    if wanted is not None:
        if wanted.lower() not in by_lower:
            raise BadRequest(
                f"the CSV has no column {wanted!r}; its columns: {', '.join(fields)}",
                code="unknown_field",
            )
        return by_lower[wanted.lower()]
    return next((by_lower[n] for n in usual if n in by_lower), None)


def parse_numbers(values: np.ndarray, field: str, table: SourceTable) -> tuple[np.ndarray, list]:
    """The column as float64 and a problem for every row that is not a number."""
    numbers = np.full(len(values), np.nan)
    present = np.array([v is not None for v in values.tolist()], dtype=bool)
    try:
        numbers[present] = values[present].astype(np.float64)
        bad = np.flatnonzero(present & ~np.isfinite(numbers))
    except ValueError:
        bad = []
        for i in np.flatnonzero(present).tolist():
            try:
                numbers[i] = float(values[i])
            except ValueError:
                bad.append(i)
    problems = [Problem(table.label(i), f"{field} {values[i]!r} is not a number") for i in bad]
    problems += [Problem(table.label(i), f"{field} is empty") for i in np.flatnonzero(~present)]
    return numbers, problems


def read_csv(
    path: Path,
    lon_field: str | None = None,
    lat_field: str | None = None,
    wkt_field: str | None = None,
) -> SourceTable:
    """The rows of a CSV file with a point per lon/lat (x/y) pair or a WKT geometry."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            meta, _, _, fields = pyogrio.raw.read(
                path, read_geometry=False, EMPTY_STRING_AS_NULL="YES", AUTODETECT_TYPE="NO"
            )
    except READ_ERRORS as exc:
        raise unreadable(path, exc) from exc
    columns = {str(n): v for n, v in zip(meta["fields"], fields, strict=True)}
    names = list(columns)
    table = SourceTable(columns=columns, row_kind="line", first_row=2)
    if wkt_field is not None:
        return _with_wkt(table, find_column(names, wkt_field, ()))
    lon = find_column(names, lon_field, LON_NAMES)
    lat = find_column(names, lat_field, LAT_NAMES)
    wkt = find_column(names, None, WKT_NAMES)
    if (lon is None or lat is None) and wkt is not None:
        return _with_wkt(table, wkt)
    if lon is None or lat is None:
        raise BadRequest(
            f"{path.name}: no coordinate columns found (looked for {'/'.join(LON_NAMES)} and "
            f"{'/'.join(LAT_NAMES)}, or a WKT column {'/'.join(WKT_NAMES)}); name them with "
            f"--lon-field/--lat-field or --wkt-field. Columns: {', '.join(names)}",
            code="no_coordinates",
        )
    return _with_points(table, lon, lat)


def _with_points(table: SourceTable, lon: str, lat: str) -> SourceTable:
    x, x_problems = parse_numbers(table.columns[lon], lon, table)
    y, y_problems = parse_numbers(table.columns[lat], lat, table)
    problems = x_problems + y_problems
    if problems:
        raise refuse("coordinates that are not numbers", problems, "invalid_coordinates")
    degrees = lon.lower() in DEGREE_NAMES and lat.lower() in DEGREE_NAMES
    columns = {k: v for k, v in table.columns.items() if k not in (lon, lat)}
    table.columns, table.xy = columns, (x, y)
    if degrees:
        table.declared_crs = "EPSG:4326"
        table.crs_note = f"EPSG:4326 (the columns {lon}/{lat} hold degrees)"
        outside = np.flatnonzero((np.abs(x) > 180) | (np.abs(y) > 90))
        if len(outside):
            problems = [
                Problem(table.label(i), f"({x[i]}, {y[i]}) is not a longitude/latitude")
                for i in outside.tolist()
            ]
            raise refuse(
                f"{lon}/{lat} values out of range (use --src-crs and x/y columns for "
                "projected coordinates)",
                problems,
                "invalid_coordinates",
            )
    return table


def _with_wkt(table: SourceTable, wkt: str) -> SourceTable:
    text = table.columns[wkt]
    geometry = shapely.from_wkt(text, on_invalid="ignore")
    bad = np.flatnonzero(shapely.is_missing(geometry) & np.array([t is not None for t in text]))
    if len(bad):
        problems = [
            Problem(table.label(i), f"{wkt} is not WKT: {str(text[i])[:60]!r}")
            for i in bad.tolist()
        ]
        raise refuse(f"unreadable geometries in column {wkt}", problems, "invalid_geometry")
    table.columns = {k: v for k, v in table.columns.items() if k != wkt}
    table.geometry = geometry
    return table
