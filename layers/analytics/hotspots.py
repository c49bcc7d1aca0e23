"""Hotspot maps: Getis-Ord Gi* of a layer's counts over the grid, and the stored
``hotspot_cells`` layer that tiles serve.

The study area is every cell of the unit grid (``grid_cells``) rolled up to the resolution,
zero-filled, plus any occupied cell outside it; with no grid it is the cover of the data's
extent (or of the requested bbox).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import h3
import numpy as np
import shapely
from sqlalchemy.ext.asyncio import AsyncConnection

from gis.analytics.gistar import CLASS_LABELS, GiStarResult, gi_star
from gis.errors import BadRequest, Forbidden, Unprocessable
from gis.hexgrid import cell_polygons, cover_cells, to_hex
from layers.analytics.aggregations import (
    Filters,
    cell_counts,
    check_res,
    data_extent,
    study_area_cells,
)
from layers.catalog.changes import publish_change
from layers.db.engine import raw_connection

MAX_K = 5
MAX_STUDY_CELLS = 200_000
LAYER_ID = "hotspots"
"""The catalog layer that publishes ``hotspot_cells``."""


@dataclass(frozen=True)
class HotspotMap:
    """Gi* over a study area, and where that study area came from ("grid" or "extent")."""

    res: int
    k: int
    fdr: bool
    study_area: str
    result: GiStarResult


def check_k(k: int) -> int:
    """``k`` if it is a usable ring size (1 .. MAX_K)."""
    if not 1 <= k <= MAX_K:
        raise BadRequest(f"k must be 1–{MAX_K}, not {k}", code="invalid_k")
    return k


def too_large(n: int, res: int) -> BadRequest:
    """The error for a study area of ``n`` cells."""
    return BadRequest(
        f"the study area has {n:,} cells at res {res}; at most {MAX_STUDY_CELLS:,}: "
        "use a coarser res or a bbox",
        code="study_area_too_large",
    )


def extent_cells(bbox: tuple[float, float, float, float], res: int) -> np.ndarray:
    """The cells covering ``bbox`` at ``res``, refused before covering when too many."""
    box = shapely.box(*bbox)
    mid_lat = np.radians((bbox[1] + bbox[3]) / 2)
    approx_km2 = (
        (bbox[2] - bbox[0]) * 111.32 * max(np.cos(mid_lat), 0.01) * (bbox[3] - bbox[1]) * 111.32
    )
    estimate = approx_km2 / h3.average_hexagon_area(res, unit="km^2")
    if estimate > MAX_STUDY_CELLS:
        raise too_large(int(estimate), res)
    return np.array(sorted(cover_cells(box, res)), dtype=np.int64)


async def study_area(conn: AsyncConnection, filters: Filters, res: int) -> tuple[np.ndarray, str]:
    """The study-area cells at ``res`` and their source ("grid" or "extent")."""
    cells = await study_area_cells(conn, res, filters.bbox)
    if len(cells):
        return cells, "grid"
    bbox = filters.bbox or await data_extent(conn, filters)
    if bbox is None:
        raise Unprocessable(
            "nothing to analyse: the grid has no cells and no rows match", code="no_data"
        )
    return extent_cells(bbox, res), "extent"


async def compute_hotspots(
    conn: AsyncConnection, filters: Filters, res: int, k: int, fdr: bool = False
) -> HotspotMap:
    """Gi* of the filtered rows' counts per cell at ``res`` with k-ring weights."""
    check_res(res)
    check_k(k)
    area, source = await study_area(conn, filters, res)
    occupied, counts = await cell_counts(conn, filters, res)
    cells = np.union1d(area, occupied)
    if len(cells) > MAX_STUDY_CELLS:
        raise too_large(len(cells), res)
    values = np.zeros(len(cells))
    values[np.searchsorted(cells, occupied)] = counts
    result = await asyncio.to_thread(gi_star, cells, values, k, fdr)
    return HotspotMap(res, k, fdr, source, result)


INSERT_CELLS = """
INSERT INTO hotspot_cells (layer, h3, cell, res, k, count, z, p, gi_bin, hotspot, fdr,
                           period_from, period_to, category, geom)
SELECT $1, h, c, $2, $3, n, z, p, b, l, $4, $5, $6, $7, ST_SetSRID(g::geometry, 4326)
FROM unnest($8::bigint[], $9::text[], $10::int[], $11::float8[], $12::float8[],
            $13::int[], $14::text[], $15::text[]) AS t(h, c, n, z, p, b, l, g)
"""


async def refresh_hotspot_cells(
    conn: AsyncConnection, filters: Filters, res: int, k: int, fdr: bool = False
) -> int:
    """Replace the stored hotspot cells of ``filters.layer`` with a fresh Gi* map; the number
    of significant cells stored. Runs in ``conn``'s transaction and announces the change.
    Forbidden for a caller whose view of the layer is limited (districts, departments, own
    cases): the stored map is the whole city's, and a part would replace it."""
    if filters.layer.visible.limited:
        raise Forbidden(
            f"the stored hotspot map covers every case of {filters.layer.id!r}; "
            "a key limited to districts, departments or its own cases cannot replace it",
            code="out_of_scope",
        )
    found = await compute_hotspots(conn, filters, res, k, fdr)
    r = found.result
    keep = np.nonzero(r.classes)[0]
    polygons = shapely.to_wkb(cell_polygons(r.cells[keep].tolist()), hex=True)
    category = ",".join(filters.categories) or None
    async with raw_connection(conn) as raw:
        await raw.execute("DELETE FROM hotspot_cells WHERE layer = $1", filters.layer.id)
        await raw.execute(
            INSERT_CELLS,
            filters.layer.id,
            res,
            k,
            fdr,
            filters.start,
            filters.end,
            category,
            r.cells[keep].tolist(),
            [to_hex(c) for c in r.cells[keep].tolist()],
            r.values[keep].astype(int).tolist(),
            r.z[keep].tolist(),
            r.p[keep].tolist(),
            r.classes[keep].astype(int).tolist(),
            [CLASS_LABELS[int(c)] for c in r.classes[keep]],
            list(polygons),
        )
    await publish_change(conn, LAYER_ID, None)
    return len(keep)
