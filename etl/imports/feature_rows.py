"""What an import computes for the rows it writes, on whole arrays: the COPY text of their
H3 cells, their lon/lat box, and an order that keeps neighbours together."""

from __future__ import annotations

import numpy as np
import shapely

from etl.copytext.fields import number_texts
from gis.hexgrid import latlng_cells
from gis.tilemath import interleave


def h3_texts(lon: np.ndarray, lat: np.ndarray, res: int) -> list[str]:
    """The COPY text of the H3 cell (bigint) of every lon/lat point."""
    return number_texts(latlng_cells(lon, lat, res))


def bbox(lon: np.ndarray, lat: np.ndarray, geoms: np.ndarray | None) -> tuple[float, ...] | None:
    """The lon/lat box of the written features (None when there are none)."""
    if geoms is not None and len(geoms):
        box = shapely.total_bounds(geoms)
        return tuple(float(v) for v in box)
    if not len(lon):
        return None
    return float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())


def spatial_order(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """An order of the points along a Z curve over their extent: rows written in this order
    sit near their neighbours in the table, which makes index upkeep and tile reads cheaper."""
    if len(lon) < 2:
        return np.arange(len(lon))
    scale = []
    for v in (lon, lat):
        span = float(v.max() - v.min()) or 1.0
        scale.append(((v - v.min()) / span * 0xFFFF).astype(np.uint64))
    return np.argsort(interleave(scale[0], scale[1]), kind="stable")
