"""Helpers of the import tests: a database of their own, files written in any CRS, lamps."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pyogrio
import pyproj
import shapely

from tests.support import create_database

CENTRE = (114.0579, 22.5431)  # Futian, Shenzhen
DRIVERS = {".geojson": "GeoJSON", ".gpkg": "GPKG", ".fgb": "FlatGeobuf", ".shp": "ESRI Shapefile"}


def fresh_database(admin_url: str, name: str) -> str:
    """A new migrated database for one test module (other tests write to the shared one)."""
    return create_database(admin_url, name)


def scalar(url: str, sql: str, params: tuple = ()) -> Any:
    """The single value ``sql`` returns."""
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchone()[0]


def lonlat_points(n: int, seed: int = 1, spread: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random lon/lat points around the centre."""
    rng = np.random.default_rng(seed)
    return (
        CENTRE[0] + rng.uniform(-spread, spread, n),
        CENTRE[1] + rng.uniform(-spread, spread, n),
    )


def to_crs(geoms: np.ndarray, epsg: int) -> np.ndarray:
    """Lon/lat geometries with coordinates in EPSG:``epsg`` (pyproj, x/y order)."""
    if epsg == 4326:
        return geoms
    move = pyproj.Transformer.from_crs(4326, epsg, always_xy=True)
    return shapely.transform(geoms, lambda c: np.column_stack(move.transform(c[:, 0], c[:, 1])))


def write_file(
    path: Path,
    geoms_lonlat: np.ndarray,
    fields: dict[str, np.ndarray],
    epsg: int | None = 4326,
    layer: str | None = None,
) -> Path:
    """Write lon/lat geometries, stored in EPSG:``epsg`` (None: no CRS at all), and fields."""
    geoms = to_crs(geoms_lonlat, epsg or 4326)
    types = set(shapely.get_type_id(geoms).tolist())
    kind = shapely.get_type_id(geoms[0]) if len(types) == 1 else None
    names = [
        "Point",
        "LineString",
        "LinearRing",
        "Polygon",
        "MultiPoint",
        "MultiLineString",
        "MultiPolygon",
    ]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="'crs' was not provided")
        pyogrio.raw.write(
            path,
            shapely.to_wkb(geoms),
            list(fields.values()),
            list(fields),
            layer=layer,
            driver=DRIVERS[path.suffix],
            geometry_type=names[kind] if kind is not None else "Unknown",
            crs=f"EPSG:{epsg}" if epsg else None,
        )
    return path


def lamp_fields(n: int, first_serial: int = 1) -> dict[str, np.ndarray]:
    """Asset fields of ``n`` street lamps with valid 16-digit codes."""
    return {
        "code": np.array(
            [f"4403040117{s:06d}" for s in range(first_serial, first_serial + n)], dtype=object
        ),
        "class_code": np.array(["0117"] * n, dtype=object),
        "kind": np.array(["street_lamp"] * n, dtype=object),
        "name": np.array([f"lamp {i}" for i in range(n)], dtype=object),
        "height_m": np.linspace(6.0, 12.0, n),
        "pole": np.array([f"P-{i}" for i in range(n)], dtype=object),
    }
