"""The CRS of a source: what ``--src-crs`` names, else what the file states; and the transform
of its coordinates to EPSG:4326 (lon/lat), on whole arrays at once.
"""

from __future__ import annotations

import numpy as np
import pyproj
import shapely
from pyproj.exceptions import CRSError

from gis.crs import parse_crs, transformer
from gis.errors import BadRequest, CityHexError, Unprocessable

WGS84 = 4326


def named_crs(text: str) -> pyproj.CRS:
    """The CRS a person named: EPSG code, URI or URN, a CRS name (CGCS2000), WKT or PROJ."""
    try:
        return pyproj.CRS.from_epsg(parse_crs(text, any_epsg=True).srid)
    except CityHexError:
        pass
    try:
        return pyproj.CRS.from_user_input(text)
    except CRSError:
        raise BadRequest(
            f"unknown CRS {text!r}: give an EPSG code (EPSG:4490 for CGCS2000, EPSG:32650 for "
            "UTM zone 50N), a CRS name, WKT or a PROJ string",
            code="unknown_crs",
        ) from None


def source_crs(declared: str | None, override: str | None, source: str) -> pyproj.CRS:
    """The CRS to read ``source`` in: ``override`` when given, else the declared one."""
    if override:
        return named_crs(override)
    if not declared:
        raise Unprocessable(
            f"{source} does not say which CRS its coordinates are in (a Shapefile without "
            ".prj, a CSV with x/y or WKT): name it with --src-crs, e.g. --src-crs EPSG:4490",
            code="missing_crs",
        )
    try:
        return pyproj.CRS.from_user_input(declared)
    except CRSError:
        raise Unprocessable(
            f"{source} declares a CRS that PROJ does not understand; name it with --src-crs",
            code="unknown_crs",
        ) from None


def crs_label(crs: pyproj.CRS) -> str:
    """A short name of ``crs`` for reports: EPSG:n (name), or the name."""
    code = crs.to_epsg()
    return f"EPSG:{code} ({crs.name})" if code else crs.name


def wgs84_transformer(crs: pyproj.CRS) -> pyproj.Transformer | None:
    """The x/y transformer from ``crs`` to lon/lat EPSG:4326; None when none is needed."""
    code = crs.to_epsg()
    if code == WGS84:
        return None
    if code is not None:
        return transformer(code, WGS84)
    return pyproj.Transformer.from_crs(crs, WGS84, always_xy=True)


def points_to_wgs84(x: np.ndarray, y: np.ndarray, crs: pyproj.CRS) -> tuple[np.ndarray, np.ndarray]:
    """Point coordinates in lon/lat (non-finite where PROJ cannot transform them)."""
    move = wgs84_transformer(crs)
    if move is None:
        return x, y
    lon, lat = move.transform(x, y, errcheck=False)
    return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)


def geometries_to_wgs84(geoms: np.ndarray, crs: pyproj.CRS) -> np.ndarray:
    """Geometries with every coordinate in lon/lat (one transform call for all of them)."""
    move = wgs84_transformer(crs)
    if move is None:
        return geoms

    def convert(coords: np.ndarray) -> np.ndarray:
        lon, lat = move.transform(coords[:, 0], coords[:, 1], errcheck=False)
        return np.column_stack([lon, lat])

    return shapely.transform(geoms, convert)
