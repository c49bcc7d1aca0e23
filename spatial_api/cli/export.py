"""``cityhex export``: write layers to files (tiles for offline use, features for GIS desktops).

A Typer sub-app: each kind of export is one command registered on ``app``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer

from etl.exports.open_data.export import export_to_file
from spatial_api.cli.common import console, ready_database, reports_errors
from spatial_api.cli.importer import export_features_command
from tiles.export import Format, export_tiles, named_area

app = typer.Typer(
    help="Export layers to files: MBTiles/PMTiles tile sets, feature files, open data.",
    no_args_is_help=True,
)
app.command("features")(export_features_command)


def export_tile_set(
    fmt: Format,
    layers: str,
    bbox: str | None,
    cells: str | None,
    minzoom: int,
    maxzoom: int,
    output: Path,
    role: str,
) -> None:
    """Write the tiles of an area, as ``role`` is served them, to ``output`` and say what
    was written."""
    area = named_area(bbox, cells)
    report = export_tiles(ready_database(), layers, area, minzoom, maxzoom, output, fmt, role)
    console.print(
        f"{report.path}: {report.tiles} tiles ({report.empty} empty skipped), "
        f"{report.bytes / 1e6:.1f} MB in {report.seconds:.1f} s"
    )


LAYERS = typer.Option(..., "--layers", help="Tile layers, comma separated (e.g. grid,incidents)")
BBOX = typer.Option(None, "--bbox", help="Area as W,S,E,N in degrees")
CELLS = typer.Option(None, "--cells", help="Area as H3 cells (hex, comma separated)")
MINZOOM = typer.Option(12, "--minzoom", help="First zoom")
MAXZOOM = typer.Option(16, "--maxzoom", help="Last zoom")
OUTPUT = typer.Option(..., "-o", "--output", help="File to write")
ROLE = typer.Option(
    "inspector", "--role", help="The role whose tiles the file holds (its layers and properties)"
)


TILE_SET_NAMES = {"mbtiles": "MBTiles", "pmtiles": "PMTiles"}


def tile_set_command(fmt: Format) -> Callable[..., None]:
    """The command that writes the served tiles of an area as a ``fmt`` tile set."""

    def command(
        layers: str = LAYERS,
        bbox: str | None = BBOX,
        cells: str | None = CELLS,
        minzoom: int = MINZOOM,
        maxzoom: int = MAXZOOM,
        output: Path = OUTPUT,
        role: str = ROLE,
    ) -> None:
        export_tile_set(fmt, layers, bbox, cells, minzoom, maxzoom, output, role)

    command.__doc__ = (
        "Write the served tiles of an area (e.g. an inspector's patrol cells)"
        f" as {TILE_SET_NAMES[fmt]}."
    )
    return command


app.command("mbtiles")(reports_errors(tile_set_command("mbtiles")))
app.command("pmtiles")(reports_errors(tile_set_command("pmtiles")))


@app.command("open")
@reports_errors
def open_command(
    dataset: str = typer.Option(..., "--dataset", help="Open dataset, as listed at /open/"),
    output: Path = typer.Option(..., "-o", "--output", help="File to write: .csv, .geojson, .gpkg"),
) -> None:
    """Write an open dataset (desensitized, as served at /open/) to a file."""
    written = export_to_file(ready_database(), dataset, output)
    console.print(f"{output}: {written.rows} rows of {written.dataset}")
