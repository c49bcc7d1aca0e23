"""Zonal statistics of a raster on the grid cells (``cityhex raster zonal``).

The raster is read window by window (rasterio), in its own CRS; every pixel centre is
moved to lon/lat and falls in exactly one H3 cell, so a sum over the cells keeps the
raster's total. Pixels larger than about half a cell are split into equal sub-pixels first
(each carrying its share of the value for sums) so that small cells still get values.
The statistic is stored as ``grid_cells.properties[PROPERTY]``; cells without any valid
pixel lose the property.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

import h3
import numpy as np
import psycopg
import pyproj
import rasterio
from rasterio.errors import RasterioError
from rasterio.windows import Window, from_bounds

from gis.errors import BadRequest, Unprocessable
from gis.hexgrid import latlng_cells
from layers.catalog.changes import publish_change_sync
from layers.db.job_connection import job_connection

STATS = ("sum", "mean", "max")
PROPERTY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
WINDOW_ROWS = 256
MAX_SPLIT = 16
EARTH_RADIUS_M = 6_371_008.8


@dataclass
class ZonalResult:
    """What a zonal run did: cells seen and given a value, pixels used, their total."""

    cells: int
    cells_with_data: int
    pixels: int
    total: float
    crs: str
    seconds: float


@dataclass
class _Accumulator:
    """Per-cell shares (for sums), value totals and counts (for means) and maxima over the
    sorted grid cells."""

    cells: np.ndarray
    shares: np.ndarray
    totals: np.ndarray
    counts: np.ndarray
    maxima: np.ndarray

    @classmethod
    def over(cls, cells: np.ndarray) -> _Accumulator:
        n = len(cells)
        return cls(cells, np.zeros(n), np.zeros(n), np.zeros(n), np.full(n, -np.inf))

    def add(self, found: np.ndarray, values: np.ndarray, shares: np.ndarray) -> None:
        """Add values (and their shares, for sums) of points in cells ``found``."""
        place = np.searchsorted(self.cells, found)
        place[place == len(self.cells)] = 0
        inside = self.cells[place] == found
        place, values, shares = place[inside], values[inside], shares[inside]
        n = len(self.cells)
        self.shares += np.bincount(place, weights=shares, minlength=n)
        self.totals += np.bincount(place, weights=values, minlength=n)
        self.counts += np.bincount(place, minlength=n)
        np.maximum.at(self.maxima, place, values)

    def result(self, stat: str) -> tuple[np.ndarray, np.ndarray]:
        """The cells with data and their statistic."""
        has = self.counts > 0
        if stat == "sum":
            values = self.shares
        elif stat == "mean":
            values = np.divide(self.totals, self.counts, out=np.zeros(len(has)), where=has)
        else:
            values = self.maxima
        return self.cells[has], values[has]


def zonal_stats(url: str, path: Path, stat: str, prop: str, band: int = 1) -> ZonalResult:
    """Compute ``stat`` of ``band`` of the raster for every grid cell and store it as
    property ``prop`` of the cells, in one transaction."""
    started = time.perf_counter()
    if stat not in STATS:
        raise BadRequest(
            f"--stat must be one of {', '.join(STATS)}, not {stat!r}", code="invalid_stat"
        )
    if not PROPERTY.match(prop):
        raise BadRequest(f"--as {prop!r}: use letters, digits and '_'", code="invalid_property")
    if not Path(path).exists():
        raise BadRequest(f"no such file: {path}", code="missing_file")
    with job_connection(url) as conn, conn.transaction():
        grid = _grid(conn)
        try:
            with rasterio.open(path) as raster:
                crs, accumulators, pixels = _read(raster, band, grid)
        except RasterioError as exc:
            raise Unprocessable(
                f"cannot read {Path(path).name} as a raster: {exc}", code="unreadable_file"
            ) from exc
        with_data, total = _store(conn, accumulators, stat, prop)
        publish_change_sync(conn, "grid", [grid.bbox])
    return ZonalResult(
        sum(len(a.cells) for a in accumulators.values()),
        with_data,
        pixels,
        total,
        crs,
        time.perf_counter() - started,
    )


@dataclass
class _Grid:
    cells: dict[int, np.ndarray]
    bbox: tuple[float, float, float, float]


def _grid(conn: psycopg.Connection) -> _Grid:
    rows = conn.execute("SELECT h3, res FROM grid_cells").fetchall()
    if not rows:
        raise Unprocessable(
            "there are no grid cells yet: run 'cityhex grid build' first", code="no_grid"
        )
    cells = np.array([r[0] for r in rows], dtype=np.int64)
    res = np.array([r[1] for r in rows])
    box = conn.execute(
        "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
        "(SELECT ST_Extent(geom) AS e FROM grid_cells) x"
    ).fetchone()
    return _Grid({int(r): np.sort(cells[res == r]) for r in np.unique(res)}, tuple(box))


def _read(
    raster: rasterio.DatasetReader, band: int, grid: _Grid
) -> tuple[str, dict[int, _Accumulator], int]:
    if raster.crs is None:
        raise Unprocessable(
            "the raster states no CRS; give it one (gdal_edit.py -a_srs)", code="missing_crs"
        )
    if not 1 <= band <= raster.count:
        raise BadRequest(f"the raster has bands 1..{raster.count}, not {band}", code="invalid_band")
    to_lonlat = pyproj.Transformer.from_crs(raster.crs, 4326, always_xy=True)
    window = _grid_window(raster, grid.bbox)
    accumulators = {res: _Accumulator.over(cells) for res, cells in grid.cells.items()}
    pixels = 0
    if window is None:
        return str(raster.crs), accumulators, 0
    split = {res: _split(raster, to_lonlat, window, res) for res in grid.cells}
    for top in range(int(window.row_off), int(window.row_off + window.height), WINDOW_ROWS):
        rows = min(WINDOW_ROWS, int(window.row_off + window.height) - top)
        part = Window(window.col_off, top, window.width, rows)
        data = raster.read(band, window=part, masked=True).astype(np.float64)
        valid = ~np.ma.getmaskarray(data) & np.isfinite(data.filled(np.nan))
        rr, cc = np.nonzero(valid)
        values = data.data[rr, cc]
        pixels += len(values)
        for res, acc in accumulators.items():
            _add_pixels(
                acc, raster, to_lonlat, top + rr, int(part.col_off) + cc, values, split[res], res
            )
    return str(raster.crs), accumulators, pixels


def _grid_window(raster: rasterio.DatasetReader, bbox: tuple[float, ...]) -> Window | None:
    """The raster window covering the grid's extent (None when they do not meet)."""
    west, south, east, north = pyproj.Transformer.from_crs(
        4326, raster.crs, always_xy=True
    ).transform_bounds(*bbox, densify_pts=21)
    try:
        wanted = from_bounds(west, south, east, north, transform=raster.transform)
    except (ValueError, RasterioError):
        return None
    col0 = max(0, math.floor(wanted.col_off))
    row0 = max(0, math.floor(wanted.row_off))
    col1 = min(raster.width, math.ceil(wanted.col_off + wanted.width))
    row1 = min(raster.height, math.ceil(wanted.row_off + wanted.height))
    if col1 <= col0 or row1 <= row0:
        return None
    return Window(col0, row0, col1 - col0, row1 - row0)


def _split(
    raster: rasterio.DatasetReader, to_lonlat: pyproj.Transformer, window: Window, res: int
) -> int:
    """Into how many sub-pixels a side each pixel is cut so pixels are under half a cell."""
    row = window.row_off + window.height / 2
    col = window.col_off + window.width / 2
    corners = [raster.transform @ (col + dc, row + dr) for dc, dr in ((0, 0), (1, 0), (0, 1))]
    lon, lat = to_lonlat.transform(*zip(*corners, strict=True))
    size = max(_metres(lon[0], lat[0], lon[1], lat[1]), _metres(lon[0], lat[0], lon[2], lat[2]))
    edge = h3.average_hexagon_edge_length(res, unit="m")
    return int(min(MAX_SPLIT, max(1, math.ceil(size / (edge / 2)))))


def _metres(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    x = math.radians(lon2 - lon1) * math.cos(math.radians((lat1 + lat2) / 2))
    return EARTH_RADIUS_M * math.hypot(x, math.radians(lat2 - lat1))


def _add_pixels(
    acc: _Accumulator,
    raster: rasterio.DatasetReader,
    to_lonlat: pyproj.Transformer,
    rows: np.ndarray,
    cols: np.ndarray,
    values: np.ndarray,
    split: int,
    res: int,
) -> None:
    offsets = (np.arange(split) + 0.5) / split
    for dr in offsets:
        for dc in offsets:
            xs, ys = raster.transform @ (cols + dc, rows + dr)
            lon, lat = to_lonlat.transform(xs, ys)
            ok = np.isfinite(lon) & np.isfinite(lat)
            cells = latlng_cells(np.asarray(lon)[ok], np.asarray(lat)[ok], res)
            acc.add(cells, values[ok], values[ok] / (split * split))


def _store(
    conn: psycopg.Connection, accumulators: dict[int, _Accumulator], stat: str, prop: str
) -> tuple[int, float]:
    cells = np.concatenate([a.result(stat)[0] for a in accumulators.values()])
    values = np.concatenate([a.result(stat)[1] for a in accumulators.values()])
    conn.execute(
        "UPDATE grid_cells SET properties = properties - %s WHERE properties ? %s", (prop, prop)
    )
    conn.execute(
        "UPDATE grid_cells g SET properties = g.properties || jsonb_build_object(%s::text, v.x)"
        " FROM unnest(%s::bigint[], %s::float8[]) AS v(h3, x) WHERE g.h3 = v.h3",
        (prop, cells.tolist(), values.tolist()),
    )
    total = float(values.sum()) if stat == "sum" else float("nan")
    return len(cells), total
