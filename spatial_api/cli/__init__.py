"""The ``cityhex`` command line: one Typer app with a sub-command per concern."""

from __future__ import annotations

import typer

from spatial_api.cli import (
    analytics,
    attachments,
    audit,
    db,
    demo,
    export,
    importer,
    incidents,
    ingest,
    keys,
    patrol,
    readings,
    serve,
)
from spatial_api.cli import grid as grid_cli

app = typer.Typer(help="CityHex: the spatial operations server of a city.", no_args_is_help=True)
app.add_typer(db.app, name="db")
app.add_typer(keys.app, name="keys")
app.add_typer(ingest.app, name="ingest")
app.add_typer(readings.app, name="readings")
app.add_typer(export.app, name="export")
app.command("migrate")(db.migrate_command)
app.command("import")(importer.import_command)
app.add_typer(importer.raster_app, name="raster")
app.command("serve")(serve.serve_command)
app.command("demo")(demo.demo_command)
app.add_typer(analytics.app, name="analytics")
app.add_typer(grid_cli.app, name="grid")
app.add_typer(audit.app, name="audit")
app.add_typer(incidents.app, name="incidents")
app.add_typer(patrol.app, name="patrol")
app.add_typer(attachments.app, name="attachments")


def main() -> None:
    """Entry point of the ``cityhex`` console script."""
    app()
