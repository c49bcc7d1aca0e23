"""H3 helpers: cover a shape with cells, cell polygons, and cells as clients see them.

Cells are ``int`` (the ``bigint`` stored in PostGIS) inside CityHex and hex strings
(``"8a4b..."``) everywhere a client sees them.
"""

from __future__ import annotations

from collections.abc import Iterable

import h3
import h3.api.basic_int as h3_int
import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from gis.errors import BadRequest

DEFAULT_RES = 10
LEVELS = tuple(range(5, 12))
"""The resolutions whose cells the point layers store (analytics and ``_hex`` tiles use 5–11)."""
EXTRA_LEVELS = tuple(r for r in LEVELS if r != DEFAULT_RES)
"""The stored resolutions besides the unit grid's, each in a column ``h3_<res>``."""


def level_columns(prefix: str = "h3") -> dict[int, str]:
    """The column of each of ``EXTRA_LEVELS``: ``<prefix>_<res>``."""
    return {r: f"{prefix}_{r}" for r in EXTRA_LEVELS}


def cover_cells(shape: BaseGeometry, res: int = DEFAULT_RES) -> set[int]:
    """Every cell at ``res`` that overlaps the (multi)polygon ``shape``: a cover with no gap.

    Holes and multipolygons are honoured: a cell lying wholly inside a hole is left out.
    """
    cells: set[int] = set()
    for part in getattr(shape, "geoms", [shape]):
        if part.is_empty:
            continue
        h3shape = h3.geo_to_h3shape(part.__geo_interface__)
        found = h3.polygon_to_cells_experimental(h3shape, res, contain="overlap")
        cells.update(h3.str_to_int(c) for c in found)
    return cells


def cell_polygon(cell: int) -> shapely.Polygon:
    """The cell's boundary as a lon/lat polygon."""
    ring = [(lng, lat) for lat, lng in h3.cell_to_boundary(h3.int_to_str(cell))]
    return shapely.Polygon(ring)


def cell_polygons(cells: Iterable[int]) -> np.ndarray:
    """Polygons of many cells, as a shapely array."""
    return np.array([cell_polygon(c) for c in cells], dtype=object)


def cell_area_m2(cell: int) -> float:
    """The cell's true area in square metres."""
    return float(h3.cell_area(h3.int_to_str(cell), unit="m^2"))


def latlng_cells(lon: np.ndarray, lat: np.ndarray, res: int = DEFAULT_RES) -> np.ndarray:
    """The cell of every lon/lat point, as int64."""
    to_cell = h3_int.latlng_to_cell
    return np.fromiter(
        (to_cell(y, x, res) for x, y in zip(lon.tolist(), lat.tolist(), strict=True)),
        dtype=np.int64,
        count=len(lon),
    )


def cells_by_res(
    lon: np.ndarray, lat: np.ndarray, resolutions: Iterable[int]
) -> dict[int, np.ndarray]:
    """The cell containing every lon/lat point at each of ``resolutions`` (int64 arrays).

    Each resolution is computed from the point itself: H3 children do not tile their parent
    exactly, so a parent of a finer cell is not always the cell that contains the point.
    """
    return {int(r): latlng_cells(lon, lat, int(r)) for r in resolutions}


def level_cells(lon: np.ndarray, lat: np.ndarray, prefix: str = "h3") -> dict[str, np.ndarray]:
    """The columns ``<prefix>_<res>`` of ``EXTRA_LEVELS`` for points: column name to cells."""
    columns = level_columns(prefix)
    return {columns[r]: cells for r, cells in cells_by_res(lon, lat, columns).items()}


def point_cells(lon: float, lat: float, resolutions: Iterable[int]) -> dict[int, int]:
    """The cell containing one lon/lat point at each of ``resolutions``."""
    return {int(r): int(h3_int.latlng_to_cell(lat, lon, int(r))) for r in resolutions}


def to_hex(cell: int) -> str:
    """The client-facing form of a cell."""
    return h3.int_to_str(int(cell))


def parse_cell(value: str) -> int:
    """A client's hex cell string as an int; BadRequest when it is not a valid H3 cell."""
    try:
        cell = h3.str_to_int(value.strip().lower())
    except (ValueError, TypeError):
        cell = 0
    if not cell or not h3.is_valid_cell(h3.int_to_str(cell)):
        raise BadRequest(f"{value!r} is not an H3 cell (hex string)", code="invalid_cell")
    return cell


def largest_overlap(polys: np.ndarray, features: np.ndarray) -> np.ndarray:
    """For each polygon, the index of the feature holding most of its area (-1: none)."""
    tree = shapely.STRtree(features)
    best = np.full(len(polys), -1, dtype=np.int64)
    inside, holder = tree.query(polys, predicate="within")
    best[inside] = holder
    rest = np.flatnonzero(best < 0)
    part, feature = tree.query(polys[rest], predicate="intersects")
    if len(part):
        shared = shapely.area(shapely.intersection(polys[rest][part], tree.geometries[feature]))
        order = np.lexsort((-shared, part))
        first = np.unique(part[order], return_index=True)[1]
        chosen = order[first]
        keep = shared[chosen] > 0
        best[rest[part[chosen][keep]]] = feature[chosen][keep]
    return best
