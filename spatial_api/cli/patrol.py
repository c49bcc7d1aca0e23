"""``cityhex patrol prune``: retention of inspectors' GPS fixes."""

from __future__ import annotations

import asyncio

import typer

from layers.db.engine import create_async_engine
from layers.patrol.fixes import prune_fixes
from layers.sensors.readings import parse_age
from spatial_api.cli.common import console, ready_database, reports_errors

app = typer.Typer(help="Patrol: inspectors' GPS fixes.", no_args_is_help=True)


async def _prune(url: str, older_than: str, dry_run: bool) -> list[str]:
    engine = create_async_engine(url, pool_size=1, job=True)
    try:
        async with engine.begin() as conn:
            return await prune_fixes(conn, parse_age(older_than), dry_run=dry_run)
    finally:
        await engine.dispose()


@app.command("prune")
@reports_errors
def prune(
    older_than: str = typer.Option(..., help="Age like 180d or 36h"),
    dry_run: bool = typer.Option(False, help="Only list the partitions that would go"),
) -> None:
    """Drop the day partitions whose fixes are all older than --older-than."""
    dropped = asyncio.run(_prune(ready_database(), older_than, dry_run))
    verb = "would drop" if dry_run else "dropped"
    console.print(f"{verb} {len(dropped)} partition(s): {', '.join(dropped) or 'none'}")
