"""Heat rasters of layers: kernel density of a point layer, IDW of sensor readings.

Both are computed on a grid of square cells in the local UTM zone covering a lon/lat bbox.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import numpy as np
from h3.api import basic_int as h3i
from sqlalchemy.ext.asyncio import AsyncConnection

from gis.analytics.grid import BBox, RasterGrid
from gis.analytics.idw import idw
from gis.analytics.kde import KERNEL_SIGMAS, check_bandwidth, kde
from gis.errors import BadRequest, Unprocessable
from layers.analytics.aggregations import (
    Filters,
    cell_counts,
    expand_bbox,
    nearest_reading_time,
    readings_near,
)

MAX_NEIGHBORS = 64
MAX_WINDOW = timedelta(days=31)


@dataclass(frozen=True)
class Heatmap:
    """A raster on ``grid`` and how many points or sites went into it."""

    grid: RasterGrid
    values: np.ndarray
    inputs: int


KDE_RES = 11
"""The H3 resolution the points are counted at before a KDE: the finest stored (a res-11
cell reaches at most ~29 m from its centre), so the counts come from the cell index alone."""


def cell_centres(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lon and lat of the centre of every cell."""
    lat_lon = np.array([h3i.cell_to_latlng(c) for c in cells.tolist()], dtype=np.float64)
    lat_lon = lat_lon.reshape(-1, 2)
    return lat_lon[:, 1].copy(), lat_lon[:, 0].copy()


async def kde_heatmap(
    conn: AsyncConnection, filters: Filters, bbox: BBox, cell_m: float, bandwidth_m: float
) -> Heatmap:
    """The kernel density (per km²) of the filtered rows over ``bbox``, counting the rows
    within the kernel's reach outside it.

    Binned: the rows are counted per res-11 cell (``KDE_RES``), each count placed at its
    cell's centre, binned to the raster's cells and convolved with the kernel
    (``gis.analytics.kde``); the cells whose centre lies within the reach are counted.
    """
    grid = RasterGrid.covering(bbox, cell_m)
    check_bandwidth(bandwidth_m, cell_m)
    reach = expand_bbox(bbox, KERNEL_SIGMAS * bandwidth_m + 2 * cell_m)
    stored = KDE_RES in filters.layer.cell_columns
    cells, counts = await cell_counts(
        conn, replace(filters, bbox=None if stored else reach), KDE_RES
    )

    def compute() -> tuple[np.ndarray, int]:
        lon, lat = cell_centres(cells)
        inside = (lon >= reach[0]) & (lat >= reach[1]) & (lon <= reach[2]) & (lat <= reach[3])
        x, y = grid.project(lon[inside], lat[inside])
        return kde(x, y, grid, bandwidth_m, weights=counts[inside]), int(counts[inside].sum())

    values, inputs = await asyncio.to_thread(compute)
    return Heatmap(grid, values, inputs)


def check_idw_options(power: float, neighbors: int, window: timedelta) -> None:
    """BadRequest unless power is 0.5–5, neighbors 1–64 and the window 1 s – 31 days."""
    if not 0.5 <= power <= 5:
        raise BadRequest("power must be 0.5–5", code="invalid_power")
    if not 1 <= neighbors <= MAX_NEIGHBORS:
        raise BadRequest(f"neighbors must be 1–{MAX_NEIGHBORS}", code="invalid_neighbors")
    if not timedelta(seconds=1) <= window <= MAX_WINDOW:
        raise BadRequest("window must be between 1 second and 31 days", code="invalid_window")


async def no_readings(
    conn: AsyncConnection, prop: str, at: datetime, window: timedelta
) -> Unprocessable:
    """The error for an IDW moment with no readings, naming the nearest moment that has one."""
    message = f"no sensor has a reading of {prop!r} within {window} of {at.isoformat()}"
    nearest = await nearest_reading_time(conn, prop, at)
    if nearest is None:
        return Unprocessable(message, code="no_readings")
    moment = nearest.isoformat()
    return Unprocessable(
        f"{message}; the nearest reading is at {moment}: ask for at={moment}",
        code="no_readings",
        details={"nearest": moment},
    )


async def idw_heatmap(
    conn: AsyncConnection,
    prop: str,
    at: datetime,
    window: timedelta,
    bbox: BBox,
    cell_m: float,
    power: float = 2.0,
    neighbors: int = 12,
) -> Heatmap:
    """IDW of ``prop`` over ``bbox`` from each sensor's reading nearest to ``at`` within
    ``window`` either side."""
    check_idw_options(power, neighbors, window)
    grid = RasterGrid.covering(bbox, cell_m)
    sites = await readings_near(conn, prop, at, window)
    if len(sites.values) == 0:
        raise await no_readings(conn, prop, at, window)

    def compute() -> np.ndarray:
        sx, sy = grid.project(sites.lon, sites.lat)
        qx, qy = grid.centres()
        return idw(sx, sy, sites.values, qx, qy, power, neighbors).astype(np.float32)

    return Heatmap(grid, await asyncio.to_thread(compute), len(sites.values))
