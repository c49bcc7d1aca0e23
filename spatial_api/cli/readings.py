"""``cityhex readings prune``: retention of sensor readings."""

from __future__ import annotations

import asyncio

import typer

from layers.db.engine import create_async_engine
from layers.sensors.readings import parse_age, prune_readings
from spatial_api.cli.common import console, ready_database, reports_errors

app = typer.Typer(help="Sensor readings.", no_args_is_help=True)


async def _prune(url: str, older_than: str, dry_run: bool) -> list[str]:
    engine = create_async_engine(url, pool_size=1, job=True)
    try:
        async with engine.begin() as conn:
            return await prune_readings(conn, parse_age(older_than), dry_run=dry_run)
    finally:
        await engine.dispose()


@app.command("prune")
@reports_errors
def prune(
    older_than: str = typer.Option(..., help="Age like 400d or 36h"),
    dry_run: bool = typer.Option(False, help="Only list the partitions that would go"),
) -> None:
    """Drop the monthly partitions whose readings are all older than --older-than."""
    dropped = asyncio.run(_prune(ready_database(), older_than, dry_run))
    verb = "would drop" if dry_run else "dropped"
    console.print(f"{verb} {len(dropped)} partition(s): {', '.join(dropped) or 'none'}")
