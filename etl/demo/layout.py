"""The parts of the demo city that do not depend on its scale, made once per process.

The land, the districts, the street network and the unit grid (with its polygons and
areas) are the same for every load, so repeated loads (tests, several databases) reuse
them instead of redrawing 127,000 hexagons.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from shapely.geometry import MultiPolygon, Polygon

from etl.demo.city import district_shapes, land, phase_rng
from etl.demo.grid import Grid, build_grid, cell_areas, cell_polygons_hex
from etl.demo.streets import Streets, build_streets


@dataclass(frozen=True)
class Layout:
    """Land, districts (in ``DISTRICTS`` order), streets, grid, and each cell's hex EWKB
    polygon and area in square metres."""

    land: Polygon
    districts: list[MultiPolygon]
    streets: Streets
    grid: Grid
    cell_geometry: list[str]
    cell_area: np.ndarray


@lru_cache(maxsize=1)
def city_layout() -> Layout:
    """The city's fixed layout (computed on first use, then shared; treat it as read-only)."""
    land_shape = land()
    districts = district_shapes(land_shape)
    grid = build_grid(districts, phase_rng(2))
    return Layout(
        land=land_shape,
        districts=districts,
        streets=build_streets(phase_rng(1), land_shape),
        grid=grid,
        cell_geometry=cell_polygons_hex(grid.cells),
        cell_area=np.round(cell_areas(grid.cells), 2),
    )
