"""The demo city's hotspot map: Getis-Ord Gi* over all its incidents, stored in
``hotspot_cells`` (the ``hotspots`` tile layer and style) by the function that
``cityhex analytics hotspots`` calls, with that command's defaults."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from layers.analytics.aggregations import Filters, analysis_layer
from layers.analytics.hotspots import refresh_hotspot_cells
from layers.db.engine import create_async_engine

LAYER = "incidents"
RES = 9
"""H3 resolution of the cells (the command's default)."""
K = 1
"""k-ring radius of the weights (the command's default)."""


async def _store(url: str) -> int:
    engine = create_async_engine(url, pool_size=1, job=True)
    try:
        async with engine.begin() as conn:
            return await refresh_hotspot_cells(conn, Filters(analysis_layer(LAYER)), RES, K)
    finally:
        await engine.dispose()


def store_demo_hotspots(url: str) -> int:
    """Recompute and store the demo's incident hotspots in the database at ``url``; the
    number of significant cells stored. Runs its own event loop in a thread of its own, so
    it works from synchronous code whether or not an event loop runs in the caller's thread
    (a notebook, a Playwright session)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(_store(url))).result()
