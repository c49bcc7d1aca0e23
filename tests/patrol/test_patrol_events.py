"""Patrol events on a real /events stream (a ``cityhex serve`` process) reach a dispatcher
limited to districts only for the inspectors with assigned cells in those districts.

The patrol city's cells are split between two districts here by the test's own rule (a cell
is in district 2 when its centre, by h3, lies west of the split, i.e. inspector 2's cells);
both inspectors are then off post (a shift with no fix) and the events each stream carries
are compared with the districts the test assigned.
"""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import h3
import httpx
import psycopg
import pytest

from layers.db.engine import create_async_engine
from layers.db.keys import create_key
from layers.db.scope import Scope
from layers.patrol.off_post import check_inspectors
from tests.helpers import running_server
from tests.patrol.conftest import SPLIT_LON, PatrolCity

DISTRICTS = {1: "440304", 2: "440305"}
EMPTY = "440306"
"""A district with no cells."""


def collect(base: str, headers: dict, out: list, ready: threading.Event) -> None:
    """Collect the patrol events of /events until none comes for 5 s; ``ready`` once live."""
    try:
        with httpx.stream(
            "GET",
            f"{base}/events",
            params={"types": "inspector.off_post,inspector.back"},
            headers=headers,
            timeout=httpx.Timeout(30, read=5),
        ) as response:
            message: dict = {}
            for line in response.iter_lines():
                if line.startswith(": live"):
                    ready.set()
                elif not line:
                    if "data" in message:
                        out.append(json.loads(message["data"]))
                    message = {}
                else:
                    field, _, value = line.partition(":")
                    message[field] = value.strip()
    except httpx.ReadTimeout:
        return


def key(url: str, role: str, districts: list[str] | None = None, inspector: int | None = None):
    """The Authorization header of a new key (limited to ``districts``)."""
    with psycopg.connect(url, autocommit=True) as conn:
        token = create_key(conn, role, f"events-{role}", inspector, Scope.of(districts=districts))
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.subprocess
def test_off_post_events_follow_the_dispatchers_districts(patrol_city: PatrolCity) -> None:
    url = patrol_city.url
    west = [c for c in patrol_city.cells if h3.cell_to_latlng(h3.int_to_str(c))[1] <= SPLIT_LON]
    zone = ZoneInfo("Asia/Shanghai")
    day = datetime.now(zone).date() - timedelta(days=2)
    shift = (
        datetime(day.year, day.month, day.day, 9, tzinfo=zone),
        datetime(day.year, day.month, day.day, 11, tzinfo=zone),
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO districts (id, code, name, geom) VALUES (2, %s, '罗湖区', "
            "ST_Multi(ST_MakeEnvelope(113.9, 22.4, 114.3, 22.7, 4326))), (3, %s, '盐田区', "
            "ST_Multi(ST_MakeEnvelope(114.2, 22.5, 114.3, 22.6, 4326)))",
            (DISTRICTS[2], EMPTY),
        )
        conn.execute("UPDATE grid_cells SET district_id = 2 WHERE h3 = ANY(%s)", (west,))
        for inspector in (1, 2):
            conn.execute(
                "INSERT INTO patrol_schedules (inspector_id, start_time, end_time, "
                "working_days_only) VALUES (%s, '09:00', '11:00', false)",
                (inspector,),
            )
    # the test's own split: inspector 2's cells are the western ones, inspector 1's the others
    in_district = {
        1: {i for c, i in patrol_city.owner.items() if c not in west},
        2: {i for c, i in patrol_city.owner.items() if c in west},
    }
    assert in_district == {1: {1}, 2: {2}}
    callers = {
        "all": key(url, "dispatcher"),
        "d1": key(url, "dispatcher", [DISTRICTS[1]]),
        "d2": key(url, "dispatcher", [DISTRICTS[2]]),
        "both": key(url, "dispatcher", list(DISTRICTS.values())),
        "none": key(url, "dispatcher", [EMPTY]),
        "inspector2": key(url, "inspector", [DISTRICTS[1]], inspector=2),
    }
    with running_server(url) as base:
        got: dict[str, list] = {name: [] for name in callers}
        readers = []
        for name, headers in callers.items():
            ready = threading.Event()
            reader = threading.Thread(target=collect, args=(base, headers, got[name], ready))
            reader.start()
            assert ready.wait(20), name
            readers.append(reader)

        async def detect() -> int:
            engine = create_async_engine(url)
            try:
                async with engine.connect() as conn:
                    return await check_inspectors(conn, shift[1].astimezone(UTC))
            finally:
                await engine.dispose()

        assert asyncio.run(detect()) == 2
        for reader in readers:
            reader.join(40)
    with psycopg.connect(url) as conn:
        ids = dict(
            conn.execute(
                "SELECT inspector_id, id FROM patrol_events WHERE type = 'inspector.off_post'"
            ).fetchall()
        )
    assert set(ids) == {1, 2}

    def seen(name: str) -> list[int]:
        return sorted(e["event_id"] for e in got[name])

    assert seen("all") == seen("both") == sorted(ids.values())
    assert seen("d1") == [ids[i] for i in sorted(in_district[1])]
    assert seen("d2") == [ids[i] for i in sorted(in_district[2])]
    assert seen("none") == []
    # an inspector gets their own events, whatever their key's districts
    assert seen("inspector2") == [ids[2]]
