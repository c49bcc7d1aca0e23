"""``cityhex patrol prune``: retention of inspectors' GPS fixes."""

from __future__ import annotations

import typer

from layers.patrol.fixes import prune_fixes
from spatial_api.cli.common import prune_partitions, reports_errors

app = typer.Typer(help="Patrol: inspectors' GPS fixes.", no_args_is_help=True)


@app.command("prune")
@reports_errors
def prune(
    older_than: str = typer.Option(..., help="Age like 180d or 36h"),
    dry_run: bool = typer.Option(False, help="Only list the partitions that would go"),
) -> None:
    """Drop the day partitions whose fixes are all older than --older-than."""
    prune_partitions(prune_fixes, older_than, dry_run)
