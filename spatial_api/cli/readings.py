"""``cityhex readings prune``: retention of sensor readings."""

from __future__ import annotations

import typer

from layers.sensors.readings import prune_readings
from spatial_api.cli.common import prune_partitions, reports_errors

app = typer.Typer(help="Sensor readings.", no_args_is_help=True)


@app.command("prune")
@reports_errors
def prune(
    older_than: str = typer.Option(..., help="Age like 400d or 36h"),
    dry_run: bool = typer.Option(False, help="Only list the partitions that would go"),
) -> None:
    """Drop the monthly partitions whose readings are all older than --older-than."""
    prune_partitions(prune_readings, older_than, dry_run)
