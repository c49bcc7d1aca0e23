"""``cityhex grid build`` and ``cityhex grid partition``."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.table import Table

from gis.boundary import boundary_from_bbox, boundary_from_file
from gis.errors import BadRequest
from gis.hexgrid import DEFAULT_RES
from layers.db.engine import create_async_engine
from layers.grid.build import build_from
from layers.grid.territories import TerritoryRequest, plan_territories
from layers.grid.weights import parse_weight
from spatial_api.cli.common import console, ready_database, reports_errors

app = typer.Typer(help="The H3 city grid and its territories.", no_args_is_help=True)
ACTOR = "cli"


@app.command("build")
@reports_errors
def build_command(
    boundary: Path | None = typer.Option(None, help="A vector file of polygons to grid"),
    src_crs: str | None = typer.Option(None, help="CRS of the boundary file (default: its own)"),
    bbox: str | None = typer.Option(None, help="A lon/lat box W,S,E,N to grid"),
    districts: bool = typer.Option(False, "--districts", help="Grid the districts table"),
    res: int = typer.Option(DEFAULT_RES, help="H3 resolution"),
    report: Path | None = typer.Option(None, help="Write every added and dropped cell here"),
) -> None:
    """Cover the boundary with H3 cells, keeping the assignments of cells that stay."""
    if sum([boundary is not None, bbox is not None, districts]) != 1:
        raise BadRequest("give exactly one of --boundary, --bbox or --districts")
    if boundary is not None:
        area = boundary_from_file(boundary, src_crs)
    else:
        area = boundary_from_bbox(bbox) if bbox else None
    result = build_from(ready_database(), area, res, ACTOR)
    console.print(
        f"grid at res {result.res}: {result.cells:,} cells, {len(result.added):,} added, "
        f"{len(result.dropped):,} dropped, {result.kept_assignments:,} assignments kept "
        f"({result.seconds:.1f} s)"
    )
    if report is not None:
        full = result.as_json(limit=max(len(result.added), len(result.dropped)))
        report.write_bytes(orjson.dumps(full, option=orjson.OPT_INDENT_2))


async def _plan(url: str, request: TerritoryRequest) -> dict[str, Any]:
    engine = create_async_engine(url, pool_size=1, job=True)
    try:
        async with engine.begin() as conn:
            return await plan_territories(conn, request, ACTOR)
    finally:
        await engine.dispose()


def _inspectors(count: int | None, ids: str | None) -> int | list[int]:
    if (count is None) == (ids is None):
        raise BadRequest("give exactly one of --inspectors N or --inspector-ids ID,ID,…")
    if ids is None:
        return int(count)
    try:
        return [int(v) for v in ids.split(",") if v.strip()]
    except ValueError:
        raise BadRequest(f"--inspector-ids {ids!r} must be a comma list of user ids") from None


@app.command("partition")
@reports_errors
def partition_command(
    inspectors: int | None = typer.Option(None, help="N territories (inspectors made if few)"),
    inspector_ids: str | None = typer.Option(None, help="Comma list of inspector user ids"),
    weight: str = typer.Option("cells", help="cells, area, assets, incidents or property:NAME"),
    since: datetime | None = typer.Option(None, "--from", help="Incidents from (UTC)"),
    until: datetime | None = typer.Option(None, "--to", help="Incidents until (UTC)"),
    keep_current: bool = typer.Option(False, help="Move as few cells as the balance needs"),
    apply: bool = typer.Option(False, help="Write the plan (default: a dry run)"),
    tolerance: float = typer.Option(1.10, help="Largest workload over the mean to reach"),
    plan: Path | None = typer.Option(None, help="Write the plan with every cell here"),
) -> None:
    """Split the grid into connected territories of balanced workload, one per inspector."""
    request = TerritoryRequest(
        inspectors=_inspectors(inspectors, inspector_ids),
        weight=parse_weight(weight, since, until),
        keep_current=keep_current,
        apply=apply,
        tolerance=tolerance,
        include_cells=plan is not None,
    )
    result = asyncio.run(_plan(ready_database(), request))
    table = Table("inspector", "name", "cells", "workload")
    for item in result["territories"]:
        person = item["inspector"]
        table.add_row(
            str(person["id"] or "new"),
            person["name"],
            f"{item['cells']:,}",
            f"{item['workload']:,.1f}",
        )
    console.print(table)
    console.print(
        f"balance (max/mean) {result['balance']:.3f}, connected: {result['connected']}, "
        f"{result['moved']:,} cells change inspector, {result['seconds']:.2f} s; "
        + ("applied" if result["applied"] else "dry run: nothing written")
    )
    if plan is not None:
        plan.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
