"""The demo city: loaded at scale 0.05 into fresh databases and checked with independent SQL,
the h3 package and the workflow's own rules."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import h3
import networkx as nx
import orjson
import psycopg
import pytest

from etl.demo import loader as demo
from etl.demo.hotspots import store_demo_hotspots
from etl.demo.loader import DemoReport, load_demo
from gis.errors import BadRequest
from layers.incidents.workflow import ACTIONS, REPORT, STATES

SCALE = 0.05
LOADED = ("districts", "users", "grid_cells", "grid_assignments", "assets", "sensors",
          "readings", "incidents", "incident_transitions")  # fmt: skip
OCT_HOURS = 31 * 24


@pytest.fixture(scope="module")
def loaded(new_database) -> tuple[str, DemoReport]:
    """A fresh database with the demo city at scale 0.05, and the load's report."""
    url = new_database("demo_test")
    return url, load_demo(url, SCALE, progress=False)


@pytest.fixture(scope="module")
def db(loaded: tuple[str, DemoReport]) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the demo database."""
    with psycopg.connect(loaded[0], autocommit=True) as conn:
        yield conn


def scalar(conn: psycopg.Connection, query: str, params: tuple = ()) -> object:
    return conn.execute(query, params).fetchone()[0]


def test_the_demo_computes_its_hotspots(
    loaded: tuple[str, DemoReport], db: psycopg.Connection
) -> None:
    """The hotspots style has a map after the demo alone: significant Gi* cells of the
    incidents at res 9, each with the count of incidents inside it (by h3.latlng_to_cell)."""
    report = loaded[1]
    stored = db.execute(
        "SELECT cell, res, k, count, z, gi_bin FROM hotspot_cells WHERE layer = 'incidents'"
    ).fetchall()
    assert stored and report.rows["hotspot_cells"] == len(stored)
    counts: dict[str, int] = {}
    for lat, lon in db.execute("SELECT ST_Y(geom), ST_X(geom) FROM incidents"):
        cell = h3.latlng_to_cell(lat, lon, 9)
        counts[cell] = counts.get(cell, 0) + 1
    for cell, res, k, count, z, gi_bin in stored:
        assert (res, k) == (9, 1)
        assert count == counts.get(cell, 0), cell
        assert gi_bin != 0 and (z > 0) == (gi_bin > 0) and abs(z) >= 1.644
    assert any(gi_bin > 0 for *_, gi_bin in stored)


def test_the_hotspot_step_runs_inside_a_running_event_loop(
    loaded: tuple[str, DemoReport], db: psycopg.Connection
) -> None:
    """As the demo does it, called again from a coroutine: the same cells come back."""
    before = db.execute("SELECT cell, z FROM hotspot_cells ORDER BY cell").fetchall()

    async def from_a_coroutine() -> int:
        return store_demo_hotspots(loaded[0])

    assert asyncio.run(from_a_coroutine()) == len(before)
    after = db.execute("SELECT cell, z FROM hotspot_cells ORDER BY cell").fetchall()
    assert [c for c, _ in after] == [c for c, _ in before]
    assert [z for _, z in after] == pytest.approx([z for _, z in before])


def test_report_counts_what_is_in_the_tables(
    loaded: tuple[str, DemoReport], db: psycopg.Connection
) -> None:
    report = loaded[1]
    assert report.loaded
    for table in LOADED:
        assert report.rows[table] == scalar(db, f"SELECT count(*) FROM {table}"), table
    assert scalar(db, "SELECT count(*) FROM districts") == 12
    assert report.rows["assets"] == round(100_000 * SCALE)
    assert 50_000 * SCALE <= report.rows["incidents"] <= 80_000 * SCALE
    assert 20 <= report.rows["sensors"] <= 30


def test_districts_are_shenzhen_multipolygons_that_do_not_overlap(db: psycopg.Connection) -> None:
    rows = db.execute("SELECT code, name, name_en, GeometryType(geom) FROM districts").fetchall()
    codes = {r[0] for r in rows}
    assert {"440303", "440304", "440305", "440306", "440307", "440308", "440309", "440310",
            "440311"} <= codes  # fmt: skip
    assert all(re.fullmatch(r"\d{6}", r[0]) and r[1] and r[2] for r in rows)
    assert {r[3] for r in rows} == {"MULTIPOLYGON"}
    overlap = scalar(
        db,
        "SELECT coalesce(sum(ST_Area(ST_Intersection(a.geom, b.geom)::geography)), 0)"
        " FROM districts a JOIN districts b ON a.id < b.id AND ST_Intersects(a.geom, b.geom)",
    )
    assert overlap < 1.0  # square metres: shared borders only
    xmin, ymin, xmax, ymax = db.execute(
        "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e)"
        " FROM (SELECT ST_Extent(geom)::geometry AS e FROM districts) t"
    ).fetchone()
    assert xmin >= 113.75 and ymin >= 22.45 and xmax <= 114.35 and ymax <= 22.85
    # Hong Kong (Kowloon) and the sea (Shenzhen Bay, the estuary) are not land
    for lon, lat in ((114.17, 22.32), (114.15, 22.47), (113.97, 22.49), (113.76, 22.60)):
        assert not scalar(
            db, "SELECT bool_or(ST_Intersects(geom, ST_Point(%s, %s, 4326))) FROM districts",
            (lon, lat),
        )  # fmt: skip


def test_every_grid_cell_matches_h3_and_has_an_inspector(db: psycopg.Connection) -> None:
    assert scalar(db, "SELECT count(*) FROM grid_cells") > 100_000
    missing = "SELECT count(*) FROM grid_cells WHERE inspector_id IS NULL OR district_id IS NULL"
    assert scalar(db, missing) == 0
    assert scalar(db, "SELECT count(*) FROM grid_cells WHERE res <> 10") == 0
    rows = db.execute(
        "SELECT h3, ST_X(c), ST_Y(c), area_m2 FROM"
        " (SELECT h3, ST_Centroid(geom) AS c, area_m2 FROM grid_cells TABLESAMPLE SYSTEM (5)"
        " REPEATABLE (1)) t"
    ).fetchall()
    assert len(rows) > 1000
    for cell, lon, lat, area in rows:
        hexcell = h3.latlng_to_cell(lat, lon, 10)
        assert h3.str_to_int(hexcell) == cell
        assert area == pytest.approx(h3.cell_area(hexcell, unit="m^2"), rel=1e-6)


def test_grid_covers_the_land_and_each_cell_goes_to_its_biggest_district(
    db: psycopg.Connection,
) -> None:
    land = scalar(db, "SELECT ST_AsGeoJSON(ST_Union(geom)) FROM districts")
    inside = {h3.str_to_int(c) for c in h3.geo_to_cells(orjson.loads(land), 10)}
    grid = {r[0] for r in db.execute("SELECT h3 FROM grid_cells")}
    assert inside <= grid
    wrong = scalar(
        db,
        """
        WITH border AS (
            SELECT g.h3, g.district_id, g.geom FROM grid_cells g
            WHERE (SELECT count(*) FROM districts d WHERE ST_Intersects(d.geom, g.geom)) > 1
            LIMIT 400
        ), best AS (
            SELECT DISTINCT ON (b.h3) b.h3, b.district_id AS given, d.id AS biggest
            FROM border b JOIN districts d ON ST_Intersects(d.geom, b.geom)
            ORDER BY b.h3, ST_Area(ST_Intersection(d.geom, b.geom)) DESC
        )
        SELECT count(*) FROM best WHERE given <> biggest
        """,
    )
    assert wrong == 0


def test_inspectors_hold_contiguous_territories_of_about_700_cells(db: psycopg.Connection) -> None:
    cells: dict[int, set[int]] = {}
    for cell, inspector in db.execute("SELECT h3, inspector_id FROM grid_cells"):
        cells.setdefault(inspector, set()).add(cell)
    roles = dict(db.execute("SELECT id, role FROM users").fetchall())
    assert {roles[i] for i in cells} == {"inspector"}
    sizes = [len(c) for c in cells.values()]
    assert 600 <= sum(sizes) / len(sizes) <= 800
    assert min(sizes) >= 300 and max(sizes) <= 1400
    for territory in cells.values():
        graph = nx.Graph()
        graph.add_nodes_from(territory)
        for c in territory:
            for n in h3.grid_ring(h3.int_to_str(c), 1):
                if h3.str_to_int(n) in territory:
                    graph.add_edge(c, h3.str_to_int(n))
        assert nx.is_connected(graph)
    same = scalar(
        db,
        "SELECT count(*) FROM grid_assignments a JOIN grid_cells g USING (h3)"
        " WHERE a.to_inspector_id = g.inspector_id AND a.from_inspector_id IS NULL",
    )
    assert same == scalar(db, "SELECT count(*) FROM grid_cells")
    supervised = (
        "SELECT count(*) FROM grid_cells g JOIN districts d ON d.id = g.district_id"
        " WHERE g.supervisor = d.code"
    )
    assert scalar(db, supervised) == scalar(db, "SELECT count(*) FROM grid_cells")
    people = dict(db.execute("SELECT role, count(*) FROM users GROUP BY role").fetchall())
    assert people["supervisor"] >= 12 and people["dispatcher"] >= 12
    staffed = "SELECT count(DISTINCT department_id) FROM users WHERE role = 'staff'"
    assert scalar(db, staffed) == scalar(db, "SELECT count(*) FROM departments")


def test_asset_codes_carry_their_district_and_class(db: psycopg.Connection) -> None:
    total = scalar(db, "SELECT count(*) FROM assets")
    assert scalar(db, "SELECT count(DISTINCT code) FROM assets") == total
    good = scalar(
        db,
        "SELECT count(*) FROM assets a JOIN grid_cells g USING (h3)"
        " JOIN districts d ON d.id = g.district_id"
        " WHERE a.code ~ '^[0-9]{16}$' AND left(a.code, 6) = d.code"
        " AND substr(a.code, 7, 4) = a.class_code AND a.version = 1",
    )
    assert good == total
    kinds = dict(db.execute("SELECT kind, count(*) FROM assets GROUP BY kind").fetchall())
    assert set(kinds) == {"lamp", "manhole", "hydrant", "pipe", "green_area"}
    types = dict(db.execute("SELECT kind, array_agg(DISTINCT GeometryType(geom)) FROM assets"
                            " GROUP BY kind").fetchall())  # fmt: skip
    assert types == {"lamp": ["POINT"], "manhole": ["POINT"], "hydrant": ["POINT"],
                     "pipe": ["LINESTRING"], "green_area": ["POLYGON"]}  # fmt: skip
    states = dict(db.execute("SELECT state, count(*) FROM assets GROUP BY state").fetchall())
    assert states["intact"] > 0.8 * total and {"damaged", "lost", "removed"} <= set(states)
    owners = "SELECT count(*) FROM assets a JOIN departments d ON d.id = a.owner_department_id"
    assert scalar(db, owners) == total


def test_asset_cells_are_the_h3_cells_of_their_points(db: psycopg.Connection) -> None:
    rows = db.execute(
        "SELECT h3, ST_X(p), ST_Y(p), kind FROM (SELECT h3, ST_PointOnSurface(geom) AS p, kind"
        " FROM assets ORDER BY md5(code) LIMIT 1500) t"
    ).fetchall()
    assert {r[3] for r in rows} >= {"lamp", "pipe", "green_area"}
    for cell, lon, lat, _ in rows:
        assert h3.str_to_int(h3.latlng_to_cell(lat, lon, 10)) == cell
    on_land = (
        "SELECT count(*) FROM assets a WHERE GeometryType(a.geom) = 'POINT' AND NOT EXISTS"
        " (SELECT 1 FROM districts d WHERE ST_Intersects(d.geom, a.geom))"
    )
    assert scalar(db, on_land) == 0


def test_incidents_are_routed_by_cell_and_category(db: psycopg.Connection) -> None:
    total = scalar(db, "SELECT count(*) FROM incidents")
    routed = scalar(
        db,
        "SELECT count(*) FROM incidents i JOIN grid_cells g USING (h3)"
        " JOIN incident_categories c ON c.code = i.category_code"
        " WHERE i.inspector_id = g.inspector_id AND i.district_id = g.district_id"
        " AND i.department_id = c.department_id",
    )
    assert routed == total
    rows = db.execute(
        "SELECT h3, ST_X(geom), ST_Y(geom) FROM incidents ORDER BY md5(id::text) LIMIT 1000"
    ).fetchall()
    for cell, lon, lat in rows:
        assert h3.str_to_int(h3.latlng_to_cell(lat, lon, 10)) == cell
    sample = db.execute(
        "SELECT i.reported_at, c.time_limit_hours, i.deadline FROM incidents i"
        " JOIN incident_categories c ON c.code = i.category_code ORDER BY md5(i.id::text) LIMIT 300"
    ).fetchall()
    for reported, hours, deadline in sample:
        assert deadline == working_hours_later(reported, float(hours))
    linked = scalar(
        db,
        "SELECT count(*) FROM incidents i JOIN assets a ON a.code = i.asset_code"
        " WHERE ST_Equals(ST_PointOnSurface(a.geom), i.geom)",
    )
    assert linked == scalar(db, "SELECT count(*) FROM incidents WHERE asset_code IS NOT NULL") > 0


def test_incident_times_are_ordered_and_fall_in_the_year(db: psycopg.Connection) -> None:
    disorder = scalar(
        db,
        """
        SELECT count(*) FROM incidents WHERE NOT (
            registered_at IS NULL OR reported_at <= registered_at) OR NOT (
            dispatched_at IS NULL OR registered_at <= dispatched_at) OR NOT (
            resolved_at IS NULL OR dispatched_at <= resolved_at) OR NOT (
            closed_at IS NULL OR resolved_at <= closed_at)
        """,
    )
    assert disorder == 0
    first, last, latest = db.execute(
        "SELECT min(reported_at), max(reported_at),"
        " (SELECT max(at) FROM incident_transitions) FROM incidents"
    ).fetchone()
    end = "2026-11-01T00:00:00+08:00"
    assert scalar(db, "SELECT %s::timestamptz - interval '365 days' <= %s", (end, first))
    assert scalar(db, "SELECT %s < %s::timestamptz", (latest, end))
    assert last <= latest
    statuses = {r[0] for r in db.execute("SELECT DISTINCT status FROM incidents")}
    assert statuses == set(STATES)
    late, closed, reworked = db.execute(
        "SELECT count(*) FILTER (WHERE closed_at > deadline),"
        " count(*) FILTER (WHERE status = 'closed'), count(*) FILTER (WHERE rework_count > 0)"
        " FROM incidents"
    ).fetchone()
    assert 0 < late < 0.4 * closed and reworked > 0
    hours = dict(db.execute(
        "SELECT extract(hour FROM reported_at AT TIME ZONE 'Asia/Shanghai')::int, count(*)"
        " FROM incidents GROUP BY 1"
    ).fetchall())  # fmt: skip
    assert sum(hours.get(h, 0) for h in range(9, 12)) > 5 * sum(hours.get(h, 0) for h in (3, 4))


def test_transitions_are_legal_chains_ending_in_the_status(db: psycopg.Connection) -> None:
    broken = db.execute(
        """
        WITH t AS (
            SELECT incident_id, action, from_status, to_status, at,
                   lag(to_status) OVER w AS previous,
                   row_number() OVER w AS step,
                   last_value(to_status) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING
                                               AND UNBOUNDED FOLLOWING) AS final
            FROM incident_transitions WINDOW w AS (PARTITION BY incident_id ORDER BY at, id)
        )
        SELECT count(*) FILTER (WHERE step = 1 AND (from_status IS NOT NULL
                                                    OR action <> 'report')),
               count(*) FILTER (WHERE step > 1 AND from_status IS DISTINCT FROM previous),
               count(*) FILTER (WHERE step = 1 AND final <> i.status),
               count(*) FILTER (WHERE t.at < i.reported_at)
        FROM t JOIN incidents i ON i.id = t.incident_id
        """
    ).fetchone()
    assert broken == (0, 0, 0, 0)
    every = "SELECT count(DISTINCT incident_id) FROM incident_transitions"
    assert scalar(db, every) == scalar(db, "SELECT count(*) FROM incidents")
    for action, source, target in db.execute(
        "SELECT DISTINCT action, from_status, to_status FROM incident_transitions"
    ):
        if action == REPORT:
            assert (source, target) == (None, "reported")
        else:
            assert source in ACTIONS[action].sources and ACTIONS[action].target == target
    mismatched = scalar(
        db,
        """
        SELECT count(*) FROM incidents i WHERE rework_count <> (SELECT count(*)
            FROM incident_transitions t WHERE t.incident_id = i.id AND t.action = 'rework')
        OR registered_at IS DISTINCT FROM (SELECT min(at) FROM incident_transitions t
            WHERE t.incident_id = i.id AND t.action = 'register')
        OR closed_at IS DISTINCT FROM (SELECT min(at) FROM incident_transitions t
            WHERE t.incident_id = i.id AND t.action = 'close')
        """,
    )
    assert mismatched == 0


RANK = {"normal": 0, "warning": 1, "alarm": 2}


def walk_level(values: list[float], warning: float, alarm: float, hysteresis: float) -> str:
    """A property's level after its readings: a level is entered when a value reaches it and
    left only when a value falls below it minus the hysteresis."""
    level = "normal"
    for v in values:
        reached = "alarm" if v >= alarm else "warning" if v >= warning else "normal"
        if RANK[reached] >= RANK[level]:
            level = reached
        elif level == "alarm" and v >= alarm - hysteresis:
            level = "alarm"
        elif v >= warning - hysteresis:
            level = "warning"
        else:
            level = reached
    return level


def test_readings_are_a_unique_hourly_october(db: psycopg.Connection) -> None:
    count, distinct = db.execute(
        "SELECT count(*), count(DISTINCT (sensor_id, property, ts)) FROM readings"
    ).fetchone()
    expected = scalar(
        db, "SELECT sum((SELECT count(*) FROM jsonb_object_keys(measures))) FROM sensors"
    )
    assert count == distinct == expected * OCT_HOURS
    first, last, hours = db.execute(
        "SELECT min(ts), max(ts), count(DISTINCT ts) FROM readings"
    ).fetchone()
    assert scalar(db, "SELECT %s = '2026-10-01T00:00:00+08:00'::timestamptz", (first,))
    assert scalar(db, "SELECT %s = '2026-10-31T23:00:00+08:00'::timestamptz", (last,))
    assert hours == OCT_HOURS
    unknown = (
        "SELECT count(*) FROM readings r JOIN sensors s ON s.id = r.sensor_id"
        " WHERE NOT s.measures ? r.property"
    )
    assert scalar(db, unknown) == 0


def test_sensor_latest_and_alarm_state_follow_the_readings(db: psycopg.Connection) -> None:
    sensors = db.execute("SELECT id, thresholds, latest, alarm_state FROM sensors").fetchall()
    series: dict[tuple[int, str], list[tuple[object, float]]] = {}
    for sensor_id, prop, ts, value in db.execute(
        "SELECT sensor_id, property, ts, value FROM readings ORDER BY sensor_id, property, ts"
    ):
        series.setdefault((sensor_id, prop), []).append((ts, value))
    states = set()
    for sensor_id, thresholds, latest, alarm_state in sensors:
        levels = []
        for prop, limits in thresholds.items():
            points = series[(sensor_id, prop)]
            assert latest[prop]["value"] == points[-1][1]
            assert scalar(db, "SELECT %s::timestamptz = %s", (latest[prop]["ts"], points[-1][0]))
            level = walk_level([v for _, v in points], limits["warning"], limits["alarm"],
                               limits["hysteresis"])  # fmt: skip
            assert latest[prop]["level"] == level
            levels.append(level)
        assert alarm_state == max(levels, key=RANK.__getitem__)
        states.add(alarm_state)
    assert "normal" in states


def test_sensors_measure_what_their_kind_needs(db: psycopg.Connection) -> None:
    props = {"air_quality": {"pm25", "pm10"}, "noise": {"laeq"}, "water_level": {"level_m"},
             "manhole_cover": {"tilt_deg"}}  # fmt: skip
    for kind, measures, thresholds in db.execute("SELECT kind, measures, thresholds FROM sensors"):
        assert set(measures) == set(thresholds) == props[kind]
        for prop, limits in thresholds.items():
            m = measures[prop]
            assert m["unit"] and m["min"] <= limits["warning"] < limits["alarm"] <= m["max"]
            assert limits["hysteresis"] >= 0
    on_covers = scalar(
        db,
        "SELECT count(*) FROM sensors s JOIN assets a ON a.code = s.asset_code"
        " WHERE s.kind = 'manhole_cover' AND a.kind = 'manhole' AND ST_Equals(a.geom, s.geom)",
    )
    assert on_covers == scalar(db, "SELECT count(*) FROM sensors WHERE kind = 'manhole_cover'")
    for cell, lon, lat in db.execute("SELECT h3, ST_X(geom), ST_Y(geom) FROM sensors"):
        assert h3.str_to_int(h3.latlng_to_cell(lat, lon, 10)) == cell


def schema_of(conn: psycopg.Connection) -> tuple[list, list]:
    """The public schema's indexes and constraints (readings' monthly partitions aside)."""
    indexes = conn.execute(
        "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
        " AND tablename !~ '^readings_' ORDER BY 1, 2"
    ).fetchall()
    constraints = conn.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text !~ '^readings_'"
        " ORDER BY 1, 2"
    ).fetchall()
    return indexes, constraints


FINGERPRINTS = {
    "users": "SELECT md5(string_agg(id || name || phone || role, ',' ORDER BY id)) FROM users",
    "grid": "SELECT md5(string_agg(h3 || ':' || district_id || ':' || inspector_id, ','"
    " ORDER BY h3)) FROM grid_cells",
    "assets": "SELECT md5(string_agg(code || h3 || state || encode(ST_AsEWKB(geom), 'hex'), ','"
    " ORDER BY code)) FROM assets",
    "incidents": "SELECT md5(string_agg(id || status || category_code || reported_at::text"
    " || h3 || coalesce(closed_at::text, '-'), ',' ORDER BY id)) FROM incidents",
    "transitions": "SELECT md5(string_agg(incident_id || action || at::text || actor, ','"
    " ORDER BY id)) FROM incident_transitions",
    "readings": "SELECT md5(string_agg(sensor_id || property || ts::text || value, ','"
    " ORDER BY sensor_id, property, ts)) FROM readings",
}


def fingerprint(conn: psycopg.Connection) -> dict[str, object]:
    """Checksums of the demo's content, table by table."""
    return {name: scalar(conn, query) for name, query in FINGERPRINTS.items()}


def test_same_seed_same_city_and_schema_restored(
    new_database, loaded: tuple[str, DemoReport], db: psycopg.Connection
) -> None:
    url = new_database("demo_test_twin")
    with psycopg.connect(url, autocommit=True) as twin:
        fresh = schema_of(twin)
        load_demo(url, SCALE, progress=False)
        assert fingerprint(twin) == fingerprint(db)
    assert schema_of(db) == fresh


def test_loading_twice_does_nothing(loaded: tuple[str, DemoReport], db: psycopg.Connection) -> None:
    before = {t: scalar(db, f"SELECT count(*) FROM {t}") for t in LOADED}
    again = load_demo(loaded[0], SCALE, progress=False)
    assert not again.loaded and again.rows == {} and "already" in again.message
    assert {t: scalar(db, f"SELECT count(*) FROM {t}") for t in LOADED} == before


@pytest.mark.subprocess
def test_cli_says_the_demo_is_there(loaded: tuple[str, DemoReport]) -> None:
    env = {**os.environ, "CITYHEX_DATABASE_URL": loaded[0]}
    proc = subprocess.run(
        [sys.executable, "-m", "spatial_api", "demo", "--scale", "0.05"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "already holds" in proc.stderr


def test_new_rows_get_fresh_ids_after_the_load(db: psycopg.Connection) -> None:
    for table in ("incidents", "assets", "users", "sensors", "incident_transitions"):
        sequence = scalar(db, "SELECT pg_get_serial_sequence(%s, 'id')", (table,))
        last = scalar(db, f"SELECT last_value FROM {sequence}")
        assert last == scalar(db, f"SELECT max(id) FROM {table}"), table


def test_a_failed_load_leaves_nothing_behind(new_database, monkeypatch: pytest.MonkeyPatch) -> None:
    url = new_database("demo_test_failed")

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("generator failed")

    monkeypatch.setattr(demo, "build_incidents", broken)
    with psycopg.connect(url, autocommit=True) as conn:
        fresh = schema_of(conn)
        with pytest.raises(RuntimeError):
            load_demo(url, SCALE, progress=False)
        for table in LOADED:
            assert scalar(conn, f"SELECT count(*) FROM {table}") == 0, table
        assert schema_of(conn) == fresh


def test_scale_must_be_positive(db_url: str) -> None:
    with pytest.raises(BadRequest):
        load_demo(db_url, 0, progress=False)


def working_hours_later(start: datetime, hours: float) -> datetime:
    """The moment ``hours`` working hours after ``start``, walked minute by minute over
    Monday-to-Friday 09:00-12:00 and 13:00-18:00 Beijing time (the default calendar)."""

    def working(t: datetime) -> bool:
        clock = t.hour * 60 + t.minute
        return t.weekday() < 5 and (540 <= clock < 720 or 780 <= clock < 1080)

    t = start.astimezone(ZoneInfo("Asia/Shanghai"))
    left = round(hours * 3600)
    head = (60 - t.second) % 60
    if head and working(t):
        if left <= head:
            return t + timedelta(seconds=left)
        left -= head
    t += timedelta(seconds=head)
    while left >= 60:
        if working(t):
            left -= 60
        t += timedelta(minutes=1)
    while left and not working(t):
        t += timedelta(minutes=1)
    return t + timedelta(seconds=left)
