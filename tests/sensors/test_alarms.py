"""Alarms: levels with hysteresis, exactly one incident per crossing, recoveries recorded,
flapping suppressed; incidents routed like any report and linked to sensor and asset."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import h3
import mapbox_vector_tile
import orjson
import psycopg
import pytest
from fastapi.testclient import TestClient

from layers.db.engine import create_async_engine
from layers.sensors.readings import ingest
from spatial_api.app import create_app
from tests.helpers import tile_of

LON, LAT = 114.0312, 22.5368
ASSET = "4403040602000001"
T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def city(new_database) -> Iterator[str]:
    """A database with one inspector, the cells around the test point, an asset."""
    url = new_database("cityhex_alarms")
    centre = h3.latlng_to_cell(LAT, LON, 10)
    with psycopg.connect(url, autocommit=True) as conn:
        inspector = conn.execute(
            "INSERT INTO users (name, role) VALUES ('Inspector Li', 'inspector') RETURNING id"
        ).fetchone()[0]
        for cell in h3.grid_disk(centre, 1):
            ring = [(x, y) for y, x in h3.cell_to_boundary(cell)]
            wkt = "POLYGON((" + ",".join(f"{x} {y}" for x, y in [*ring, ring[0]]) + "))"
            conn.execute(
                "INSERT INTO grid_cells (h3, res, area_m2, inspector_id, geom) "
                "VALUES (%s, 10, 15000, %s, ST_GeomFromText(%s, 4326))",
                (h3.str_to_int(cell), inspector, wkt),
            )
        conn.execute(
            "INSERT INTO assets (code, class_code, kind, geom) "
            "VALUES (%s, '0602', 'manhole', ST_SetSRID(ST_MakePoint(%s, %s), 4326))",
            (ASSET, LON, LAT),
        )
    yield url


def add_sensor(
    url: str, code: str, lon: float = LON, lat: float = LAT, kind: str = "water_level"
) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "INSERT INTO sensors (code, kind, measures, thresholds, asset_code, geom) VALUES "
            "(%s, %s, %s, %s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326)) RETURNING id",
            (
                code,
                kind,
                '{"level_m": {"unit": "m", "min": 0, "max": 10}}',
                '{"level_m": {"warning": 2.0, "alarm": 3.0, "hysteresis": 0.2}}',
                ASSET,
                lon,
                lat,
            ),
        ).fetchone()[0]


def send(url: str, code: str, values: list[float], start: int) -> list[dict]:
    """Ingest ``values`` as one batch of hourly readings from hour ``start``; the reports."""
    rows = [
        {
            "sensor": code,
            "property": "level_m",
            "ts": (T0 + timedelta(hours=start + i)).isoformat(),
            "value": v,
        }
        for i, v in enumerate(values)
    ]

    async def go() -> dict:
        engine = create_async_engine(url, pool_size=2)
        try:
            return (await ingest(engine, rows)).to_dict()
        finally:
            await engine.dispose()

    return asyncio.run(go())


def incidents_of(conn: psycopg.Connection, sensor_id: int) -> list[tuple]:
    return conn.execute(
        "SELECT id, status, category_code FROM incidents WHERE sensor_id = %s ORDER BY id",
        (sensor_id,),
    ).fetchall()


def test_crossings_open_one_incident_each_and_flapping_opens_none(city: str) -> None:
    sensor_id = add_sensor(city, "WL-1")
    conn = psycopg.connect(city, autocommit=True)
    # Up through warning into alarm, wavering inside the hysteresis band, then down.
    send(city, "WL-1", [1.0, 2.5, 3.1, 2.9, 3.2, 2.85, 3.05, 2.81], 0)
    assert len(incidents_of(conn, sensor_id)) == 1
    assert (
        conn.execute("SELECT alarm_state FROM sensors WHERE id = %s", (sensor_id,)).fetchone()[0]
        == "alarm"
    )
    send(city, "WL-1", [2.7], 8)  # below alarm - hysteresis: recovery to warning
    assert (
        conn.execute("SELECT alarm_state FROM sensors WHERE id = %s", (sensor_id,)).fetchone()[0]
        == "warning"
    )
    # Crossing again while the first case is open joins it instead of opening another.
    send(city, "WL-1", [3.0, 1.0], 9)
    assert len(incidents_of(conn, sensor_id)) == 1
    # Once the case is closed, the next crossing opens a new one.
    conn.execute(
        "UPDATE incidents SET status = 'closed', closed_at = now() WHERE sensor_id = %s",
        (sensor_id,),
    )
    send(city, "WL-1", [3.5], 11)
    send(city, "WL-1", [1.0], 12)
    # A flapping sensor, reading by reading and in one batch: its crossings join the open case.
    for i in range(10):
        send(city, "WL-1", [3.4 if i % 2 == 0 else 1.0], 13 + i)
    send(city, "WL-1", [3.4, 1.0] * 10, 23)
    found = incidents_of(conn, sensor_id)
    assert [(status, category) for _, status, category in found] == [
        ("closed", "0608"),
        ("reported", "0608"),
    ]
    crossings = conn.execute(
        "SELECT count(*), count(DISTINCT incident_id) FROM sensor_alarms "
        "WHERE sensor_id = %s AND to_level = 'alarm'",
        (sensor_id,),
    ).fetchone()
    assert crossings == (1 + 1 + 1 + 5 + 10, 2)
    recoveries = conn.execute(
        "SELECT to_level, incident_id FROM sensor_alarms "
        "WHERE sensor_id = %s AND from_level = 'alarm' ORDER BY ts",
        (sensor_id,),
    ).fetchall()
    assert len(recoveries) == crossings[0]
    assert recoveries[0] == ("warning", found[0][0]) and recoveries[-1] == ("normal", found[1][0])
    conn.close()


def test_incident_is_routed_and_linked(city: str) -> None:
    sensor_id = add_sensor(city, "WL-2", LON + 0.0005, LAT)
    send(city, "WL-2", [3.3], 0)
    with psycopg.connect(city) as conn:
        row = conn.execute(
            "SELECT i.sensor_id, i.asset_code, i.source, i.category_code, i.h3, i.inspector_id, "
            "d.code, i.reported_at, i.description FROM incidents i "
            "JOIN departments d ON d.id = i.department_id WHERE i.sensor_id = %s",
            (sensor_id,),
        ).fetchone()
        cell = h3.str_to_int(h3.latlng_to_cell(LAT, LON + 0.0005, 10))
        inspector = conn.execute(
            "SELECT inspector_id FROM grid_cells WHERE h3 = %s", (cell,)
        ).fetchone()[0]
    assert row[:5] == (sensor_id, ASSET, "sensor", "0608", cell)
    assert row[5] == inspector and row[6] == "swj"
    assert row[7] == T0 and "WL-2" in row[8] and "3.3" in row[8]


def test_replayed_and_concurrent_crossings_open_exactly_one_incident(city: str) -> None:
    sensor_id = add_sensor(city, "WL-3")
    rows = [{"sensor": "WL-3", "property": "level_m", "ts": T0.isoformat(), "value": 4.0}]

    async def twice() -> list[dict]:
        engine = create_async_engine(city, pool_size=4)
        try:
            reports = await asyncio.gather(ingest(engine, rows), ingest(engine, rows))
            reports.append(await ingest(engine, rows))
            return [r.to_dict() for r in reports]
        finally:
            await engine.dispose()

    reports = asyncio.run(twice())
    assert sorted(r["accepted"] for r in reports) == [0, 0, 1]
    assert sum(len(r["incidents_opened"]) for r in reports) == 1
    with psycopg.connect(city) as conn:
        assert len(incidents_of(conn, sensor_id)) == 1


def test_late_readings_do_not_move_the_alarm(city: str) -> None:
    sensor_id = add_sensor(city, "WL-4")
    send(city, "WL-4", [1.0], 10)
    send(city, "WL-4", [5.0], 2)  # older than the latest reading: stored, no alarm
    with psycopg.connect(city) as conn:
        assert incidents_of(conn, sensor_id) == []
        assert (
            conn.execute(
                "SELECT count(*) FROM readings WHERE sensor_id = %s", (sensor_id,)
            ).fetchone()[0]
            == 2
        )


def test_alarm_outside_the_grid_is_recorded_without_incident(city: str) -> None:
    sensor_id = add_sensor(city, "WL-5", 113.5, 22.1)
    report = send(city, "WL-5", [1.0, 3.6, 1.0], 0)
    assert report["accepted"] == 3 and report["incidents_opened"] == []
    with psycopg.connect(city) as conn:
        rows = conn.execute(
            "SELECT to_level, incident_id, note FROM sensor_alarms "
            "WHERE sensor_id = %s ORDER BY ts",
            (sensor_id,),
        ).fetchall()
        assert (
            conn.execute("SELECT alarm_state FROM sensors WHERE id = %s", (sensor_id,)).fetchone()[
                0
            ]
            == "normal"
        )
    assert rows[0][0] == "alarm" and rows[0][1] is None and "outside the city grid" in rows[0][2]
    assert rows[1][:2] == ("normal", None)


def test_alarm_of_a_kind_without_category_is_recorded_without_incident(city: str) -> None:
    # Written straight into the table (the registry refuses such a sensor).
    sensor_id = add_sensor(city, "TC-1", kind="traffic_counter")
    report = send(city, "TC-1", [3.6], 0)
    assert report["accepted"] == 1 and report["incidents_opened"] == []
    with psycopg.connect(city) as conn:
        note = conn.execute(
            "SELECT note FROM sensor_alarms WHERE sensor_id = %s", (sensor_id,)
        ).fetchone()[0]
    assert "no incident category" in note


def sensor_in_tile(web: TestClient, code: str, z: int, x: int, y: int) -> dict:
    body = web.get(f"/tiles/sensors/{z}/{x}/{y}.mvt").content
    layer = mapbox_vector_tile.decode(body).get("sensors", {"features": []})
    return next(f["properties"] for f in layer["features"] if f["properties"]["code"] == code)


def test_the_map_shows_the_alarm_as_it_happens(city: str) -> None:
    add_sensor(city, "WL-6", LON - 0.0005, LAT)
    z, x, y = tile_of(LON - 0.0005, LAT, 15)
    with TestClient(create_app(city)) as web:
        send(city, "WL-6", [1.0], 0)
        before = sensor_in_tile(web, "WL-6", z, x, y)  # now in the tile cache
        assert before["alarm_state"] == "normal"
        send(city, "WL-6", [3.7], 1)

        def alarmed() -> bool:
            return sensor_in_tile(web, "WL-6", z, x, y)["alarm_state"] == "alarm"

        deadline = time.monotonic() + 5
        while not alarmed() and time.monotonic() < deadline:
            time.sleep(0.1)
        after = sensor_in_tile(web, "WL-6", z, x, y)
    assert after["alarm_state"] == "alarm"
    latest = orjson.loads(after["latest"])["level_m"]
    assert latest["value"] == 3.7 and latest["level"] == "alarm"
