"""The raster grid that KDE and IDW compute on: square cells in the local UTM zone."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pyproj import CRS, Transformer
from rasterio.transform import Affine

from gis.errors import BadRequest

MAX_CELLS = 4_000_000
"""The most cells one raster may have (2,000 x 2,000)."""

MAX_SIDE = 4_096
"""The most cells along one side of a raster."""

BBox = tuple[float, float, float, float]


def utm_epsg(lon: float, lat: float) -> int:
    """The EPSG code of the WGS 84 UTM zone that holds ``lon``, ``lat``."""
    zone = min(int((lon + 180.0) // 6.0) + 1, 60)
    return (32600 if lat >= 0 else 32700) + zone


def parse_bbox(text: str) -> BBox:
    """``minlon,minlat,maxlon,maxlat`` as floats; BadRequest when malformed or out of range."""
    try:
        parts = [float(v) for v in text.split(",")]
    except ValueError:
        parts = []
    if len(parts) != 4 or not all(math.isfinite(v) for v in parts):
        raise BadRequest(
            f"bbox {text!r} must be four numbers: minlon,minlat,maxlon,maxlat", code="invalid_bbox"
        )
    minx, miny, maxx, maxy = parts
    if not (-180 <= minx < maxx <= 180 and -85 <= miny < maxy <= 85):
        raise BadRequest(
            f"bbox {text!r} must have -180 <= minlon < maxlon <= 180 and "
            "-85 <= minlat < maxlat <= 85",
            code="invalid_bbox",
        )
    return minx, miny, maxx, maxy


@dataclass(frozen=True)
class RasterGrid:
    """A north-up grid of ``width`` x ``height`` square cells of ``cell_m`` metres in ``epsg``,
    whose top-left corner is (``minx``, ``maxy``)."""

    epsg: int
    minx: float
    maxy: float
    cell_m: float
    width: int
    height: int

    @classmethod
    def covering(cls, bbox: BBox, cell_m: float) -> RasterGrid:
        """The grid in the local UTM zone that covers the lon/lat ``bbox`` with ``cell_m`` cells.

        BadRequest when it would exceed MAX_CELLS or MAX_SIDE.
        """
        if not (cell_m > 0 and math.isfinite(cell_m)):
            raise BadRequest("cell_m must be a positive number of metres", code="invalid_cell_m")
        epsg = utm_epsg((bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2)
        to_utm = Transformer.from_crs(4326, epsg, always_xy=True)
        minx, miny, maxx, maxy = to_utm.transform_bounds(*bbox, densify_pts=21)
        width = math.ceil((maxx - minx) / cell_m)
        height = math.ceil((maxy - miny) / cell_m)
        if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_CELLS:
            raise BadRequest(
                f"the raster would be {width} x {height} cells; at most {MAX_SIDE} a side and "
                f"{MAX_CELLS:,} in all: use a larger cell_m or a smaller bbox",
                code="raster_too_large",
            )
        return cls(epsg, minx, maxy, float(cell_m), max(width, 1), max(height, 1))

    @property
    def crs(self) -> CRS:
        """The grid's coordinate reference system."""
        return CRS.from_epsg(self.epsg)

    @property
    def transform(self) -> Affine:
        """The affine geotransform from (col, row) to grid coordinates."""
        return Affine(self.cell_m, 0.0, self.minx, 0.0, -self.cell_m, self.maxy)

    @property
    def bounds(self) -> BBox:
        """(minx, miny, maxx, maxy) of the grid in its own CRS."""
        return (
            self.minx,
            self.maxy - self.height * self.cell_m,
            self.minx + self.width * self.cell_m,
            self.maxy,
        )

    def project(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lon/lat points in the grid's CRS."""
        to_grid = Transformer.from_crs(4326, self.epsg, always_xy=True)
        x, y = to_grid.transform(
            np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
        )
        return np.asarray(x), np.asarray(y)

    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        """The x and y of every cell centre, each shaped (height, width)."""
        xs = self.minx + (np.arange(self.width) + 0.5) * self.cell_m
        ys = self.maxy - (np.arange(self.height) + 0.5) * self.cell_m
        return np.meshgrid(xs, ys)
