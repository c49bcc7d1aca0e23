"""Coordinate reference systems: parse what clients name, keep axis order right, transform.

A :class:`CRS` is an EPSG code plus the axis order in which coordinates are exchanged
with clients. By the OGC rules CRS84 is lon/lat, while EPSG:4326 and EPSG:4490 (CGCS2000)
are lat/lon, and the CGCS2000 Gauss-Krüger grids are northing/easting; everything inside
CityHex is x/y (lon/lat, easting/northing), so :func:`to_xy` / :func:`from_xy` swap at the
edge and the transforms here always run x/y (pyproj ``always_xy``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyproj
import shapely
from pyproj.exceptions import CRSError
from shapely.geometry.base import BaseGeometry

from gis.errors import BadRequest

OGC_CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG_URI = "http://www.opengis.net/def/crs/EPSG/0/{code}"
# Served through the API: WGS 84, Web Mercator, CGCS2000, UTM zones, CGCS2000 3° GK grids.
SERVED_CODES = (
    4326,
    3857,
    4490,
    *range(32601, 32661),
    *range(32701, 32761),
    *range(4513, 4555),
)
# degrees of slack around a projected CRS's area of use within which coordinates are "in range"
AREA_SLACK_DEG = 3.0

_PATTERNS = (
    re.compile(r"^https?://www\.opengis\.net/def/crs/EPSG/[0-9.]+/(\d+)$", re.I),
    re.compile(r"^urn:ogc:def:crs:EPSG:[0-9.]*:(\d+)$", re.I),
    re.compile(r"^\[?EPSG:(\d+)\]?$", re.I),
    re.compile(r"^(\d+)$"),
)
_CRS84_NAMES = {
    OGC_CRS84.lower(),
    "https://www.opengis.net/def/crs/ogc/1.3/crs84",
    "urn:ogc:def:crs:ogc:1.3:crs84",
    "urn:ogc:def:crs:ogc::crs84",
    "ogc:crs84",
    "crs84",
    "[ogc:crs84]",
}


@dataclass(frozen=True)
class CRS:
    """A CRS as clients see it: EPSG code (4326 for CRS84), URI and axis order."""

    srid: int
    uri: str
    lat_first: bool
    geographic: bool
    name: str

    @property
    def header(self) -> str:
        """The value of a ``Content-Crs`` header: the URI in angle brackets."""
        return f"<{self.uri}>"

    @property
    def is_crs84(self) -> bool:
        """Whether this is OGC CRS84 (lon/lat WGS 84)."""
        return self.uri == OGC_CRS84


@lru_cache(maxsize=256)
def _pyproj_crs(srid: int) -> pyproj.CRS:
    return pyproj.CRS.from_epsg(srid)


@lru_cache(maxsize=256)
def crs_from_epsg(srid: int) -> CRS:
    """The CRS of an EPSG code, with its axis order as the EPSG registry defines it."""
    try:
        crs = _pyproj_crs(int(srid))
    except CRSError:
        raise BadRequest(
            f"EPSG:{srid} is not a known coordinate reference system", code="unknown_crs"
        ) from None
    first = crs.axis_info[0].direction.lower() if crs.axis_info else "east"
    return CRS(
        srid=int(srid),
        uri=EPSG_URI.format(code=srid),
        lat_first=first in ("north", "south"),
        geographic=crs.is_geographic,
        name=crs.name,
    )


CRS84 = CRS(srid=4326, uri=OGC_CRS84, lat_first=False, geographic=True, name="WGS 84 (CRS84)")


def parse_crs(value: str | int | None, *, any_epsg: bool = False) -> CRS:
    """The CRS a client named (URI, URN, ``EPSG:n``, safe CURIE or code); None → CRS84.

    Only the served CRSs are accepted unless ``any_epsg`` (importers take any EPSG code);
    anything else is a BadRequest listing what is supported.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return CRS84
    text = str(value).strip()
    if text.lower() in _CRS84_NAMES:
        return CRS84
    for pattern in _PATTERNS:
        match = pattern.match(text)
        if match:
            code = int(match.group(1))
            if any_epsg or code in SERVED_CODES:
                return crs_from_epsg(code)
            break
    raise BadRequest(
        f"unsupported CRS {text!r}; use CRS84, EPSG:4326, EPSG:3857, EPSG:4490 (CGCS2000), "
        "UTM zones EPSG:32601-32660/32701-32760 or CGCS2000 Gauss-Krüger EPSG:4513-4554 "
        "(as http://www.opengis.net/def/crs/EPSG/0/<code>)",
        code="unsupported_crs",
    )


def served_crs_uris() -> list[str]:
    """Every CRS URI the API accepts and serves, CRS84 first."""
    return [OGC_CRS84, *(EPSG_URI.format(code=c) for c in SERVED_CODES)]


@lru_cache(maxsize=256)
def transformer(src_srid: int, dst_srid: int) -> pyproj.Transformer:
    """An x/y (always_xy) transformer between two EPSG codes."""
    return pyproj.Transformer.from_crs(_pyproj_crs(src_srid), _pyproj_crs(dst_srid), always_xy=True)


def to_xy(coords: np.ndarray, crs: CRS) -> np.ndarray:
    """Coordinates in ``crs``'s axis order as x/y (swapping lat/lon or northing/easting)."""
    return coords[:, ::-1].copy() if crs.lat_first else coords


def from_xy(coords: np.ndarray, crs: CRS) -> np.ndarray:
    """x/y coordinates in ``crs``'s axis order."""
    return to_xy(coords, crs)


def _transform_xy(coords: np.ndarray, src: int, dst: int) -> np.ndarray:
    if src == dst or len(coords) == 0:
        return coords
    x, y = transformer(src, dst).transform(coords[:, 0], coords[:, 1])
    return np.column_stack([x, y])


def transform_geometry(geom: BaseGeometry, src: CRS, dst: CRS) -> BaseGeometry:
    """``geom`` with coordinates in ``src``'s axis order, as coordinates in ``dst``'s."""
    if src == dst:
        return geom

    def convert(coords: np.ndarray) -> np.ndarray:
        xy = _transform_xy(to_xy(coords, src), src.srid, dst.srid)
        return from_xy(xy, dst)

    return shapely.transform(geom, convert)


def transform_to_xy(geom: BaseGeometry, src: CRS, dst_srid: int) -> BaseGeometry:
    """``geom`` with coordinates in ``src``'s axis order, as x/y (lon/lat, easting/northing)
    in EPSG:``dst_srid``: the form PostGIS stores."""

    def convert(coords: np.ndarray) -> np.ndarray:
        return _transform_xy(to_xy(coords, src), src.srid, dst_srid)

    return shapely.transform(geom, convert)


def transform_bbox(
    bbox: tuple[float, float, float, float], src: CRS, dst: CRS
) -> tuple[float, float, float, float]:
    """A bbox given as (min axis 1, min axis 2, max axis 1, max axis 2) in ``src``, as an x/y
    box (minx, miny, maxx, maxy) in ``dst`` covering it (edges densified)."""
    a1, a2, b1, b2 = bbox
    lo = to_xy(np.array([[a1, a2]]), src)[0]
    hi = to_xy(np.array([[b1, b2]]), src)[0]
    minx, miny = min(lo[0], hi[0]), min(lo[1], hi[1])
    maxx, maxy = max(lo[0], hi[0]), max(lo[1], hi[1])
    if src.srid == dst.srid:
        return float(minx), float(miny), float(maxx), float(maxy)
    out = transformer(src.srid, dst.srid).transform_bounds(minx, miny, maxx, maxy, densify_pts=21)
    return tuple(float(v) for v in out)  # type: ignore[return-value]


@lru_cache(maxsize=256)
def xy_bounds(srid: int) -> tuple[float, float, float, float]:
    """The x/y box within which coordinates in EPSG:``srid`` are plausible: the whole globe
    for geographic CRSs, the area of use (plus a few degrees) for projected ones."""
    crs = _pyproj_crs(srid)
    if crs.is_geographic:
        return -180.0, -90.0, 180.0, 90.0
    area = crs.area_of_use
    west, south, east, north = area.bounds if area else (-180.0, -90.0, 180.0, 90.0)
    slack = AREA_SLACK_DEG
    box = (
        max(west - slack, -180.0),
        max(south - slack, -85.06),
        min(east + slack, 180.0),
        min(north + slack, 85.06),
    )
    return transformer(4326, srid).transform_bounds(*box, densify_pts=21)
