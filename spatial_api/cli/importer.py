"""``cityhex import FILE --layer L``, ``cityhex raster zonal FILE`` and the ``features``
command of ``cityhex export``: the ETL commands, with a progress bar and a final report."""

from __future__ import annotations

from pathlib import Path

import orjson
import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from etl.exports.features import export_features
from etl.imports.options import options_from_input
from etl.imports.raster_zonal import STATS, zonal_stats
from etl.imports.report import ImportReport, problem_list
from etl.imports.vector import import_file
from spatial_api.cli.common import console, ready_database, reports_errors

raster_app = typer.Typer(help="Raster data onto the grid.", no_args_is_help=True)


class BarProgress:
    """An import's stages as a rich progress bar on stderr."""

    def __init__(self, bar: Progress) -> None:
        self.bar = bar
        self.task: TaskID | None = None

    def stage(self, name: str, total: int | None = None) -> None:
        """Finish the current stage's bar and start one for ``name``."""
        if self.task is not None:
            done = self.bar.tasks[self.task].total
            self.bar.update(self.task, completed=done if done is not None else 1, total=done or 1)
        self.task = self.bar.add_task(name, total=total)

    def advance(self, rows: int) -> None:
        """Move the current bar on by ``rows``."""
        if self.task is not None:
            self.bar.advance(self.task, rows)


def print_report(report: ImportReport) -> None:
    """The final account of an import: counts, time, CRS, and every repair and rejection."""
    title = f"import {report.source} → {report.layer}"
    table = Table(
        title=title + (" (dry run: nothing written)" if report.dry_run else ""), show_header=False
    )
    rate = report.read / report.seconds if report.seconds else 0.0
    rows = [
        ("read", f"{report.read:,}"),
        ("would write" if report.dry_run else "written", f"{report.written:,}"),
        (
            "inserted / updated / deleted",
            f"{report.inserted:,} / {report.updated:,} / {report.deleted:,}",
        ),
        ("repaired", f"{len(report.repaired):,}"),
        ("rejected", f"{len(report.rejected):,}"),
        ("seconds", f"{report.seconds:.2f} ({rate:,.0f} rows/s)"),
        ("CRS", report.crs),
        ("mode", report.mode + (", new layer" if report.created else "")),
    ]
    for label, value in rows:
        table.add_row(label, value)
    console.print(table)
    if report.repaired:
        console.print(f"[yellow]repaired[/yellow]:\n{problem_list(report.repaired)}")
    if report.rejected:
        console.print(f"[yellow]rejected[/yellow]:\n{problem_list(report.rejected)}")
    for note in report.notes:
        console.print(f"note: {note}")


@reports_errors
def import_command(
    file: Path = typer.Argument(
        ..., help="GeoJSON, GeoPackage, Shapefile, FlatGeobuf, CSV or OSM (.osm, .osm.pbf) file"
    ),
    layer: str = typer.Option(..., "--layer", "-l", help="The layer to import into"),
    src_crs: str | None = typer.Option(
        None,
        help="CRS of the file's coordinates when it "
        "states none (or states a wrong one): EPSG:4490 …",
    ),
    field_map: list[str] = typer.Option(
        [], "--map", help="field=property: store a field under another name (repeatable)"
    ),
    key: str | None = typer.Option(
        None, help="The property that identifies a feature (for --mode upsert)"
    ),
    mode: str = typer.Option(
        "append",
        help="append, upsert (update by --key, insert the "
        "rest) or replace (delete the layer's rows first)",
    ),
    invalid: str = typer.Option(
        "reject",
        help="Invalid geometries: reject (stop, write "
        "nothing), repair (make_valid) or skip (leave them out)",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check and write, then roll back"),
    source_layer: str | None = typer.Option(None, help="Layer of a multi-layer file (GPKG)"),
    lon_field: str | None = typer.Option(None, help="CSV column of longitudes (or x)"),
    lat_field: str | None = typer.Option(None, help="CSV column of latitudes (or y)"),
    wkt_field: str | None = typer.Option(None, help="CSV column of WKT geometries"),
    create: bool = typer.Option(False, "--create", help="Make a new layer from the file"),
    time_field: str | None = typer.Option(
        None, help="With --create: the field holding each feature's time (datetime, from, to)"
    ),
    title: str | None = typer.Option(None, help="With --create: the new layer's title"),
    public: bool = typer.Option(False, "--public", help="With --create: anyone may read it"),
    osm_preset: str | None = typer.Option(
        None, help="OSM files: street-furniture, roads or buildings"
    ),
    division: str | None = typer.Option(
        None, help="Assets without a code: the 6-digit division code their new codes start with"
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout"),
) -> None:
    """Import a vector file into a layer, reprojected to EPSG:4326 and checked row by row."""
    options = options_from_input(locals(), actor="cli:import")  # the flags, by their names
    url = ready_database()
    columns = (
        TextColumn("{task.description:>6}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        report = import_file(url, file, options, BarProgress(bar))
    print_report(report)
    if as_json:
        typer.echo(orjson.dumps(report.to_dict()).decode())


@raster_app.command("zonal")
@reports_errors
def zonal_command(
    file: Path = typer.Argument(..., help="A raster (GeoTIFF or any GDAL raster) in any CRS"),
    stat: str = typer.Option(..., help=f"The statistic per grid cell: {', '.join(STATS)}"),
    as_property: str = typer.Option(..., "--as", help="The cell property that stores it"),
    band: int = typer.Option(1, help="The raster band"),
) -> None:
    """Store a zonal statistic of a raster on every grid cell (pixels by their centres)."""
    result = zonal_stats(ready_database(), file, stat, as_property, band)
    total = f"; total {result.total:,.6g}" if stat == "sum" else ""
    console.print(
        f"{result.cells_with_data:,} of {result.cells:,} cells got {as_property} "
        f"({stat} of {result.pixels:,} pixels in {result.crs}){total}; {result.seconds:.2f} s"
    )


@reports_errors
def export_features_command(
    layer: str = typer.Option(..., "--layer", "-l", help="The layer to export"),
    output: Path = typer.Option(
        ..., "--output", "-o", help="The file to write: .geojson, .gpkg or .fgb"
    ),
    crs: str = typer.Option("EPSG:4326", help="CRS of the written coordinates"),
) -> None:
    """Write a layer's features to a GeoJSON, GeoPackage or FlatGeobuf file in any CRS."""
    count = export_features(ready_database(), layer, output, crs)
    console.print(f"{count:,} features of {layer} written to {output} ({crs})")
