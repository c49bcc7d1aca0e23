"""``cityhex export``: write layers to files (tiles for offline use, features for GIS desktops).

A Typer sub-app: each kind of export is one command registered on ``app``.
"""

from __future__ import annotations

import typer

from spatial_api.cli.importer import export_features_command

app = typer.Typer(
    help="Export layers to files: MBTiles/PMTiles tile sets, feature files.", no_args_is_help=True
)
app.command("features")(export_features_command)
