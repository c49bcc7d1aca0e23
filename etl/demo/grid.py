"""The demo city's unit grid: H3 cells over the districts, and the inspectors' blocks of cells.

A cell that two districts both cover goes to the one holding more of it. Inspectors get
compact, contiguous territories of about ``CELLS_PER_INSPECTOR`` cells within a district.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain

import numpy as np
import shapely
from h3.api import numpy_int as h3n
from scipy.cluster.vq import kmeans2
from shapely.geometry import MultiPolygon

from etl.copytext.ewkb import ewkb_hex, ewkb_hex_rings
from etl.demo.city import to_metres
from gis.hexgrid import DEFAULT_RES, cell_polygon, cover_cells

CELLS_PER_INSPECTOR = 700


@dataclass(frozen=True)
class Grid:
    """The grid's cells (sorted), each one's district (index into the districts) and block.

    ``block`` numbers the inspectors' territories 0..n-1 across the whole city;
    ``block_district`` gives the district of each territory.
    """

    cells: np.ndarray
    district: np.ndarray
    block: np.ndarray
    block_district: np.ndarray

    def locate(self, cells: np.ndarray) -> np.ndarray:
        """The index of every cell in the grid, -1 for a cell outside it."""
        idx = np.clip(np.searchsorted(self.cells, cells), 0, len(self.cells) - 1)
        return np.where(self.cells[idx] == cells, idx, -1)


def _hexagon_rings(cells: np.ndarray) -> np.ndarray | None:
    """The ``(n, 6, 2)`` lon/lat boundaries of the cells; None if any is not a hexagon."""
    bounds = [h3n.cell_to_boundary(c) for c in cells.tolist()]
    if not all(len(b) == 6 for b in bounds):
        return None
    flat = chain.from_iterable(chain.from_iterable(bounds))
    lat_lon = np.fromiter(flat, float, count=12 * len(bounds)).reshape(-1, 6, 2)
    return lat_lon[:, :, ::-1]


def cell_polygons(cells: np.ndarray) -> np.ndarray:
    """The lon/lat boundary polygon of every cell, as a shapely array."""
    rings = _hexagon_rings(cells)
    if rings is None:
        return np.array([cell_polygon(c) for c in cells.tolist()], dtype=object)
    return shapely.polygons(rings)


def cell_polygons_hex(cells: np.ndarray) -> list[str]:
    """The boundary polygon of every cell as hex EWKB."""
    rings = _hexagon_rings(cells)
    if rings is None:
        return ewkb_hex(cell_polygons(cells))
    return ewkb_hex_rings(rings)


def cell_areas(cells: np.ndarray) -> np.ndarray:
    """The true area of every cell in square metres."""
    return np.fromiter((h3n.cell_area(c, "m^2") for c in cells.tolist()), float, len(cells))


def _claims(shapes: list[MultiPolygon], res: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (cell, district) pair where the district's cover holds the cell, sorted by cell."""
    covers = [np.fromiter(cover_cells(shape, res), np.int64) for shape in shapes]
    cells = np.concatenate(covers)
    owner = np.repeat(np.arange(len(shapes)), [len(c) for c in covers])
    order = np.lexsort((owner, cells))
    return cells[order], owner[order]


def assign_districts(
    shapes: list[MultiPolygon], res: int = DEFAULT_RES
) -> tuple[np.ndarray, np.ndarray]:
    """The grid's sorted cells and, for each, the district that holds most of it."""
    cells, owner = _claims(shapes, res)
    _, counts = np.unique(cells, return_counts=True)
    shared = np.repeat(counts > 1, counts)
    share = np.zeros(len(cells))
    districts = np.array(shapes, dtype=object)
    polygons = cell_polygons(cells[shared])
    share[shared] = shapely.area(shapely.intersection(polygons, districts[owner[shared]]))
    order = np.lexsort((owner, -share, cells))
    first = np.r_[True, cells[order][1:] != cells[order][:-1]]
    return cells[order][first], owner[order][first]


def cell_centres(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The lon/lat centre of every cell."""
    lat_lon = np.array([h3n.cell_to_latlng(c) for c in cells.tolist()]).reshape(-1, 2)
    return lat_lon[:, 1], lat_lon[:, 0]


def inspector_blocks(
    cells: np.ndarray,
    district: np.ndarray,
    rng: np.random.Generator,
    per_inspector: int = CELLS_PER_INSPECTOR,
) -> tuple[np.ndarray, np.ndarray]:
    """Each cell's territory number, and each territory's district.

    A district of n cells gets ``round(n / per_inspector)`` territories: k-means clusters of
    its cell centres, which makes compact, contiguous blocks of nearly equal size.
    """
    x, y = to_metres(*cell_centres(cells))
    block = np.empty(len(cells), dtype=np.int64)
    block_district: list[int] = []
    for d in np.unique(district).tolist():
        idx = np.flatnonzero(district == d)
        k = max(1, round(len(idx) / per_inspector))
        points = np.column_stack([x[idx], y[idx]])
        _, label = kmeans2(points, k, iter=30, minit="++", seed=rng)
        _, label = np.unique(label, return_inverse=True)
        block[idx] = len(block_district) + label
        block_district += [d] * int(label.max() + 1)
    return block, np.array(block_district, dtype=np.int64)


def build_grid(
    shapes: list[MultiPolygon], rng: np.random.Generator, res: int = DEFAULT_RES
) -> Grid:
    """The unit grid over the districts with its inspectors' territories."""
    cells, district = assign_districts(shapes, res)
    block, block_district = inspector_blocks(cells, district, rng)
    return Grid(cells, district, block, block_district)
