"""``cityhex attachments sweep``: remove attachment files no attachment row names."""

from __future__ import annotations

import asyncio

import orjson
import typer

from layers.attachments.store import SweepReport, sweep
from layers.db.engine import create_async_engine
from spatial_api.cli.common import ready_database, reports_errors

app = typer.Typer(help="Photos and documents of cases and features.", no_args_is_help=True)


async def _sweep(url: str, temporary_hours: float, dry_run: bool) -> SweepReport:
    engine = create_async_engine(url, pool_size=1)
    try:
        return await sweep(engine, temporary_older_than_s=temporary_hours * 3600, dry_run=dry_run)
    finally:
        await engine.dispose()


@app.command("sweep")
@reports_errors
def sweep_command(
    temporary_hours: float = typer.Option(
        1.0, min=0, help="Remove temporary files of uploads older than this many hours"
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only say what would be removed"),
) -> None:
    """Remove the files (and thumbnails) under CITYHEX_HOME/attachments that no attachment
    names, and temporary files left by interrupted uploads; print what was removed as JSON."""
    report = asyncio.run(_sweep(ready_database(), temporary_hours, dry_run))
    typer.echo(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2).decode())
