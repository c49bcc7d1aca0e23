"""The fast case metrics (each count from its own index range or, for whole days, from the
day counts; the resolve and rework steps kept on the case by triggers) equal the definition:
the statement that reads every case of the period and groups its transitions (the metrics
before migration 0025, kept here as REFERENCE), on the same rows.

A seeded history of 160 cases is played through the workflow functions (report, register,
dispatch, accept, resolve, rework up to four times, verify, close, cancel, park, hand back,
extensions) with times spread over four months; then transitions are bulk-inserted, moved,
and deleted, and cases deleted, in plain SQL. Both statements are compared for many periods
(whole months and random cut points, many falling between a case's resolutions), every
grouping, and callers limited to a district, a department or an inspector.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from sqlalchemy import text

from layers.db.engine import create_async_engine
from layers.db.scope import Scope
from layers.incidents import workflow as wf
from layers.incidents.cases import Actor, ReportInput, report_incident
from layers.incidents.metrics import GROUPS, TOTAL, _row, by_days, case_metrics
from layers.incidents.scope import visible_sql
from layers.incidents.transitions import TransitionInput, transition_incident
from tests.helpers import INCIDENT_CENTRE
from tests.incidents.conftest import build_city

CST = timezone(timedelta(hours=8))
FIRST = datetime(2025, 1, 6, 9, tzinfo=CST)
CATEGORIES = ("0101", "0102", "0104", "0109", "0201")

REFERENCE = """
WITH steps AS (
    SELECT incident_id, bool_or(action = 'resolve') AS resolved,
           bool_or(action = 'rework') AS reworked
    FROM incident_transitions
    WHERE action IN ('resolve', 'rework') AND at >= :f AND at < :t
    GROUP BY incident_id
), period AS MATERIALIZED (
    SELECT i.* FROM incidents i WHERE
          (i.reported_at >= :f AND i.reported_at < :t)
       OR (i.registered_at >= :f AND i.registered_at < :t)
       OR (i.deadline >= :f AND i.deadline < :t)
       OR (i.closed_at >= :f AND i.closed_at < :t)
), cases AS (
    SELECT * FROM period
    UNION ALL
    SELECT i.* FROM steps s JOIN incidents i ON i.id = s.incident_id
    WHERE NOT EXISTS (SELECT 1 FROM period p WHERE p.id = s.incident_id)
), base AS (
    SELECT {key} AS key, i.*, coalesce(s.resolved, false) AS was_resolved,
           coalesce(s.reworked, false) AS was_reworked,
           (i.registered_at IS NOT NULL AND i.status NOT IN ('cancelled', 'parked')
            AND i.deadline >= :f AND i.deadline < :t) AS due,
           extract(epoch FROM i.closed_at - i.reported_at) / 3600.0 AS hours_to_close
    FROM cases i LEFT JOIN steps s ON s.incident_id = i.id
    WHERE {visible}
), m AS (
    SELECT key, GROUPING(key) = 1 AS is_total,
        count(*) FILTER (WHERE reported_at >= :f AND reported_at < :t) AS reported,
        count(*) FILTER (WHERE registered_at >= :f AND registered_at < :t) AS registered,
        count(*) FILTER (WHERE due) AS due,
        count(*) FILTER (WHERE due AND closed_at < :t) AS closed,
        count(*) FILTER (WHERE due AND closed_at < :t AND closed_at <= deadline)
            AS closed_on_time,
        count(*) FILTER (WHERE due AND status IN ('resolved', 'verified', 'closed')
                         AND resolved_at < :t AND resolved_at <= deadline) AS handled_on_time,
        count(*) FILTER (WHERE was_resolved) AS resolved,
        count(*) FILTER (WHERE was_resolved AND was_reworked) AS reworked,
        avg(hours_to_close) FILTER (WHERE closed_at >= :f AND closed_at < :t) AS mean_hours,
        percentile_cont(0.9) WITHIN GROUP (ORDER BY hours_to_close)
            FILTER (WHERE closed_at >= :f AND closed_at < :t) AS p90_hours
    FROM base
    GROUP BY GROUPING SETS ((key), ())
)
SELECT m.*, l.name AS label FROM m {label_join}
ORDER BY m.is_total, m.key
"""
"""The definition: every case of the period read whole, its transitions grouped."""

NEXT = {
    "reported": [("register", 8), ("cancel", 1)],
    "registered": [("dispatch", 8), ("cancel", 1), ("park", 1)],
    "dispatched": [("accept", 8), ("hand_back", 1), ("request_extension", 1)],
    "in_progress": [("resolve", 8), ("request_extension", 1), ("park", 1)],
    "resolved": [("verify", 5), ("rework", 5)],
    "verified": [("close", 1)],
}
"""The walk's next actions and their weights; reworks are frequent so that some cases are
resolved three or more times."""
ROLE = {"register": "dispatcher", "dispatch": "dispatcher", "cancel": "dispatcher",
        "park": "dispatcher", "close": "dispatcher", "approve_extension": "dispatcher",
        "reject_extension": "dispatcher", "verify": "inspector", "rework": "inspector"}  # fmt: skip


async def play(url: str, seed: int) -> None:
    """Report and walk the cases through the workflow functions, each step some hours
    after the one before, stopping at random."""
    rng = random.Random(seed)
    engine = create_async_engine(url)
    try:
        for n in range(160):
            at = FIRST + timedelta(hours=rng.uniform(0, 24 * 100))
            lon = INCIDENT_CENTRE[0] + rng.uniform(-0.006, 0.006)
            lat = INCIDENT_CENTRE[1] + rng.uniform(-0.006, 0.006)
            async with engine.begin() as conn:
                case = await report_incident(
                    conn,
                    ReportInput(category=rng.choice(CATEGORIES), lon=lon, lat=lat),
                    Actor("app", f"app:{n}"),
                    at=at,
                )
            pending = False
            while case.status in NEXT and rng.random() < 0.93:
                if pending:
                    action = rng.choice(("approve_extension", "reject_extension"))
                else:
                    actions, weights = zip(*NEXT[case.status], strict=True)
                    action = rng.choices(actions, weights)[0]
                at += timedelta(hours=rng.expovariate(1 / 30))
                data = TransitionInput(
                    action=action,
                    note="not ours" if action == "hand_back" else None,
                    hours=8 if action == "request_extension" else None,
                )
                actor = Actor(ROLE.get(action, wf.DEPARTMENT), "test")
                async with engine.begin() as conn:
                    case = await transition_incident(
                        conn, case.id, data, actor, case.version, at=at
                    )
                pending = action == "request_extension"
    finally:
        await engine.dispose()


def edit_in_sql(url: str, seed: int) -> None:
    """Writes that bypass the workflow: transitions bulk-inserted, moved and deleted, cases
    deleted (their transitions go with them)."""
    rng = random.Random(seed)
    with psycopg.connect(url, autocommit=True) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM incidents ORDER BY id")]
        rows = [
            (i, rng.choice(("resolve", "rework")), FIRST + timedelta(hours=rng.uniform(0, 2400)))
            for i in rng.sample(ids, 30)
        ]
        with conn.cursor() as cur:  # one statement, many rows
            cur.execute(
                "INSERT INTO incident_transitions (incident_id, action, from_status, to_status, at)"
                " SELECT i, a, 'in_progress', 'resolved', t"
                " FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[]) AS v(i, a, t)",
                [list(c) for c in zip(*rows, strict=True)],
            )
        conn.execute(
            "UPDATE incident_transitions SET at = at + interval '9 days'"
            " WHERE id IN (SELECT id FROM incident_transitions WHERE action = 'resolve'"
            " ORDER BY id LIMIT 25)"
        )
        conn.execute(
            "DELETE FROM incident_transitions WHERE id IN (SELECT id FROM incident_transitions"
            " WHERE action IN ('resolve', 'rework') ORDER BY id DESC LIMIT 15)"
        )
        conn.execute("DELETE FROM incidents WHERE id = ANY(%s)", (rng.sample(ids, 6),))


@pytest.fixture(scope="module")
def history(new_database) -> str:
    """A database with the played and edited history; its URL."""
    url = new_database("metrics_fast")
    build_city(url)
    asyncio.run(play(url, 25))
    edit_in_sql(url, 26)
    return url


def periods() -> list[tuple[datetime, datetime]]:
    """Whole months, a whole span, and seeded random periods of hours to weeks."""
    rng = random.Random(27)
    months = [datetime(2025, m, 1, tzinfo=CST) for m in range(1, 7)]
    found = list(itertools.pairwise(months))
    found.append((datetime(2024, 1, 1, tzinfo=CST), datetime(2026, 1, 1, tzinfo=CST)))
    for _ in range(14):
        start = FIRST + timedelta(hours=rng.uniform(0, 2600))
        found.append((start, start + timedelta(hours=rng.choice((3, 20, 100, 400)))))
    for _ in range(8):  # whole days in Shanghai, summed from incident_day_counts
        start = datetime(2025, 1, 1, tzinfo=CST) + timedelta(days=rng.randrange(120))
        found.append((start, start + timedelta(days=rng.choice((1, 2, 7, 30)))))
    return found


ACTORS = {
    "all": None,
    "district": Actor("dispatcher", "d", scope=Scope.of(districts=["440301"])),
    "department": Actor("dispatcher", "d", scope=Scope.of(departments=["hw"])),
    "inspector": Actor("inspector", "i", user_id=103),
}


async def compare(url: str) -> int:
    """Assert the fast metrics equal the reference for every period, grouping and actor; the
    number of comparisons."""
    engine = create_async_engine(url)
    done = 0
    try:
        async with engine.connect() as conn:
            for start, end in periods():
                for group_by in (None, *GROUPS):
                    for actor in ACTORS.values():
                        key, label_join = GROUPS[group_by] if group_by else TOTAL
                        visible, params = visible_sql(actor) if actor else ("true", {})
                        sql = REFERENCE.format(key=key, label_join=label_join, visible=visible)
                        rows = (
                            await conn.execute(text(sql), {**params, "f": start, "t": end})
                        ).all()
                        want = [_row(r, group_by).as_dict() for r in rows]
                        got = await case_metrics(conn, start, end, group_by, actor)  # type: ignore[arg-type]
                        assert [g.as_dict() for g in got.groups] + [got.total.as_dict()] == (
                            want[:-1] if group_by else []
                        ) + [want[-1]], (start, end, group_by, actor)
                        done += 1
    finally:
        await engine.dispose()
    return done


def test_step_columns_equal_the_transitions(history: str) -> None:
    with psycopg.connect(history) as conn:
        wrong = conn.execute(
            """SELECT count(*) FROM incidents i LEFT JOIN LATERAL (
                   SELECT min(at) FILTER (WHERE action = 'resolve') rf,
                          max(at) FILTER (WHERE action = 'resolve') rl,
                          count(*) FILTER (WHERE action = 'resolve') rn,
                          min(at) FILTER (WHERE action = 'rework') wf,
                          max(at) FILTER (WHERE action = 'rework') wl,
                          count(*) FILTER (WHERE action = 'rework') wn
                   FROM incident_transitions t WHERE t.incident_id = i.id) s ON true
               WHERE (i.resolve_first_at, i.resolve_last_at, i.resolve_n, i.rework_first_at,
                      i.rework_last_at, i.rework_n) IS DISTINCT FROM
                     (s.rf, s.rl, s.rn, s.wf, s.wl, s.wn)"""
        ).fetchone()[0]
        many = conn.execute("SELECT count(*) FROM incidents WHERE resolve_n >= 3").fetchone()[0]
    assert wrong == 0
    assert many >= 3, "the history should hold cases resolved three times or more"


DAY_COUNTS = """
SELECT d, category_code, department_id, district_id, sum(rep), sum(reg), sum(dl), sum(due),
       sum(cot), sum(hot), sum(res)
FROM (SELECT (reported_at AT TIME ZONE 'Asia/Shanghai')::date AS d, category_code,
             department_id, district_id, 1 AS rep, 0 AS reg, 0 AS dl, 0 AS due, 0 AS cot,
             0 AS hot, 0 AS res FROM incidents
      UNION ALL
      SELECT (registered_at AT TIME ZONE 'Asia/Shanghai')::date, category_code, department_id,
             district_id, 0, 1, 0, 0, 0, 0, 0 FROM incidents WHERE registered_at IS NOT NULL
      UNION ALL
      SELECT (min(t.at) AT TIME ZONE 'Asia/Shanghai')::date, i.category_code, i.department_id,
             i.district_id, 0, 0, 0, 0, 0, 0, 1
      FROM incident_transitions t JOIN incidents i ON i.id = t.incident_id
      WHERE t.action = 'resolve' GROUP BY i.id
      UNION ALL
      SELECT (deadline AT TIME ZONE 'Asia/Shanghai')::date, category_code, department_id,
             district_id, 0, 0, 1, due::int, coalesce(due AND closed_at <= deadline, false)::int,
             coalesce(due AND status IN ('resolved', 'verified', 'closed')
                      AND resolved_at <= deadline, false)::int, 0
      FROM (SELECT *, registered_at IS NOT NULL AND status NOT IN ('cancelled', 'parked')
                      AS due FROM incidents WHERE deadline IS NOT NULL) c) x
GROUP BY 1, 2, 3, 4
"""
"""What incident_day_counts should hold, counted here from the cases."""


def test_day_counts_equal_the_cases(history: str) -> None:
    with psycopg.connect(history) as conn:
        kept = conn.execute(
            "SELECT day, category_code, department_id, district_id, reported, registered,"
            " deadlines, due, closed_on_time, handled_on_time, first_resolved"
            " FROM incident_day_counts"
            " WHERE reported + registered + deadlines + first_resolved > 0"
        ).fetchall()
        counted = conn.execute(DAY_COUNTS).fetchall()
    assert sorted(kept, key=str) == sorted(counted, key=str)
    assert len(counted) > 100


def test_whole_days_take_the_day_table() -> None:
    day = datetime(2025, 2, 1, tzinfo=CST)
    assert by_days(day, day + timedelta(days=3), "i.department_id true") is not None
    assert by_days(day, day + timedelta(hours=30), "i.department_id true") is None
    assert by_days(day, day + timedelta(days=3), "i.h3 true") is None
    assert by_days(day, day + timedelta(days=3), "NULL (i.inspector_id = :x)") is None


def test_fast_metrics_equal_the_definition(history: str) -> None:
    assert asyncio.run(compare(history)) == len(periods()) * (len(GROUPS) + 1) * len(ACTORS)


def test_a_period_between_resolutions_counts_the_middle_one(history: str) -> None:
    """A case resolved three times counts as resolved in a period holding only its second
    resolution (the case the step columns alone cannot decide)."""
    with psycopg.connect(history) as conn:
        row = conn.execute(
            "SELECT t.at FROM incident_transitions t JOIN incidents i"
            " ON i.id = t.incident_id WHERE i.resolve_n >= 3 AND t.action = 'resolve'"
            " AND t.at > i.resolve_first_at AND t.at < i.resolve_last_at"
            " ORDER BY t.id LIMIT 1"
        ).fetchone()
    assert row is not None
    (at,) = row
    start, end = at - timedelta(seconds=1), at + timedelta(seconds=1)

    async def one() -> tuple[int, int]:
        engine = create_async_engine(history)
        try:
            async with engine.connect() as conn:
                got = await case_metrics(conn, start, end)
                rows = await conn.execute(
                    text(REFERENCE.format(key=TOTAL[0], label_join=TOTAL[1], visible="true")),
                    {"f": start, "t": end},
                )
                return got.total.counts["resolved"], rows.all()[-1].resolved
        finally:
            await engine.dispose()

    fast, reference = asyncio.run(one())
    assert fast == reference >= 1
