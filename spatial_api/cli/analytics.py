"""``cityhex analytics hotspots``: store a layer's Gi* hotspot cells for the map."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import typer

from layers.analytics.aggregations import (
    Filters,
    analysis_layer,
    check_categories_exist,
    parse_categories,
)
from layers.analytics.hotspots import refresh_hotspot_cells
from layers.db.engine import create_async_engine
from spatial_api.cli.common import console, ready_database, reports_errors

app = typer.Typer(help="Analytics: hotspot maps for the tiles.", no_args_is_help=True)


async def _refresh(url: str, filters: Filters, res: int, k: int, fdr: bool) -> int:
    engine = create_async_engine(url, pool_size=1, job=True)
    try:
        async with engine.begin() as conn:
            await check_categories_exist(conn, filters.categories)
            return await refresh_hotspot_cells(conn, filters, res, k, fdr)
    finally:
        await engine.dispose()


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value and value.tzinfo is None else value


@app.command("hotspots")
@reports_errors
def hotspots_command(
    layer: str = typer.Option("incidents", help="A point layer of the catalog"),
    res: int = typer.Option(9, help="H3 resolution, 5–11"),
    k: int = typer.Option(1, help="k-ring radius of the weights, 1–5"),
    fdr: bool = typer.Option(False, help="Benjamini–Hochberg false-discovery-rate correction"),
    start: datetime | None = typer.Option(None, "--from", help="Start of the period (UTC)"),
    end: datetime | None = typer.Option(None, "--to", help="End of the period (UTC)"),
    category: str | None = typer.Option(None, help="Comma list of categories or major classes"),
) -> None:
    """Recompute Gi* and replace LAYER's rows of hotspot_cells (the 'hotspots' tile layer)."""
    filters = Filters(analysis_layer(layer), _utc(start), _utc(end), parse_categories(category))
    stored = asyncio.run(_refresh(ready_database(), filters, res, k, fdr))
    console.print(f"{stored} significant cells of {layer!r} stored in hotspot_cells")
