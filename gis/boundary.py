"""Boundaries to grid: read polygons from a file, a GeoJSON object or a bbox, in lon/lat.

Every function returns one valid (multi)polygon in EPSG:4326 or raises a CityHexError that
says what is wrong with the input, so the CLI and the API report bad boundaries alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyogrio.raw
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError
from shapely.geometry.base import BaseGeometry

from gis.errors import BadRequest, Unprocessable
from gis.validation import check_structure

LONLAT = CRS.from_epsg(4326)


def parse_crs(value: str | int) -> CRS:
    """A CRS from 'EPSG:4490', 4547, a WKT or PROJ string; BadRequest when unknown."""
    try:
        return CRS.from_user_input(value)
    except CRSError as exc:
        raise BadRequest(f"unknown CRS {value!r}: {exc}", code="invalid_crs") from None


def to_lonlat(shape: BaseGeometry, src_crs: CRS) -> BaseGeometry:
    """``shape`` transformed from ``src_crs`` to lon/lat (axis order x=lon, y=lat)."""
    if src_crs.equals(LONLAT, ignore_axis_order=True):
        return shape
    transformer = Transformer.from_crs(src_crs, LONLAT, always_xy=True)
    return shapely.transform(
        shape, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))
    )


def polygonal(shape: BaseGeometry, what: str) -> BaseGeometry:
    """The polygonal part of ``shape``, made valid; Unprocessable when there is none."""
    if shape.is_empty:
        raise Unprocessable(f"{what} is empty", code="empty_boundary")
    if not shape.is_valid:
        shape = shapely.make_valid(shape)
    parts = [
        g for g in getattr(shape, "geoms", [shape]) if g.geom_type in ("Polygon", "MultiPolygon")
    ]
    area = shapely.union_all(parts) if parts else None
    if area is None or area.is_empty or area.area == 0:
        raise Unprocessable(f"{what} has no polygon with an area", code="not_polygonal")
    return area


def check_lonlat(shape: BaseGeometry, what: str) -> BaseGeometry:
    """``shape`` itself when it lies within lon/lat bounds; Unprocessable otherwise."""
    w, s, e, n = shape.bounds
    if not (-180 <= w <= e <= 180 and -90 <= s <= n <= 90):
        raise Unprocessable(
            f"{what} is not in lon/lat (bounds {w:.6g},{s:.6g},{e:.6g},{n:.6g}); "
            "give its CRS (src_crs)",
            code="not_lonlat",
        )
    return shape


def boundary_from_bbox(text: str) -> BaseGeometry:
    """The lon/lat rectangle of 'W,S,E,N'."""
    try:
        w, s, e, n = (float(v) for v in text.split(","))
    except ValueError:
        raise BadRequest(
            f"bbox {text!r} must be four numbers W,S,E,N", code="invalid_bbox"
        ) from None
    if not (w < e and s < n):
        raise BadRequest(f"bbox {text!r} must have W < E and S < N", code="invalid_bbox")
    return check_lonlat(shapely.box(w, s, e, n), "the bbox")


def geojson_geometries(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The geometry objects of a GeoJSON geometry, Feature or FeatureCollection."""
    kind = obj.get("type") if isinstance(obj, dict) else None
    if kind == "FeatureCollection":
        return [g for f in obj.get("features") or [] for g in geojson_geometries(f)]
    if kind == "Feature":
        geometry = obj.get("geometry")
        return [geometry] if geometry else []
    if kind in ("Polygon", "MultiPolygon", "GeometryCollection"):
        return [obj]
    raise BadRequest(
        "the boundary must be a GeoJSON Polygon, MultiPolygon, Feature or FeatureCollection",
        code="invalid_boundary",
    )


def boundary_from_geojson(obj: dict[str, Any], src_crs: str | int | None = None) -> BaseGeometry:
    """The lon/lat area of a GeoJSON object whose coordinates are in ``src_crs`` (default
    EPSG:4326)."""
    try:
        geometries = geojson_geometries(obj)
        for geometry in geometries:
            check_structure(geometry)
        shapes = [shapely.geometry.shape(g) for g in geometries]
    except Unprocessable as exc:
        raise BadRequest(
            f"the boundary is not valid GeoJSON: {exc.message}", code="invalid_boundary"
        ) from None
    except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
        raise BadRequest(
            f"the boundary is not valid GeoJSON: {exc}", code="invalid_boundary"
        ) from None
    if not shapes:
        raise Unprocessable("the boundary has no geometry", code="empty_boundary")
    area = polygonal(shapely.GeometryCollection(shapes), "the boundary")
    if src_crs is not None:
        area = polygonal(to_lonlat(area, parse_crs(src_crs)), "the transformed boundary")
    return check_lonlat(area, "the boundary")


def boundary_from_file(path: Path, src_crs: str | int | None = None) -> BaseGeometry:
    """The lon/lat area of every polygon in a vector file (GeoJSON, GeoPackage, Shapefile…);
    ``src_crs`` overrides the file's own CRS."""
    try:
        meta, _, wkb, _ = pyogrio.raw.read(path, columns=[])
    except Exception as exc:  # GDAL reports unreadable files with many exception types
        raise BadRequest(f"cannot read {path}: {exc}", code="unreadable_file") from None
    shapes = [g for g in shapely.from_wkb(wkb) if g is not None] if wkb is not None else []
    if not shapes:
        raise Unprocessable(f"{path} holds no geometry", code="empty_boundary")
    area = polygonal(shapely.GeometryCollection(shapes), f"the boundary in {path}")
    crs = src_crs if src_crs is not None else meta.get("crs")
    if crs is not None:
        area = polygonal(to_lonlat(area, parse_crs(crs)), f"the transformed boundary in {path}")
    return check_lonlat(area, f"the boundary in {path}")
