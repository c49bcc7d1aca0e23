"""The demo city: a deterministic synthetic Shenzhen loaded into a CityHex database.

``load_demo`` writes districts, the res-10 unit grid and its inspectors, assets, sensors
with a month of readings, and a year of incidents with their histories, all with COPY in
one transaction; then it computes the incident hotspots (``etl.demo.hotspots``) so the
hotspots style has a map. The same seed gives the same city every time; a database that already
holds districts is left alone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import psycopg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from etl.copytext.ewkb import ewkb_hex
from etl.copytext.fields import timestamp_texts
from etl.copytext.writer import copy_columns
from etl.demo.assets import build_assets
from etl.demo.bulk_checks import drop_checks
from etl.demo.city import CITY_TZ, DISTRICTS, phase_rng
from etl.demo.hotspots import store_demo_hotspots
from etl.demo.incidents import Categories, build_incidents
from etl.demo.layout import Layout, city_layout
from etl.demo.people import People, build_people
from etl.demo.sensors import build_sensors
from gis.errors import BadRequest
from layers.catalog.changes import publish_change_sync
from layers.db.engine import connect_sync

MAX_SCALE = 10.0
LOCK_KEY = 0x43_48_58_44  # "CHXD": one demo load at a time per database
ASSIGNED_AT = datetime(2025, 10, 1, 9, 0, tzinfo=CITY_TZ)
PHASES = (
    "layout",
    "districts",
    "grid",
    "assets",
    "sensors",
    "readings",
    "incidents",
    "indexes",
    "analyze",
    "hotspots",
)
SERIAL_TABLES = ("districts", "users", "assets", "sensors", "incidents", "incident_transitions")
CHECKED_TABLES = (*SERIAL_TABLES, "grid_cells", "grid_assignments")
LOADED_TABLES = (*CHECKED_TABLES, "readings")
CHANGED_LAYERS = ("districts", "grid", "assets", "sensors", "incidents")


@dataclass
class DemoReport:
    """What a demo load did: whether it loaded, rows per table, seconds in all and per phase."""

    loaded: bool
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    message: str = ""


class _Phases:
    """Times the load's phases and shows them on a progress bar (when asked to)."""

    def __init__(self, show: bool) -> None:
        self.seconds: dict[str, float] = {}
        self.progress = Progress(
            TextColumn("[bold]demo city[/bold] {task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            disable=not show,
        )
        self.task = self.progress.add_task("", total=len(PHASES))

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time one phase and advance the bar when it ends."""
        self.progress.update(self.task, description=name)
        started = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - started, 3)
        self.progress.advance(self.task)


def _first_ids(conn: psycopg.Connection) -> dict[str, int]:
    """The first free id of every table whose ids the demo assigns."""
    return {
        t: conn.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {t}").fetchone()[0]
        for t in SERIAL_TABLES
    }


def _categories(conn: psycopg.Connection) -> Categories:
    """The seeded incident categories, in code order."""
    rows = conn.execute(
        "SELECT code, department_id, time_limit_hours::float8, name FROM incident_categories"
        " ORDER BY code"
    ).fetchall()
    if not rows:
        raise BadRequest("the database has no incident categories: run `cityhex migrate` first")
    code, dept, limit, name = zip(*rows, strict=True)
    return Categories(np.array(code), np.array(dept), np.array(limit), list(name))


def _write_grid(
    conn: psycopg.Connection, layout: Layout, people: People, ids: np.ndarray
) -> dict[str, int]:
    """COPY the grid cells, each with its district, inspector and supervisor, and the
    initial assignments; the row counts."""
    grid = layout.grid
    inspector = people.inspector[grid.block]
    n = len(grid.cells)
    cells = {
        "h3": grid.cells,
        "res": np.full(n, 10),
        "district_id": ids[grid.district],
        "area_m2": layout.cell_area,
        "inspector_id": inspector,
        "supervisor": [DISTRICTS[d].code for d in grid.district.tolist()],
        "geom": layout.cell_geometry,
    }
    assignments = {
        "h3": grid.cells,
        "from_inspector_id": [None] * n,
        "to_inspector_id": inspector,
        "actor": ["demo"] * n,
        "at": timestamp_texts(np.full(n, int(ASSIGNED_AT.timestamp()))),
        "note": ["initial assignment (demo city)"] * n,
    }
    return {
        "grid_cells": copy_columns(conn, "grid_cells", cells),
        "grid_assignments": copy_columns(conn, "grid_assignments", assignments),
    }


def _load(conn: psycopg.Connection, scale: float, phases: _Phases) -> dict[str, int]:
    """Generate and COPY the whole city inside ``conn``'s transaction; rows per table."""
    first = _first_ids(conn)
    departments = dict(conn.execute("SELECT code, id FROM departments").fetchall())
    categories = _categories(conn)
    remake = drop_checks(conn, CHECKED_TABLES)
    rows: dict[str, int] = {}
    with phases.phase("layout"):
        layout = city_layout()
        land_shape, streets, grid = layout.land, layout.streets, layout.grid
    with phases.phase("districts"):
        district_ids = np.arange(first["districts"], first["districts"] + len(DISTRICTS))
        rows["districts"] = copy_columns(conn, "districts", {
            "id": district_ids,
            "code": [d.code for d in DISTRICTS],
            "name": [d.name for d in DISTRICTS],
            "name_en": [d.name_en for d in DISTRICTS],
            "geom": ewkb_hex(np.array(layout.districts, dtype=object)),
        })  # fmt: skip
    with phases.phase("grid"):
        people = build_people(
            phase_rng(3), grid.block_district, district_ids, departments, first["users"]
        )
        rows["users"] = copy_columns(conn, "users", people.rows)
        rows |= _write_grid(conn, layout, people, district_ids)
    with phases.phase("assets"):
        codes = [d.code for d in DISTRICTS]
        assets = build_assets(
            phase_rng(4), streets, land_shape, grid, codes, departments, first["assets"], scale
        )
        rows["assets"] = copy_columns(conn, "assets", assets.rows)
    with phases.phase("sensors"):
        sensors = build_sensors(phase_rng(5), assets, streets, land_shape, first["sensors"], scale)
        rows["sensors"] = copy_columns(conn, "sensors", sensors.rows)
    with phases.phase("readings"):
        for ts in (sensors.readings["ts"][0], sensors.readings["ts"][-1]):
            conn.execute("SELECT readings_ensure_partition(%s::timestamptz::date)", (ts,))
        rows["readings"] = copy_columns(conn, "readings", sensors.readings)
    with phases.phase("incidents"):
        incidents = build_incidents(
            phase_rng(6), categories, streets, land_shape, grid, people, district_ids, assets,
            sensors, (first["incidents"], first["incident_transitions"]), scale,
        )  # fmt: skip
        rows["incidents"] = copy_columns(conn, "incidents", incidents.rows)
        rows["incident_transitions"] = copy_columns(
            conn, "incident_transitions", incidents.transitions
        )
    with phases.phase("indexes"):
        for statement in remake:
            conn.execute(statement)
        for table in SERIAL_TABLES:
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}"
            )
        for layer in CHANGED_LAYERS:
            publish_change_sync(conn, layer, None)
    return rows


def demo_present(conn: psycopg.Connection) -> bool:
    """Whether the database already holds the demo city (or any districts)."""
    return bool(conn.execute("SELECT EXISTS (SELECT 1 FROM districts)").fetchone()[0])


def load_demo(url: str, scale: float = 1.0, progress: bool = True) -> DemoReport:
    """Load the demo city at ``scale`` (1: ~100,000 assets, ~65,000 incidents) into ``url``.

    Deterministic; idempotent (a database that already holds districts is left as it is);
    all or nothing (one transaction). ``progress`` shows a progress bar on stderr.
    """
    if not 0 < scale <= MAX_SCALE:
        raise BadRequest(f"scale must be above 0 and at most {MAX_SCALE:g}, not {scale:g}")
    started = time.perf_counter()
    phases = _Phases(progress)
    with connect_sync(url) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        if demo_present(conn):
            message = "the database already holds districts (the demo city): nothing loaded"
            if progress:
                Console(stderr=True).print(message)
            return DemoReport(False, seconds=time.perf_counter() - started, message=message)
        with phases.progress:
            rows = _load(conn, scale, phases)
            conn.commit()
            with phases.phase("analyze"):
                conn.execute(f"ANALYZE {', '.join(LOADED_TABLES)}")
                conn.commit()
            with phases.phase("hotspots"):
                rows["hotspot_cells"] = store_demo_hotspots(url)
    seconds = round(time.perf_counter() - started, 3)
    message = f"demo city loaded at scale {scale:g}: {sum(rows.values()):,} rows in {seconds:.1f} s"
    return DemoReport(True, rows, seconds, phases.seconds, message)
