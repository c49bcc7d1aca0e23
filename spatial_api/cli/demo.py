"""``cityhex demo [--scale S]``: load the demo city."""

from __future__ import annotations

import typer
from rich.table import Table

from etl.demo.loader import load_demo
from layers.db.migrate import migrate
from spatial_api.cli.common import console, ready_database, reports_errors


@reports_errors
def demo_command(
    scale: float = typer.Option(
        1.0, help="Size of the city: 1 gives ~100,000 assets and ~65,000 incidents."
    ),
) -> None:
    """Load the deterministic demo city (Shenzhen) unless the database already holds it."""
    url = ready_database()
    migrate(url)
    report = load_demo(url, scale=scale, progress=True)
    if not report.loaded:
        return
    table = Table("table", "rows", title=report.message)
    for name, count in report.rows.items():
        table.add_row(name, f"{count:,}")
    console.print(table)
