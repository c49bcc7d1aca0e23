"""Concurrent reports and steps with the count tables kept by triggers (cell counts, day
counts, the cases' step summary): none deadlocks or fails, and afterwards the tables equal a
count of the cases made here."""

from __future__ import annotations

import asyncio
import random
import time

import psycopg

from layers.db.engine import create_async_engine
from layers.incidents.cases import Actor, ReportInput, report_incident
from layers.incidents.transitions import TransitionInput, transition_incident
from tests.helpers import INCIDENT_CENTRE
from tests.incidents.conftest import build_city
from tests.incidents.test_metrics_fast import DAY_COUNTS

STEPS = ("register", "dispatch", "accept", "resolve")
ROLES = {"register": "dispatcher", "dispatch": "dispatcher", "accept": "editor",
         "resolve": "editor"}  # fmt: skip


async def writer(url: str, seed: int, seconds: float, errors: list[str]) -> int:
    """Report cases near the centre and take them a random number of steps, for ``seconds``;
    the number of cases reported."""
    rng = random.Random(seed)
    engine = create_async_engine(url)
    done = 0
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                async with engine.begin() as conn:
                    case = await report_incident(
                        conn,
                        ReportInput(
                            category=rng.choice(("0101", "0102", "0104")),
                            lon=INCIDENT_CENTRE[0] + rng.uniform(-0.005, 0.005),
                            lat=INCIDENT_CENTRE[1] + rng.uniform(-0.005, 0.005),
                        ),
                        Actor("app", f"app:{seed}"),
                    )
                for action in STEPS[: rng.randrange(len(STEPS) + 1)]:
                    async with engine.begin() as conn:
                        case = await transition_incident(
                            conn, case.id, TransitionInput(action=action),
                            Actor(ROLES[action], "t"), case.version,
                        )  # fmt: skip
                done += 1
            except Exception as e:  # every failure is what the test counts
                errors.append(repr(e)[:300])
    finally:
        await engine.dispose()
    return done


def test_concurrent_writers_neither_deadlock_nor_miscount(new_database) -> None:
    url = new_database("concurrent_counts")
    build_city(url)
    errors: list[str] = []

    async def run() -> list[int]:
        return await asyncio.gather(*(writer(url, n, 5.0, errors) for n in range(6)))

    reported = sum(asyncio.run(run()))
    assert errors == []
    assert reported >= 12
    with psycopg.connect(url) as conn:
        kept = conn.execute(
            "SELECT day, category_code, department_id, district_id, reported, registered,"
            " deadlines, due, closed_on_time, handled_on_time, first_resolved"
            " FROM incident_day_counts WHERE reported + registered + deadlines"
            " + first_resolved > 0"
        ).fetchall()
        assert sorted(kept, key=str) == sorted(conn.execute(DAY_COUNTS).fetchall(), key=str)
        wrong = conn.execute(
            "SELECT count(*) FROM (SELECT 10 AS res, h3 AS cell, status, count(*) AS n"
            " FROM incidents GROUP BY 2, 3 UNION ALL SELECT 5, h3_5, status, count(*)"
            " FROM incidents GROUP BY 2, 3) g FULL JOIN (SELECT * FROM incident_cell_counts"
            " WHERE res IN (5, 10) AND n > 0) c USING (res, cell, status)"
            " WHERE g.n IS DISTINCT FROM c.n"
        ).fetchone()[0]
        assert wrong == 0
        wrong = conn.execute(  # the cluster cells by status (0030) equal a recount too
            "SELECT count(*) FROM (SELECT l.z, tile_key(geom_3857) >> (2 * (24 - l.z)) AS cell,"
            " status, count(*) AS n FROM incidents CROSS JOIN (VALUES (17), (18), (20)) AS l(z)"
            " GROUP BY 1, 2, 3) g FULL JOIN (SELECT 17 AS z, cell, status, n FROM"
            " incident_cluster_cells WHERE n > 0 UNION ALL SELECT z, cell, status, n FROM"
            " incident_cluster_levels WHERE z IN (18, 20) AND n > 0) c USING (z, cell, status)"
            " WHERE g.n IS DISTINCT FROM c.n"
        ).fetchone()[0]
        assert wrong == 0
        assert conn.execute("SELECT count(*) FROM incidents").fetchone()[0] == reported
