"""Import a vector file (GeoJSON, GeoPackage, Shapefile, FlatGeobuf, CSV or OSM) into a
layer: read, reproject to EPSG:4326, validate, type, H3, and COPY in one transaction.

Every problem is found before anything is written; any that the options do not allow to
skip stops the import with all of them listed, and nothing is written. ``dry_run`` runs the
whole import, writes included, and rolls it back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
import pyproj

from etl.imports.copy_writer import UpsertKey, write_rows
from etl.imports.csv_source import read_csv
from etl.imports.feature_rows import bbox, spatial_order
from etl.imports.field_plan import FieldPlan, plan_fields
from etl.imports.geometry_prep import PreparedGeometry, prepare_geometry
from etl.imports.layer_create import (
    NewLayer,
    create_indexes,
    create_table,
    plan_new_layer,
    write_catalog_entry,
)
from etl.imports.options import ImportOptions
from etl.imports.osm import is_osm_file, read_osm
from etl.imports.osm_presets import get_preset
from etl.imports.progress import ImportProgress, NoProgress
from etl.imports.property_types import Coerced
from etl.imports.report import ImportReport, refuse, sort_problems
from etl.imports.rows import (
    build_rows,
    kept_on_update,
    layer_rules,
    missing_values,
    typed_columns,
    upsert_assignments,
    upsert_key,
)
from etl.imports.source_crs import crs_label, source_crs
from etl.imports.source_table import SourceTable
from etl.imports.target_table import TargetTable, describe_target
from etl.imports.vector_source import read_vector
from gis.errors import BadRequest, Unprocessable
from layers.catalog.changes import publish_change_sync
from layers.catalog.registry import load_catalog
from layers.db.job_connection import job_connection

CSV_SUFFIXES = (".csv", ".tsv", ".txt")


def read_source(path: Path, options: ImportOptions) -> tuple[SourceTable, list[str]]:
    """The rows of the file (by its kind), and notes on anything left out while reading."""
    if not path.exists():
        raise BadRequest(f"no such file: {path}", code="missing_file")
    if options.osm_preset or is_osm_file(path):
        if not is_osm_file(path):
            raise BadRequest(
                f"--osm-preset reads OSM files (.osm, .osm.pbf), not {path.name}", code="not_osm"
            )
        return read_osm(path, get_preset(options.osm_preset))
    if path.suffix.lower() in CSV_SUFFIXES:
        return read_csv(path, options.lon_field, options.lat_field, options.wkt_field), []
    return read_vector(path, options.source_layer), []


def import_file(
    url: str, path: Path, options: ImportOptions, progress: ImportProgress | None = None
) -> ImportReport:
    """Import ``path`` into ``options.layer`` as the options say; the report of what it did."""
    started = time.perf_counter()
    progress = progress or NoProgress()
    report = ImportReport(
        layer=options.layer,
        source=path.name,
        mode=options.mode,
        dry_run=options.dry_run,
        created=options.create,
    )
    progress.stage("read")
    table, report.notes = read_source(Path(path), options)
    table = table.renamed(options.field_map)
    report.read = len(table)
    if not len(table):
        raise Unprocessable(f"{path.name} has no features to import", code="empty_source")
    crs = source_crs(table.declared_crs, options.src_crs, path.name)
    report.crs = table.crs_note if table.crs_note and not options.src_crs else crs_label(crs)
    new = _plan_layer(table, path, options)
    layer = new.layer if new else load_catalog().get(options.layer)
    with job_connection(url) as conn, conn.transaction():
        conn.execute("SET LOCAL TimeZone = 'UTC'")
        if new:
            create_table(conn, new)
        run = _Run(conn, describe_target(conn, layer), options, report, progress, new)
        _write(run, _check(run, table, crs))
        if options.dry_run:
            raise psycopg.Rollback()
    if new and not options.dry_run:
        report.notes.append(f"new layer {layer.id!r} published: {write_catalog_entry(layer)}")
    report.seconds = time.perf_counter() - started
    return report


def _plan_layer(table: SourceTable, path: Path, options: ImportOptions) -> NewLayer | None:
    if not options.create:
        return None
    return plan_new_layer(
        options.layer, table, path.name, options.title, options.time_field, options.public
    )


@dataclass
class _Run:
    """One import inside its transaction: where it writes, how, and what it reports."""

    conn: psycopg.Connection
    target: TargetTable
    options: ImportOptions
    report: ImportReport
    progress: ImportProgress
    new: NewLayer | None


@dataclass
class _Checked:
    """Rows that passed every check, in the order they are written."""

    table: SourceTable
    geometry: PreparedGeometry
    columns: dict[str, Coerced]
    plan: FieldPlan
    key: UpsertKey | None


def _check(run: _Run, table: SourceTable, crs: pyproj.CRS) -> _Checked:
    """Geometries, property types, the layer's rules and keys of every row; a refusal that
    lists every problem when any row fails."""
    options, target = run.options, run.target
    run.progress.stage("check", len(table))
    geometry = prepare_geometry(table, crs, target.geometry_type, options.invalid)
    run.report.repaired, run.report.rejected = geometry.repaired, geometry.rejected
    if geometry.fatal:
        summary = (
            f"{len(geometry.fatal)} geometries cannot be imported (--invalid {options.invalid})"
        )
        raise refuse(summary, sort_problems(geometry.fatal), "invalid_geometry")
    order = np.flatnonzero(geometry.keep)
    order = order[spatial_order(geometry.lon[order], geometry.lat[order])]
    table, geometry = table.take(order), geometry.rows(order)
    plan = plan_fields(list(table.columns), target, options.key)
    if plan.dropped:
        run.report.notes.append(
            f"fields not kept (layer {target.layer.id!r} has no place for them): "
            f"{', '.join(plan.dropped)}"
        )
    columns, problems = typed_columns(table, target, plan)
    problems += layer_rules(run.conn, target, columns, table, geometry, options)
    problems += missing_values(target, columns, table)
    key, key_problems = upsert_key(options, target, columns, plan, table)
    problems += key_problems
    if problems:
        summary = f"{len(problems)} values do not fit layer {target.layer.id!r}"
        raise refuse(summary, sort_problems(problems), "invalid_properties")
    run.progress.advance(len(table))
    return _Checked(table, geometry, columns, plan, key)


def _write(run: _Run, rows: _Checked) -> None:
    """COPY the checked rows, build a new layer's indexes, announce the changed extent."""
    layer, report = run.target.layer, run.report
    copy_rows = build_rows(
        rows.table, rows.geometry, rows.columns, rows.plan, run.target, run.options.actor
    )
    update = None
    if rows.key is not None:
        keep = kept_on_update(run.target, rows.plan)
        update = upsert_assignments(copy_rows, run.target, rows.key, keep)
    run.progress.stage("write", len(copy_rows))
    counts = write_rows(
        run.conn,
        layer,
        copy_rows,
        run.options.mode,
        run.options.actor,
        rows.key,
        update,
        run.progress.advance,
    )
    report.inserted, report.updated, report.deleted = (
        counts.inserted,
        counts.updated,
        counts.deleted,
    )
    report.written = counts.inserted + counts.updated
    if run.new:
        run.progress.stage("index")
        create_indexes(run.conn, run.new)
    box = bbox(rows.geometry.lon, rows.geometry.lat, rows.geometry.geoms)
    boxes = None if run.options.mode == "replace" else [b for b in (box, counts.old_extent) if b]
    publish_change_sync(run.conn, layer.id, boxes)
