"""Geometry checks for every write: GeoJSON structure, type, coordinate range, validity.

Each check raises :class:`gis.errors.Unprocessable` (422) with a message that says what is
wrong and where, and ``details`` a client can act on; :func:`check_valid` can instead
repair with ``make_valid`` and report what it repaired.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
import shapely.geometry
from shapely.geometry.base import BaseGeometry

from gis.crs import xy_bounds
from gis.errors import Unprocessable

GEOJSON_TYPES = (
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
    "GeometryCollection",
)
MULTI_OF = {"Point": "MultiPoint", "LineString": "MultiLineString", "Polygon": "MultiPolygon"}
MAX_VERTICES = 250_000
_REASON = re.compile(r"^(?P<what>[^\[]+)\[(?P<x>[-0-9.eE+]+) (?P<y>[-0-9.eE+]+)\]$")


@dataclass(frozen=True)
class Repair:
    """What ``make_valid`` repaired: the reason the geometry was invalid, and where."""

    reason: str
    location: tuple[float, float] | None

    def describe(self) -> str:
        """One line for a response header or a history note."""
        where = f" at ({self.location[0]:.7g}, {self.location[1]:.7g})" if self.location else ""
        return f"repaired with make_valid: {self.reason}{where}"


def _malformed(message: str) -> Unprocessable:
    return Unprocessable(f"geometry coordinates are malformed: {message}", code="invalid_geometry")


def _check_position(value: Any, where: str) -> None:
    """422 unless ``value`` is a GeoJSON position: 2 or 3 numbers (not text, not booleans)."""
    if not isinstance(value, list) or not 2 <= len(value) <= 3:
        raise _malformed(f"{where} must be a position [x, y] or [x, y, z]")
    if not all(type(n) in (int, float) for n in value):
        raise _malformed(f"{where} must hold numbers, not {value!r}")


def _check_positions(value: Any, depth: int, where: str) -> int:
    """Check the nested arrays of positions of a geometry (``depth`` levels above the
    positions); how many positions they hold."""
    if depth == 0:
        _check_position(value, where)
        return 1
    if not isinstance(value, list):
        raise _malformed(f"{where} must be an array")
    return sum(_check_positions(v, depth - 1, f"{where}[{i}]") for i, v in enumerate(value))


def _check_rings_closed(polygon: list[list[Any]], where: str) -> None:
    """422 naming the first ring of a polygon whose last position is not its first (RFC 7946
    3.1.6: a ring is closed, and is never closed for the client)."""
    for i, ring in enumerate(polygon):
        if ring and ring[0] != ring[-1]:
            raise Unprocessable(
                f"{where} ring {i} is not closed: its last position {ring[-1]} is not its first "
                f"{ring[0]}; repeat the first position at the end",
                code="unclosed_ring",
                details={"ring": f"{where}[{i}]", "first": ring[0], "last": ring[-1]},
            )


POSITION_DEPTH = {
    "Point": 0,
    "MultiPoint": 1,
    "LineString": 1,
    "MultiLineString": 2,
    "Polygon": 2,
    "MultiPolygon": 3,
}
"""How many levels of arrays a geometry type's coordinates hold above the positions."""


def check_structure(value: Any, where: str = "geometry") -> None:
    """422 unless ``value`` is a GeoJSON geometry object whose coordinates are arrays of
    numeric positions and whose polygon rings are closed (a GeometryCollection's members
    likewise)."""
    if not isinstance(value, dict):
        raise Unprocessable(f"{where} must be a GeoJSON geometry object", code="invalid_geometry")
    kind = value.get("type")
    if kind not in GEOJSON_TYPES:
        raise Unprocessable(
            f"{where} type {kind!r} is not a GeoJSON geometry type ({', '.join(GEOJSON_TYPES)})",
            code="invalid_geometry",
        )
    if kind == "GeometryCollection":
        members = value.get("geometries")
        if not isinstance(members, list):
            raise _malformed(f"{where}.geometries must be an array")
        for i, member in enumerate(members):
            check_structure(member, f"{where}.geometries[{i}]")
        return
    coordinates = value.get("coordinates")
    _check_positions(coordinates, POSITION_DEPTH[kind], f"{where}.coordinates")
    if kind == "Polygon":
        _check_rings_closed(coordinates, f"{where}.coordinates")
    elif kind == "MultiPolygon":
        for i, polygon in enumerate(coordinates):
            _check_rings_closed(polygon, f"{where}.coordinates[{i}]")


def parse_geometry(value: Any) -> BaseGeometry:
    """A GeoJSON geometry object as a 2D shapely geometry; 422 naming what is malformed."""
    check_structure(value)
    try:
        geom = shapely.geometry.shape(value)
        coords = shapely.get_coordinates(geom)
    except Exception as exc:  # shapely raises many types for malformed coordinates
        raise Unprocessable(
            f"geometry coordinates are malformed: {exc}", code="invalid_geometry"
        ) from None
    if geom.is_empty:
        raise Unprocessable("geometry is empty", code="invalid_geometry")
    if len(coords) > MAX_VERTICES:
        raise Unprocessable(
            f"geometry has {len(coords)} vertices; at most {MAX_VERTICES}",
            code="geometry_too_large",
        )
    bad = ~np.isfinite(coords).all(axis=1)
    if bad.any():
        raise Unprocessable(
            f"geometry coordinate {int(np.argmax(bad))} is not a finite number",
            code="invalid_geometry",
        )
    return shapely.force_2d(geom)


def check_type(geom: BaseGeometry, expected: str) -> BaseGeometry:
    """``geom`` if its type fits ``expected`` (a single part is promoted to multi); 422 else."""
    if expected.lower() == "geometry" or geom.geom_type == expected:
        return geom
    if MULTI_OF.get(geom.geom_type) == expected:
        return getattr(shapely, expected)([geom])
    raise Unprocessable(
        f"this layer takes {expected} geometries, not {geom.geom_type}",
        code="wrong_geometry_type",
        details={"expected": expected, "got": geom.geom_type},
    )


def check_range(geom: BaseGeometry, srid: int, axis_names: tuple[str, str] = ("x", "y")) -> None:
    """422 naming the first coordinate that lies outside where EPSG:``srid`` is defined."""
    minx, miny, maxx, maxy = xy_bounds(srid)
    coords = shapely.get_coordinates(geom)
    out = (
        (coords[:, 0] < minx)
        | (coords[:, 0] > maxx)
        | (coords[:, 1] < miny)
        | (coords[:, 1] > maxy)
    )
    if out.any():
        i = int(np.argmax(out))
        x, y = coords[i]
        raise Unprocessable(
            f"coordinate {i} ({axis_names[0]}={x:.10g}, {axis_names[1]}={y:.10g}) is out of "
            f"range for EPSG:{srid} (x {minx:.6g}..{maxx:.6g}, y {miny:.6g}..{maxy:.6g}); "
            "is the axis order or the CRS wrong?",
            code="coordinates_out_of_range",
            details={"index": i, "coordinate": [x, y]},
        )


def _reason(geom: BaseGeometry) -> tuple[str, tuple[float, float] | None]:
    text = shapely.is_valid_reason(geom)
    match = _REASON.match(text)
    if not match:
        return text, None
    return match.group("what").strip(), (float(match.group("x")), float(match.group("y")))


def _same_dimension(repaired: BaseGeometry, original: BaseGeometry) -> BaseGeometry:
    """The parts of a make_valid result with the original's dimension (drop stray lines)."""
    if repaired.geom_type != "GeometryCollection" or original.geom_type == "GeometryCollection":
        return repaired
    dim = shapely.get_dimensions(original)
    parts = [g for g in repaired.geoms if shapely.get_dimensions(g) == dim]
    merged = shapely.union_all(parts) if parts else repaired
    return merged


def check_valid(geom: BaseGeometry, repair: bool = False) -> tuple[BaseGeometry, Repair | None]:
    """(geometry, None) when valid; when not, 422 naming the problem and where, or with
    ``repair`` the ``make_valid`` result and what was repaired."""
    if shapely.is_valid(geom):
        return geom, None
    what, where = _reason(geom)
    if not repair:
        at = f" at ({where[0]:.10g}, {where[1]:.10g})" if where else ""
        raise Unprocessable(
            f"invalid geometry: {what}{at}; send repair=true to repair it with make_valid",
            code="invalid_geometry",
            details={"reason": what, "location": list(where) if where else None},
        )
    repaired = _same_dimension(shapely.make_valid(geom), geom)
    if repaired.is_empty or not shapely.is_valid(repaired):
        raise Unprocessable(
            f"invalid geometry: {what}; make_valid could not repair it", code="invalid_geometry"
        )
    return repaired, Repair(what, where)
