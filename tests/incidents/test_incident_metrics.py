"""Case metrics over hand-built cases in March 2025 (Asia/Shanghai, 09-12 and 13-18 working).

Monday 10 March is made a holiday and Saturday 15 March a make-up working day through the
API. Each case's deadline is written here by hand from its time limit in working hours; one
test checks that the code computes exactly those deadlines. The metrics are compared with
figures worked out by hand below and with counts from plain SQL over the same rows.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import h3
import psycopg
import pytest

from layers.db.engine import create_async_engine
from layers.incidents.cases import Actor, ReportInput, report_incident
from layers.incidents.working_time import deadline_after
from tests.helpers import City, scalar

CST = timezone(timedelta(hours=8))
START = datetime(2025, 3, 1, tzinfo=CST)
END = datetime(2025, 4, 1, tzinfo=CST)
CELL = h3.latlng_to_cell(22.5, 114.0, 10)


def t(day: str, hm: str) -> datetime:
    """A time in Shanghai: t("03-07", "16:00")."""
    month, dd = (int(p) for p in day.split("-"))
    hh, mm = (int(p) for p in hm.split(":"))
    return datetime(2025, month, dd, hh, mm, tzinfo=CST)


# name: category, reported, deadline (by hand), steps [(action, at)], final status
CASES: dict[str, dict[str, Any]] = {
    # Fri 16:00 + 4 h: Fri 16-18, weekend, Mon 10 holiday, Tue 09-11
    "A": dict(cat="0102", rep=t("03-07", "16:00"), deadline=t("03-11", "11:00"), steps=[
        ("register", t("03-07", "16:30")), ("dispatch", t("03-07", "16:40")),
        ("accept", t("03-07", "17:00")), ("resolve", t("03-11", "10:00")),
        ("verify", t("03-11", "10:30")), ("close", t("03-11", "10:45"))]),
    # Fri 17:00 + 4 h: Fri 17-18, Sat 15 is a make-up working day 09-12
    "B": dict(cat="0104", rep=t("03-14", "17:00"), deadline=t("03-15", "12:00"), steps=[
        ("register", t("03-14", "17:10")), ("dispatch", t("03-14", "17:20")),
        ("accept", t("03-14", "17:30")), ("resolve", t("03-17", "09:30")),
        ("rework", t("03-17", "10:00")), ("accept", t("03-17", "10:10")),
        ("resolve", t("03-17", "15:00")), ("verify", t("03-17", "15:30")),
        ("close", t("03-17", "16:00"))]),
    # Mon 09:00 + 40 h: Fri 18:00; extended by 8 h over the holiday Monday: Tue 11 18:00
    "C": dict(cat="0101", rep=t("03-03", "09:00"), deadline=t("03-11", "18:00"), steps=[
        ("register", t("03-03", "09:30")), ("dispatch", t("03-03", "10:00")),
        ("accept", t("03-03", "11:00")), ("request_extension", t("03-06", "10:00")),
        ("approve_extension", t("03-06", "11:00")), ("resolve", t("03-11", "16:00")),
        ("verify", t("03-11", "16:30")), ("close", t("03-11", "17:00"))]),
    "D": dict(cat="0102", rep=t("03-20", "10:00"), deadline=t("03-20", "15:00"), steps=[
        ("register", t("03-20", "10:10")), ("cancel", t("03-20", "10:20"))]),
    # Tue 09:00 + 40 h: Tue-Fri 32 h, Mon 10 holiday, Tue 11 09-18
    "E": dict(cat="0101", rep=t("03-04", "09:00"), deadline=t("03-11", "18:00"), steps=[
        ("register", t("03-04", "09:10")), ("park", t("03-05", "09:00"))]),
    # Wed 10:00 + 4 h: 10-12, 13-15
    "F": dict(cat="0104", rep=t("03-19", "10:00"), deadline=t("03-19", "15:00"), steps=[
        ("register", t("03-19", "10:05")), ("dispatch", t("03-19", "10:10"))]),
    "G": dict(cat="0109", rep=t("03-25", "09:00"), deadline=t("03-25", "11:00"), steps=[]),
    # reported in February: Fri 17:00 + 4 h: Fri 17-18, Mon 3 March 09-12
    "H": dict(cat="0102", rep=t("02-28", "17:00"), deadline=t("03-03", "12:00"), steps=[
        ("register", t("02-28", "17:10")), ("dispatch", t("02-28", "17:20")),
        ("accept", t("02-28", "17:30")), ("resolve", t("03-03", "10:00")),
        ("verify", t("03-03", "10:30")), ("close", t("03-03", "11:00"))]),
    # Mon 31 17:30 + 4 h: 17:30-18, Tue 1 April 09-12, 13-13:30: due after the period
    "I": dict(cat="0104", rep=t("03-31", "17:30"), deadline=t("04-01", "13:30"), steps=[
        ("register", t("03-31", "17:35")), ("dispatch", t("03-31", "17:40")),
        ("accept", t("03-31", "17:42")), ("resolve", t("03-31", "17:45")),
        ("verify", t("04-01", "09:00")), ("close", t("04-01", "10:00"))]),
}  # fmt: skip
STATUS_AFTER = {
    "register": "registered", "dispatch": "dispatched", "accept": "in_progress",
    "resolve": "resolved", "verify": "verified", "close": "closed", "rework": "dispatched",
    "cancel": "cancelled", "park": "parked", "request_extension": None,
    "approve_extension": None,
}  # fmt: skip
STAMP = {"register": "registered_at", "dispatch": "dispatched_at", "resolve": "resolved_at",
         "close": "closed_at"}  # fmt: skip


def insert_case(conn: psycopg.Connection, case: dict[str, Any]) -> int:
    """The case as rows: the incident in its final state and every transition."""
    status, stamps, reworks, trail = "reported", {}, 0, []
    for action, at in case["steps"]:
        before = status
        status = STATUS_AFTER[action] or status
        reworks += action == "rework"
        if action in STAMP:
            stamps[STAMP[action]] = at
        trail.append((action, before, status, at))
    (case_id,) = conn.execute(
        "INSERT INTO incidents (category_code, status, reported_at, registered_at, "
        "dispatched_at, resolved_at, closed_at, deadline, rework_count, inspector_id, "
        "department_id, district_id, h3, geom) SELECT %s, %s, %s, %s, %s, %s, %s, %s, %s, 101, "
        "c.department_id, 1, %s, ST_SetSRID(ST_MakePoint(114.0, 22.5), 4326) "
        "FROM incident_categories c WHERE c.code = %s RETURNING id",
        (case["cat"], status, case["rep"], stamps.get("registered_at"),
         stamps.get("dispatched_at"), stamps.get("resolved_at"), stamps.get("closed_at"),
         case["deadline"], reworks, h3.str_to_int(CELL), case["cat"]),
    ).fetchone()  # fmt: skip
    conn.execute(
        "INSERT INTO incident_transitions (incident_id, action, from_status, to_status, at) "
        "VALUES (%s, 'report', NULL, 'reported', %s)",
        (case_id, case["rep"]),
    )
    for action, before, after, at in trail:
        conn.execute(
            "INSERT INTO incident_transitions (incident_id, action, from_status, to_status, at) "
            "VALUES (%s, %s, %s, %s, %s)",
            (case_id, action, before, after, at),
        )
    return case_id


@pytest.fixture(scope="module")
def march(city: City) -> dict[str, int]:
    """The calendar days through the API, then the hand-built cases; their ids by name."""
    admin = city.key("admin")
    for day, working in (("2025-03-10", False), ("2025-03-15", True)):
        r = city.client.put(f"/incidents/calendar/{day}", json={"working": working}, headers=admin)
        assert r.status_code == 200, r.text
    with psycopg.connect(city.url, autocommit=True) as conn:
        return {name: insert_case(conn, case) for name, case in CASES.items()}


def test_deadlines_follow_the_calendar(city: City, march: dict[str, int]) -> None:
    async def compute() -> list[datetime]:
        engine = create_async_engine(city.url)
        try:
            async with engine.begin() as conn:
                plain = [
                    await deadline_after(conn, c["rep"], _hours(city, c["cat"]))
                    for name, c in CASES.items()
                    if name != "C"
                ]
                extended = await deadline_after(conn, t("03-07", "18:00"), 8)
                first_c = await deadline_after(conn, CASES["C"]["rep"], 40)
                reported = await report_incident(
                    conn,
                    ReportInput(category="0102", lon=114.04, lat=22.535),
                    Actor("app", "app:test"),
                    at=CASES["A"]["rep"],
                )
                await conn.rollback()
            return [*plain, first_c, extended, reported.deadline]
        finally:
            await engine.dispose()

    got = asyncio.run(compute())
    expected = [c["deadline"] for n, c in CASES.items() if n != "C"]
    expected += [t("03-07", "18:00"), CASES["C"]["deadline"], CASES["A"]["deadline"]]
    assert got == expected


def _hours(city: City, category: str) -> float:
    with psycopg.connect(city.url) as conn:
        return float(
            conn.execute(
                "SELECT time_limit_hours FROM incident_categories WHERE code = %s", (category,)
            ).fetchone()[0]
        )


def metrics(city: City, group_by: str | None = None) -> dict[str, Any]:
    params = {"from": START.isoformat(), "to": END.isoformat()}
    if group_by:
        params["group_by"] = group_by
    r = city.client.get("/incidents/metrics", params=params, headers=city.key("dispatcher"))
    assert r.status_code == 200, r.text
    return r.json()


def test_totals_match_the_hand_count(city: City, march: dict[str, int]) -> None:
    total = metrics(city)["total"]
    counts = {k: total[k] for k in ("reported", "registered", "due", "closed")}
    assert counts == {"reported": 8, "registered": 7, "due": 5, "closed": 4}
    assert (total["closed_on_time"], total["handled_on_time"]) == (3, 3)
    assert (total["resolved"], total["reworked"]) == (5, 1)
    assert total["closing_rate"] == pytest.approx(0.8)
    assert total["on_time_closing_rate"] == pytest.approx(0.6)
    assert total["rework_rate"] == pytest.approx(0.2)
    assert total["score"] == pytest.approx(0.6 * 60 + 0.8 * 30 + 0.8 * 10)
    hours = sorted([90.75, 71.0, 200.0, 66.0])  # A, B, C, H: reported → closed
    assert total["mean_hours_to_close"] == pytest.approx(sum(hours) / 4)
    assert total["p90_hours_to_close"] == pytest.approx(hours[2] + 0.7 * (hours[3] - hours[2]))


FACTS = """
SELECT i.id, i.category_code, i.department_id, i.inspector_id, i.district_id, i.h3,
       i.reported_at >= %(f)s AND i.reported_at < %(t)s,
       i.registered_at >= %(f)s AND i.registered_at < %(t)s,
       i.registered_at IS NOT NULL AND i.status <> 'cancelled' AND i.status <> 'parked'
           AND i.deadline >= %(f)s AND i.deadline < %(t)s,
       i.closed_at < %(t)s, i.closed_at <= i.deadline,
       i.status IN ('resolved', 'verified', 'closed') AND i.resolved_at < %(t)s
           AND i.resolved_at <= i.deadline,
       EXISTS (SELECT 1 FROM incident_transitions x WHERE x.incident_id = i.id
               AND x.action = 'resolve' AND x.at >= %(f)s AND x.at < %(t)s),
       EXISTS (SELECT 1 FROM incident_transitions x WHERE x.incident_id = i.id
               AND x.action = 'rework' AND x.at >= %(f)s AND x.at < %(t)s)
FROM incidents i WHERE i.id = ANY(%(ids)s)
"""
GROUP_COLUMN = {"category": 1, "department": 2, "inspector": 3, "district": 4}


def expected_counts(city: City, ids: list[int], group_by: str) -> dict[Any, dict[str, int]]:
    """The counts per group, from plain per-case SQL facts summed here."""
    with psycopg.connect(city.url) as conn:
        rows = conn.execute(FACTS, {"f": START, "t": END, "ids": ids}).fetchall()
    out: dict[Any, dict[str, int]] = {}
    for r in rows:
        rep, reg, due, closed, on_time, handled, resolved, reworked = (bool(v) for v in r[6:])
        c = out.setdefault(r[GROUP_COLUMN[group_by]], dict.fromkeys(
            ("reported", "registered", "due", "closed", "closed_on_time", "handled_on_time",
             "resolved", "reworked"), 0))  # fmt: skip
        c["reported"] += rep
        c["registered"] += reg
        c["due"] += due
        c["closed"] += due and closed
        c["closed_on_time"] += due and closed and on_time
        c["handled_on_time"] += due and handled
        c["resolved"] += resolved
        c["reworked"] += resolved and reworked
    return {k: v for k, v in out.items() if any(v.values())}


@pytest.mark.parametrize("group_by", ["category", "department", "inspector", "district"])
def test_groups_match_plain_sql(city: City, march: dict[str, int], group_by: str) -> None:
    body = metrics(city, group_by)
    got = {
        g["key"]: {k: g[k] for k in ("reported", "registered", "due", "closed",
                                     "closed_on_time", "handled_on_time", "resolved",
                                     "reworked")}
        for g in body["groups"]
    }  # fmt: skip
    assert got == expected_counts(city, list(march.values()), group_by)
    for g in body["groups"]:
        if g["due"]:
            assert g["closing_rate"] == pytest.approx(g["closed"] / g["due"])
            rework = g["reworked"] / g["resolved"] if g["resolved"] else 0
            score = g["handled_on_time"] / g["due"] * 60 + g["closed"] / g["due"] * 30
            assert g["score"] == pytest.approx(score + (1 - rework) * 10)


def test_department_labels_and_cell_keys(city: City, march: dict[str, int]) -> None:
    body = metrics(city, "department")
    labels = {g["key"]: g["label"] for g in body["groups"]}
    assert labels[city.department_id("hw")] == "环境卫生管理处"
    cells = metrics(city, "cell")["groups"]
    assert [g["key"] for g in cells] == [CELL]


@pytest.mark.parametrize(
    "params",
    [
        {"from": "2025-04-01T00:00:00+08:00", "to": "2025-03-01T00:00:00+08:00"},
        {"from": "yesterday"},
        {"group_by": "planet"},
        {"from": "2025-03-01T00:00:00", "to": "2025-04-01T00:00:00"},
    ],
)
def test_bad_metric_queries_are_400(city: City, params: dict[str, str]) -> None:
    r = city.client.get("/incidents/metrics", params=params, headers=city.key("dispatcher"))
    assert r.status_code == 400, r.text
    assert r.json()["status"] == 400


def test_a_period_ending_at_the_calendars_end_is_counted_not_a_500(
    city: City, march: dict[str, int]
) -> None:
    """9999-12-31T20:00Z is past the year 9999 in Shanghai: the period still counts (the
    cases from its start), with no day-table shortcut."""
    params = {"from": START.isoformat(), "to": "9999-12-31T20:00:00Z", "group_by": "department"}
    r = city.client.get("/incidents/metrics", params=params, headers=city.key("dispatcher"))
    assert r.status_code == 200, r.text
    want = scalar(city.url, "SELECT count(*) FROM incidents WHERE reported_at >= %s", (START,))
    assert r.json()["total"]["reported"] == want
