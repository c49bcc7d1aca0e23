"""Web Mercator tile math (the WebMercatorQuad tile matrix set, XYZ addressing).

Tiles are addressed by zoom ``z`` and column/row ``x``/``y`` counted from the top left,
as in ST_TileEnvelope, TileJSON and MapLibre. Bounds are in EPSG:3857 metres unless the
function says lon/lat.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TypeVar

import h3
import numpy as np

from gis.errors import BadRequest

MAX_ZOOM = 22
EARTH_RADIUS = 6378137.0
ORIGIN = math.pi * EARTH_RADIUS  # half the width of the Web Mercator square, 20037508.34 m
MAX_LAT = 85.0511287798066
EXTENT = 4096
BUFFER = 64
HEX_PIXELS = 40.0
"""Target width of an aggregate hexagon on screen, in 256-pixel tile pixels."""

BBox = tuple[float, float, float, float]


def check_tile(z: int, x: int, y: int) -> None:
    """BadRequest unless ``z/x/y`` addresses a tile of zooms 0–22."""
    if not 0 <= z <= MAX_ZOOM:
        raise BadRequest(f"zoom {z} is out of range 0–{MAX_ZOOM}", code="invalid_tile")
    n = 1 << z
    if not (0 <= x < n and 0 <= y < n):
        raise BadRequest(
            f"tile {z}/{x}/{y} does not exist: at zoom {z}, x and y run from 0 to {n - 1}",
            code="invalid_tile",
        )


def tile_size(z: int) -> float:
    """The width of a tile of zoom ``z`` in metres."""
    return 2 * ORIGIN / (1 << z)


def tile_bounds(z: int, x: int, y: int, margin: float = 0.0) -> BBox:
    """The tile's (minx, miny, maxx, maxy) in EPSG:3857, widened by ``margin`` tile widths."""
    size = tile_size(z)
    minx = -ORIGIN + x * size
    maxy = ORIGIN - y * size
    pad = margin * size
    return (minx - pad, maxy - size - pad, minx + size + pad, maxy + pad)


def buffer_margin(buffer: int = BUFFER, extent: int = EXTENT) -> float:
    """The MVT buffer as a fraction of the tile width (as ST_TileEnvelope's margin)."""
    return buffer / extent


def lonlat_to_mercator(lon: float, lat: float) -> tuple[float, float]:
    """EPSG:4326 lon/lat to EPSG:3857 metres (latitude clamped to the Mercator square)."""
    lat = max(-MAX_LAT, min(MAX_LAT, lat))
    x = math.radians(lon) * EARTH_RADIUS
    y = math.log(math.tan(math.pi / 4 + math.radians(lat) / 2)) * EARTH_RADIUS
    return x, y


def mercator_to_lonlat(x: float, y: float) -> tuple[float, float]:
    """EPSG:3857 metres to EPSG:4326 lon/lat."""
    return math.degrees(x / EARTH_RADIUS), math.degrees(math.atan(math.sinh(y / EARTH_RADIUS)))


def tile_bounds_lonlat(z: int, x: int, y: int) -> BBox:
    """The tile's (west, south, east, north) in degrees."""
    minx, miny, maxx, maxy = tile_bounds(z, x, y)
    west, south = mercator_to_lonlat(minx, miny)
    east, north = mercator_to_lonlat(maxx, maxy)
    return (west, south, east, north)


def mercator_bbox(bbox: BBox) -> BBox:
    """A lon/lat (west, south, east, north) box in EPSG:3857 metres."""
    minx, miny = lonlat_to_mercator(bbox[0], bbox[1])
    maxx, maxy = lonlat_to_mercator(bbox[2], bbox[3])
    return (minx, miny, maxx, maxy)


def tile_range(bbox_3857: BBox, z: int, margin: float = 0.0) -> tuple[int, int, int, int]:
    """(xmin, ymin, xmax, ymax), inclusive: the tiles of zoom ``z`` whose bounds widened by
    ``margin`` tile widths intersect ``bbox_3857`` (boundaries touching count)."""
    size = tile_size(z)
    last = (1 << z) - 1
    pad = margin * size

    def column(v: float) -> float:
        return (v + ORIGIN) / size

    def row(v: float) -> float:
        return (ORIGIN - v) / size

    xmin = math.floor(column(bbox_3857[0] - pad) - 1e-9)
    xmax = math.floor(column(bbox_3857[2] + pad) + 1e-9)
    ymin = math.floor(row(bbox_3857[3] + pad) - 1e-9)
    ymax = math.floor(row(bbox_3857[1] - pad) + 1e-9)
    clamp = lambda v: max(0, min(last, v))  # noqa: E731
    return clamp(xmin), clamp(ymin), clamp(xmax), clamp(ymax)


def tiles_covering(bbox: BBox, z: int) -> Iterator[tuple[int, int, int]]:
    """Every tile ``(z, x, y)`` of zoom ``z`` that intersects the lon/lat ``bbox``."""
    xmin, ymin, xmax, ymax = tile_range(mercator_bbox(bbox), z)
    for x in range(xmin, xmax + 1):
        for y in range(ymin, ymax + 1):
            yield (z, x, y)


def boxes_intersect(a: BBox, b: BBox) -> bool:
    """Whether two (minx, miny, maxx, maxy) boxes share at least a boundary point."""
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def pixel_size(z: int, extent: int = EXTENT) -> float:
    """The width in EPSG:3857 metres of one unit of a tile's ``extent`` grid at zoom ``z``."""
    return tile_size(z) / extent


def hex_resolution(z: int, finest: int = 15) -> int:
    """The H3 resolution whose hexagons are about ``HEX_PIXELS`` wide on a 256-pixel tile of
    zoom ``z`` (at the equator, in Mercator metres), capped at ``finest``."""
    target = HEX_PIXELS * tile_size(z) / 256
    best = min(
        range(16),
        key=lambda r: abs(math.log(2 * h3.average_hexagon_edge_length(r, unit="m") / target)),
    )
    return min(best, finest)


KEY_ZOOM = 24
"""The zoom of the cells that tile keys number: a tile key is the Morton (Z-order) number of
the zoom-24 tile holding a point, so every tile of zoom ≤ 24 is one range of keys."""


SPREAD_STEPS = (
    (16, 0x0000FFFF0000FFFF),
    (8, 0x00FF00FF00FF00FF),
    (4, 0x0F0F0F0F0F0F0F0F),
    (2, 0x3333333333333333),
    (1, 0x5555555555555555),
)
"""(shift, mask) steps that move bit i of a 24-bit number to bit 2i: v = (v | v << s) & m."""


Bits = TypeVar("Bits", int, np.ndarray)
"""A whole number, or a uint64 array of them (spread and interleaved element by element)."""


def spread_bits(v: Bits) -> Bits:
    """``v`` (< 2**24) with a zero bit inserted above each of its bits."""
    for shift, mask in SPREAD_STEPS:
        v = (v | (v << shift)) & mask
    return v


def interleave(x: Bits, y: Bits) -> Bits:
    """The Morton number of column ``x`` and row ``y``: their bits interleaved, x's first."""
    return spread_bits(x) | (spread_bits(y) << 1)


def tile_key_range(z: int, x: int, y: int) -> tuple[int, int]:
    """The tile keys ``[low, high)`` of the points inside tile ``z/x/y`` (z ≤ ``KEY_ZOOM``)."""
    shift, base = key_shift(z), interleave(x, y)
    return base << shift, (base + 1) << shift


def key_shift(z: int) -> int:
    """How many low bits to drop from a tile key to get the number of its zoom-``z`` tile."""
    return 2 * (KEY_ZOOM - z)


def cell_ring(z: int, x: int, y: int, deeper: int) -> list[int]:
    """The Morton numbers of the tiles ``deeper`` zooms below tile ``z/x/y`` that touch it from
    outside (the ring of 4 · 2**deeper + 4 cells around it, less those off the map)."""
    n, last = 1 << deeper, (1 << (z + deeper)) - 1
    cols = [c for c in range(x * n - 1, x * n + n + 1) if 0 <= c <= last]
    rows = [r for r in range(y * n - 1, y * n + n + 1) if 0 <= r <= last]
    spread_cols = {c: spread_bits(c) for c in cols}
    spread_rows = {r: spread_bits(r) << 1 for r in rows}
    edge_cols = {x * n - 1, x * n + n}
    edge_rows = {y * n - 1, y * n + n}
    return [
        spread_cols[c] | spread_rows[r]
        for c in cols
        for r in rows
        if c in edge_cols or r in edge_rows
    ]
