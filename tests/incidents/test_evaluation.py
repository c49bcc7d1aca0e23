"""The evaluation (GET /incidents/evaluation) against figures counted here from the tables.

Cases with known times in June 2024 (Asia/Shanghai, 09-12 and 13-18 working, Monday 10 June
the Dragon Boat holiday), plus one in May 2024 and one in June 2023 for 环比 and 同比, are
made through the real workflow functions (report_incident, transition_incident with ``at``),
with rework, a hand-back, a redispatch, an approved and a rejected extension, 自行处置, a
cancelled and a parked case. ``expected`` recomputes every count, rate, stage time, score and
grade from ``incident_transitions``, ``incidents`` and ``incident_extensions`` with its own
working-hour counter, written from docs/evaluation.md; each response is compared with it.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import orjson
import psycopg
import pytest
from typer.testing import CliRunner

from layers.db.engine import create_async_engine
from layers.db.keys import create_key
from layers.db.scope import Scope
from layers.db.settings import storage_settings
from layers.incidents.cases import Actor, ReportInput, report_incident
from layers.incidents.evaluation import EvaluationSettings, evaluate
from layers.incidents.transitions import TransitionInput, transition_incident
from tests.helpers import City

CST = timezone(timedelta(hours=8))
WEST, EAST = (114.04, 22.535), (114.06, 22.545)  # inspector 101 / district 1, 104 / 2
PHOTO = ["https://photos.example/evaluation.jpg"]
JUNE = (datetime(2024, 6, 1, tzinfo=CST), datetime(2024, 7, 1, tzinfo=CST))
PERIODS = ((9, 12), (13, 18))
LIMITS = {"register": 1.0, "dispatch": 1.0, "verify": 4.0}  # the documented defaults, hours
WEIGHTS = {
    "department": {"on_time_handling": 40, "on_time_closing": 20, "rework": 20, "extension": 20},
    "district": {"on_time_registration": 10, "on_time_dispatch": 10, "accurate_dispatch": 10,
                 "on_time_handling": 30, "on_time_verification": 10, "closing": 20, "rework": 10},
    "inspector": {"on_time_verification": 70, "self_handling": 30},
}  # fmt: skip
GRADES = ((90, "green"), (75, "blue"), (60, "yellow"), (0, "red"))

DISPATCHER = Actor("dispatcher", "dispatcher:eval")
STAFF = Actor("editor", "editor:eval")
VERIFIER = Actor("inspector", "inspector:eval-verifier")
APP = Actor("app", "app:eval")
REPORTER = Actor("inspector", "inspector:eval-101", user_id=101)
ROLE_ACTOR = {"dispatcher": DISPATCHER, "editor": STAFF, "inspector": VERIFIER}
ACTOR_OF = {
    "register": "dispatcher", "dispatch": "dispatcher", "redispatch": "dispatcher",
    "approve_extension": "dispatcher", "reject_extension": "dispatcher", "close": "dispatcher",
    "cancel": "dispatcher", "park": "dispatcher", "accept": "editor", "hand_back": "editor",
    "resolve": "editor", "request_extension": "editor", "verify": "inspector",
    "rework": "inspector",
}  # fmt: skip


def t(day: str, hm: str, year: int = 2024) -> datetime:
    """A time in Shanghai: t("06-03", "16:00")."""
    month, dd = (int(p) for p in day.split("-"))
    hh, mm = (int(p) for p in hm.split(":"))
    return datetime(year, month, dd, hh, mm, tzinfo=CST)


# name: point, category, reporter, report time, steps (action, time, extra fields)
CASES: dict[str, tuple] = {
    "A": (WEST, "0102", APP, t("06-03", "09:00"), [
        ("register", t("06-03", "09:30"), {}), ("dispatch", t("06-03", "09:50"), {}),
        ("accept", t("06-03", "10:00"), {}), ("resolve", t("06-03", "15:00"), {}),
        ("verify", t("06-03", "16:00"), {}), ("close", t("06-03", "16:30"), {})]),
    # registered over lunch (0.75 working hours), dispatched late, handed back, sent to cgj,
    # reworked, verified late (11 working hours after the resolution)
    "B": (WEST, "0104", APP, t("06-03", "11:30"), [
        ("register", t("06-03", "13:15"), {}), ("dispatch", t("06-03", "16:00"), {}),
        ("accept", t("06-03", "16:10"), {}),
        ("hand_back", t("06-04", "09:30"), {"note": "not ours"}),
        ("dispatch", t("06-04", "09:40"), {"department": "cgj"}),
        ("accept", t("06-04", "09:50"), {}), ("resolve", t("06-04", "10:30"), {}),
        ("rework", t("06-04", "11:00"), {}), ("accept", t("06-04", "11:10"), {}),
        ("resolve", t("06-05", "10:00"), {}), ("verify", t("06-06", "14:00"), {}),
        ("close", t("06-06", "15:00"), {})]),
    # 40 h from Tue 4 June: Tue 11 18:00 over the holiday; extended by 8 h: Wed 12 18:00
    "C": (EAST, "0101", APP, t("06-04", "09:00"), [
        ("register", t("06-04", "09:10"), {}), ("dispatch", t("06-04", "09:20"), {}),
        ("accept", t("06-04", "09:30"), {}),
        ("request_extension", t("06-05", "10:00"), {"hours": 8}),
        ("approve_extension", t("06-05", "10:30"), {}), ("resolve", t("06-12", "17:00"), {}),
        ("verify", t("06-13", "09:30"), {}), ("close", t("06-13", "10:00"), {})]),
    "D": (WEST, "0102", REPORTER, t("06-06", "10:00"), [
        ("self_close", t("06-06", "10:20"), {"note": "swept it up"})]),
    # Fri 17:30, registered Tue 09:30 after the holiday: exactly 1 working hour; verified
    # exactly 4 working hours after the resolution
    "E": (EAST, "0104", APP, t("06-07", "17:30"), [
        ("register", t("06-11", "09:30"), {}), ("dispatch", t("06-11", "10:00"), {}),
        ("accept", t("06-11", "10:05"), {}),
        ("redispatch", t("06-11", "10:30"), {"department": "cgj"}),
        ("accept", t("06-11", "10:40"), {}), ("resolve", t("06-11", "11:00"), {}),
        ("verify", t("06-11", "16:00"), {}), ("close", t("06-11", "16:10"), {})]),
    "F": (EAST, "0109", APP, t("06-17", "09:00"), [
        ("register", t("06-17", "09:20"), {}), ("dispatch", t("06-17", "09:30"), {}),
        ("request_extension", t("06-17", "10:00"), {"hours": 4}),
        ("reject_extension", t("06-17", "10:10"), {}), ("park", t("06-18", "09:00"), {})]),
    "G": (WEST, "0104", APP, t("06-20", "09:00"), [("cancel", t("06-20", "09:05"), {})]),
    "H": (WEST, "0102", APP, t("06-28", "16:00"), [
        ("register", t("06-28", "16:10"), {}), ("dispatch", t("06-28", "16:20"), {})]),
    # reported in May, registered late in June (1h20 working), due and handled in June
    "I": (WEST, "0102", APP, t("05-31", "17:00"), [
        ("register", t("06-03", "09:20"), {}), ("dispatch", t("06-03", "09:30"), {}),
        ("accept", t("06-03", "09:35"), {}), ("resolve", t("06-03", "10:00"), {}),
        ("verify", t("06-03", "10:30"), {}), ("close", t("06-03", "10:40"), {})]),
    "J": (WEST, "0102", REPORTER, t("06-25", "10:00"), [("register", t("06-25", "10:30"), {})]),
    "K": (WEST, "0102", APP, t("05-06", "09:00"), [
        ("register", t("05-06", "09:10"), {}), ("dispatch", t("05-06", "09:20"), {}),
        ("accept", t("05-06", "09:30"), {}), ("resolve", t("05-06", "10:00"), {}),
        ("verify", t("05-06", "10:30"), {}), ("close", t("05-06", "11:00"), {})]),
    "L": (EAST, "0104", APP, t("06-05", "09:00", 2023), [
        ("register", t("06-05", "11:00", 2023), {}), ("dispatch", t("06-05", "11:10", 2023), {}),
        ("accept", t("06-05", "11:20", 2023), {}), ("resolve", t("06-05", "14:00", 2023), {}),
        ("rework", t("06-05", "15:00", 2023), {}), ("accept", t("06-05", "15:10", 2023), {}),
        ("resolve", t("06-06", "09:30", 2023), {}), ("verify", t("06-06", "10:00", 2023), {}),
        ("close", t("06-06", "10:10", 2023), {})]),
}  # fmt: skip


async def build(url: str, departments: dict[str, int]) -> dict[str, int]:
    """Report and move every case of ``CASES``; their ids by name."""
    engine = create_async_engine(url)
    ids = {}
    try:
        for name, (point, category, reporter, at, steps) in CASES.items():
            async with engine.begin() as conn:
                case = await report_incident(
                    conn,
                    ReportInput(category=category, lon=point[0], lat=point[1], photos=PHOTO),
                    reporter,
                    at=at,
                )
                for action, when, extra in steps:
                    actor = reporter if action == "self_close" else ROLE_ACTOR[ACTOR_OF[action]]
                    dept = extra.get("department")
                    data = TransitionInput(
                        action=action,
                        note=extra.get("note"),
                        hours=extra.get("hours"),
                        department_id=departments[dept] if dept else None,
                    )
                    case = await transition_incident(
                        conn, case.id, data, actor, case.version, at=when
                    )
            ids[name] = case.id
    finally:
        await engine.dispose()
    return ids


@pytest.fixture(scope="module")
def june(city: City) -> dict[str, int]:
    """The holiday through the API, then the cases; their ids by name."""
    r = city.client.put(
        "/incidents/calendar/2024-06-10",
        json={"working": False, "name": "端午节"},
        headers=city.key("admin"),
    )
    assert r.status_code == 200, r.text
    departments = {code: city.department_id(code) for code in ("hw", "cgj")}
    return asyncio.run(build(city.url, departments))


# --- the independent count --------------------------------------------------------------------


def work_hours(city: City, start: datetime, end: datetime) -> float:
    """Working hours between two moments: 09-12 and 13-18 in Shanghai, Monday to Friday,
    with the days of work_calendar overriding."""
    overrides = dict(city.rows("SELECT day, working FROM work_calendar"))
    total, day = 0.0, start.astimezone(CST).date()
    while day <= end.astimezone(CST).date():
        if overrides.get(day, day.weekday() < 5):
            for h0, h1 in PERIODS:
                lo = max(start, datetime(day.year, day.month, day.day, h0, tzinfo=CST))
                hi = min(end, datetime(day.year, day.month, day.day, h1, tzinfo=CST))
                total += max(0.0, (hi - lo).total_seconds())
        day += timedelta(days=1)
    return total / 3600


def stage(values: list[float]) -> dict[str, Any]:
    """Count, mean and p90 (linear interpolation, as percentile_cont) of a stage's hours."""
    if not values:
        return {"count": 0, "mean_hours": None, "p90_hours": None}
    return {
        "count": len(values),
        "mean_hours": float(np.mean(values)),
        "p90_hours": float(np.percentile(values, 90)),
    }


def ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def expected(
    city: City, f: datetime, to: datetime, group_by: str, district: int | None = None
) -> dict[Any, dict[str, Any]]:
    """Counts, rates, stages and score per group (and None: the total), from the tables."""
    column = {"department": "department_id", "district": "district_id"}.get(
        group_by, "inspector_id"
    )
    cases = {
        r[0]: dict(zip(("key", "district", "status", "source", "reported_at", "registered_at",
                        "deadline", "resolved_at", "closed_at"), r[1:], strict=True))
        for r in city.rows(
            f"SELECT id, {column}, district_id, status, source, reported_at, registered_at, "
            "deadline, resolved_at, closed_at FROM incidents"
        )
    }  # fmt: skip
    if district is not None:
        cases = {i: c for i, c in cases.items() if c["district"] == district}
    trails: dict[int, list[tuple]] = defaultdict(list)
    for r in city.rows(
        "SELECT incident_id, action, from_status, at, details FROM incident_transitions "
        "ORDER BY incident_id, at, id"
    ):
        if r[0] in cases:
            trails[r[0]].append(r[1:])
    extended = {
        r[0] for r in city.rows(
            "SELECT incident_id FROM incident_extensions WHERE status = 'approved' "
            "AND decided_at < %s", (to,))
    }  # fmt: skip
    counts: dict[Any, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    hours: dict[Any, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    resolved: dict[Any, set[int]] = defaultdict(set)
    reworked: dict[Any, set[int]] = defaultdict(set)

    def add(key: Any, name: str, value: Any = 1) -> None:
        for k in (key, None):
            if name.startswith("hours:"):
                hours[k][name[6:]].append(value)
            elif name == "resolved":
                resolved[k].add(value)
            elif name == "reworked":
                reworked[k].add(value)
            else:
                counts[k][name] += value

    for case_id, trail in trails.items():
        case = cases[case_id]
        for n, (action, source, at, details) in enumerate(trail):
            if not f <= at < to:
                continue
            key = case["key"]
            if group_by == "department" and action in ("dispatch", "redispatch"):
                key = details["department_id"]
            begins = STARTED_BY.get(action)
            starts = [s[2] for s in trail[:n] if begins and s[0] in begins]
            elapsed = work_hours(city, starts[-1], at) if starts else None
            if action == "register":
                add(key, "registered")
                add(key, "registered_on_time", elapsed <= LIMITS["register"])
                add(key, "hours:registration", elapsed)
            if action == "dispatch" and source == "registered":
                add(key, "dispatches")
                add(key, "dispatched_on_time", elapsed <= LIMITS["dispatch"])
                add(key, "hours:dispatch", elapsed)
            if action in ("dispatch", "redispatch"):
                add(key, "assignments")
                following = [s for s in trail[n + 1 :] if s[0] in ("dispatch", "redispatch",
                                                                   "hand_back")]  # fmt: skip
                if following and following[0][0] == "hand_back" and following[0][2] < to:
                    add(key, "handed_back")
            if action == "resolve":
                add(key, "resolved", case_id)
                add(key, "hours:handling", elapsed)
            if action in ("verify", "rework"):
                add(key, "checks")
                add(key, "checked_on_time", elapsed <= LIMITS["verify"])
                add(key, "hours:verification", elapsed)
            if action == "close":
                add(key, "hours:closing", elapsed)
            if action in ("close", "self_close"):
                add(key, "hours:total", (at - case["reported_at"]).total_seconds() / 3600)
            if action == "self_close":
                add(key, "self_closed")
        for action, _, at, _ in trail:
            if action == "rework" and f <= at < to and case_id in resolved[case["key"]]:
                add(case["key"], "reworked", case_id)
    for case_id, case in cases.items():
        key = case["key"]
        if case["source"] == "inspector" and f <= case["reported_at"] < to:
            add(key, "inspector_reports")
        due = (
            case["registered_at"] is not None
            and case["status"] not in ("cancelled", "parked")
            and f <= case["deadline"] < to
        )
        if not due:
            continue
        add(key, "due")
        add(key, "extended", case_id in extended)
        closed, resolved_at = case["closed_at"], case["resolved_at"]
        if closed is not None and closed < to:
            add(key, "closed")
            add(key, "closed_on_time", closed <= case["deadline"])
        if (case["status"] in ("resolved", "verified", "closed") and resolved_at is not None
                and resolved_at < to and resolved_at <= case["deadline"]):  # fmt: skip
            add(key, "handled_on_time")
    out = {}
    for key in {*counts, *hours, *resolved}:
        c = dict(counts[key])
        c["resolved"], c["reworked"] = len(resolved[key]), len(reworked[key])
        c = {name: int(c.get(name, 0)) for name in COUNT_NAMES}
        rates = {
            "on_time_registration_rate": ratio(c["registered_on_time"], c["registered"]),
            "on_time_dispatch_rate": ratio(c["dispatched_on_time"], c["dispatches"]),
            "accurate_dispatch_rate": ratio(c["assignments"] - c["handed_back"],
                                            c["assignments"]),
            "on_time_handling_rate": ratio(c["handled_on_time"], c["due"]),
            "on_time_verification_rate": ratio(c["checked_on_time"], c["checks"]),
            "extension_rate": ratio(c["extended"], c["due"]),
            "rework_rate": ratio(c["reworked"], c["resolved"]),
            "closing_rate": ratio(c["closed"], c["due"]),
            "on_time_closing_rate": ratio(c["closed_on_time"], c["due"]),
            "self_handling_rate": ratio(c["self_closed"], c["inspector_reports"]),
        }  # fmt: skip
        out[key] = {
            "counts": c,
            "rates": rates,
            "stages": {s: stage(hours[key][s]) for s in STAGE_NAMES},
            "score": score(rates, WEIGHTS[group_by]),
        }
    return out


STARTED_BY = {
    "register": ("report",),
    "dispatch": ("register", "hand_back"),
    "resolve": ("dispatch", "redispatch", "rework"),
    "verify": ("resolve",),
    "rework": ("resolve",),
    "close": ("verify",),
}
"""The docs' stage rule: a step ends the stage begun by the last of these steps before it."""
COUNT_NAMES = (
    "registered", "registered_on_time", "dispatches", "dispatched_on_time", "assignments",
    "handed_back", "due", "handled_on_time", "closed", "closed_on_time", "extended", "checks",
    "checked_on_time", "resolved", "reworked", "inspector_reports", "self_closed",
)  # fmt: skip
STAGE_NAMES = ("registration", "dispatch", "handling", "verification", "closing", "total")


def score(rates: dict[str, float | None], weights: dict[str, float]) -> float | None:
    """The documented 综合指标值: 100 × Σ w·share / Σ w over the figures with a rate."""
    parts = []
    for name, w in weights.items():
        value = rates[f"{name}_rate"]
        if value is not None:
            parts.append((w, 1 - value if name in ("rework", "extension") else value))
    return 100 * sum(w * v for w, v in parts) / sum(w for w, _ in parts) if parts else None


def grade(value: float | None) -> str | None:
    return None if value is None else next(g for low, g in GRADES if value >= low)


def approx(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) < 1e-6


def assert_figures(got: dict[str, Any], want: dict[str, Any]) -> None:
    """A group of the answer equals the independent count."""
    assert got["counts"] == want["counts"]
    for name, value in want["rates"].items():
        assert approx(got["rates"][name], value), (name, got["rates"][name], value)
    for name, value in want["stages"].items():
        assert got["stages"][name]["count"] == value["count"], name
        for k in ("mean_hours", "p90_hours"):
            assert approx(got["stages"][name][k], value[k]), (name, k)
    assert approx(got["score"], want["score"])
    assert got["grade"] == grade(want["score"])


def evaluation(city: City, key: dict, **params: str) -> dict[str, Any]:
    r = city.client.get("/incidents/evaluation", params=params, headers=key)
    assert r.status_code == 200, r.text
    return r.json()


def june_params(**extra: str) -> dict[str, str]:
    return {"from": JUNE[0].isoformat(), "to": JUNE[1].isoformat(), **extra}


# --- the tests --------------------------------------------------------------------------------


@pytest.mark.parametrize("group_by", ["department", "district", "inspector"])
def test_every_figure_equals_the_count_from_the_transitions(
    city: City, june: dict[str, int], group_by: str
) -> None:
    body = evaluation(city, city.key("dispatcher"), **june_params(group_by=group_by))
    want = expected(city, *JUNE, group_by)
    assert body["weights"] == WEIGHTS[group_by]
    assert body["limits"] == {"register_hours": 1.0, "dispatch_hours": 1.0, "verify_hours": 4.0}
    assert {g["key"] for g in body["groups"]} == {k for k in want if k is not None}
    for group in body["groups"]:
        assert_figures(group, want[group["key"]])
    assert_figures(body["total"], want[None])
    assert "previous" not in body["total"]


def test_the_cases_make_every_figure_count(city: City, june: dict[str, int]) -> None:
    """The scenario exercises each rule both ways (so a wrong rule changes a figure)."""
    total = expected(city, *JUNE, "department")[None]["counts"]
    for part, whole in (
        ("registered_on_time", "registered"),
        ("dispatched_on_time", "dispatches"),
        ("handed_back", "assignments"),
        ("handled_on_time", "due"),
        ("checked_on_time", "checks"),
        ("extended", "due"),
        ("reworked", "resolved"),
        ("closed_on_time", "due"),
        ("self_closed", "inspector_reports"),
    ):
        assert 0 < total[part] < total[whole], (part, total)
    hw, cgj = city.department_id("hw"), city.department_id("cgj")
    body = evaluation(city, city.key("admin"), **june_params(group_by="department"))
    by_key = {g["key"]: g for g in body["groups"]}
    # B's first dispatch to hw was handed back; its second, and E's redispatch, went to cgj
    assert by_key[hw]["counts"]["handed_back"] == 1
    assert by_key[cgj]["counts"]["handed_back"] == 0
    assert by_key[cgj]["counts"]["assignments"] >= 2


def test_working_hours_decide_on_time(city: City, june: dict[str, int]) -> None:
    """B registered 1h45 after its report but over lunch (0.75 working hours): on time; I
    1h20 working hours after a Friday 17:00 report: late; E exactly 1 working hour after
    Friday 17:30 over the weekend and the holiday: on time."""
    ids = [june[n] for n in ("B", "I", "E")]
    rows = city.rows(
        "SELECT i.reported_at, t.at FROM incident_transitions t JOIN incidents i "
        "ON i.id = t.incident_id WHERE t.action = 'register' AND t.incident_id = ANY(%s) "
        "ORDER BY array_position(%s, t.incident_id)",
        (ids, ids),
    )
    assert [round(work_hours(city, a, b), 4) for a, b in rows] == [0.75, round(4 / 3, 4), 1.0]
    body = evaluation(city, city.key("dispatcher"), **june_params(group_by="inspector"))
    want = expected(city, *JUNE, "inspector")[None]["counts"]
    assert body["total"]["counts"]["registered_on_time"] == want["registered_on_time"]


@pytest.mark.parametrize("compare", ["yoy", "mom"])
def test_period_over_period(city: City, june: dict[str, int], compare: str) -> None:
    body = evaluation(
        city, city.key("dispatcher"), **june_params(group_by="district", compare=compare)
    )
    before = (
        (datetime(2023, 6, 1, tzinfo=CST), datetime(2023, 7, 1, tzinfo=CST))
        if compare == "yoy"
        else (datetime(2024, 5, 2, tzinfo=CST), JUNE[0])
    )
    assert datetime.fromisoformat(body["previous_from"]) == before[0]
    assert datetime.fromisoformat(body["previous_to"]) == before[1]
    now, then = expected(city, *JUNE, "district"), expected(city, *before, "district")
    assert then[None]["counts"]["registered"] > 0
    for group in [*body["groups"], body["total"]]:
        old = then.get(group["key"])
        if old is None:
            assert group["previous"] is None
            assert all(v is None for v in group["change"].values())
            continue
        assert_figures(group["previous"], old)
        new = now[group["key"]]
        for name, value in new["rates"].items():
            was = old["rates"][name]
            diff = value - was if value is not None and was is not None else None
            assert approx(group["change"][name], diff), name
        diff = (
            new["score"] - old["score"]
            if new["score"] is not None and old["score"] is not None
            else None
        )
        assert approx(group["change"]["score"], diff)


def test_a_scoped_dispatcher_sees_its_districts_only(city: City, june: dict[str, int]) -> None:
    with psycopg.connect(city.url, autocommit=True) as conn:
        token = create_key(conn, "dispatcher", "east", None, Scope.of(districts=["440302"]))
    body = evaluation(
        city, {"Authorization": f"Bearer {token}"}, **june_params(group_by="department")
    )
    want = expected(city, *JUNE, "department", district=2)
    assert_figures(body["total"], want[None])
    assert body["total"]["counts"] != expected(city, *JUNE, "department")[None]["counts"]


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"group_by": "category"}, 400),
        ({"compare": "qoq"}, 400),
        ({"from": "2024-06-01T00:00:00", "to": "2024-07-01T00:00:00"}, 400),
        ({"from": "2024-07-01T00:00:00Z", "to": "2024-06-01T00:00:00Z"}, 400),
        ({"from": "2010-01-01T00:00:00Z", "to": "2024-06-01T00:00:00Z"}, 400),
        ({"from": "yesterday"}, 400),
        ({"from": "0001-01-01T00:00:00Z", "to": "0001-02-01T00:00:00Z", "compare": "yoy"}, 400),
        ({"from": "9999-11-01T00:00:00Z", "to": "9999-12-31T00:00:00Z"}, 400),
    ],
)
def test_bad_parameters_are_4xx(city: City, params: dict, status: int) -> None:
    r = city.client.get("/incidents/evaluation", params=params, headers=city.key("dispatcher"))
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == r.status_code and body["code"] and body["message"]


@pytest.mark.parametrize("role", ["app", "inspector", "editor"])
def test_only_dispatchers_and_admins(city: City, role: str) -> None:
    r = city.client.get("/incidents/evaluation", headers=city.key(role))
    assert r.status_code == 403
    assert city.client.get("/incidents/evaluation").status_code == 401


def test_weights_and_grades_are_settings(city: City, june: dict[str, int]) -> None:
    settings = EvaluationSettings(
        evaluation_weights_department="rework=1", evaluation_grades="50=gold,0=grey"
    )

    async def run() -> Any:
        engine = create_async_engine(city.url)
        try:
            async with engine.connect() as conn:
                return await evaluate(conn, *JUNE, "department", settings=settings)
        finally:
            await engine.dispose()

    result = asyncio.run(run())
    want = expected(city, *JUNE, "department")
    for group in result.groups:
        rework = want[group.key]["rates"]["rework_rate"]
        assert approx(group.score, None if rework is None else 100 * (1 - rework))
        assert group.grade == (None if group.score is None else
                               "gold" if group.score >= 50 else "grey")  # fmt: skip
    with pytest.raises(ValueError):
        EvaluationSettings(evaluation_weights_department="speed=3")
    with pytest.raises(ValueError):
        EvaluationSettings(evaluation_grades="50=gold,60=grey,0=red")


def test_the_command_line_prints_the_same(city: City, june: dict[str, int]) -> None:
    from spatial_api.cli import app
    from spatial_api.cli.common import console

    args = ["incidents", "evaluation", "--from", JUNE[0].isoformat(), "--to", JUNE[1].isoformat()]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CITYHEX_DATABASE_URL", city.url)
        mp.setattr(console, "width", 240)  # the table is wide: not the runner's 80 columns
        storage_settings.cache_clear()
        try:
            runner = CliRunner()
            as_json = runner.invoke(app, [*args, "--group-by", "district", "--json"])
            table = runner.invoke(app, [*args, "--compare", "yoy"])
            bad = runner.invoke(app, [*args, "--group-by", "cell"])
        finally:
            storage_settings.cache_clear()
    assert as_json.exit_code == 0, as_json.output
    body = orjson.loads(as_json.stdout)
    assert body == evaluation(city, city.key("admin"), **june_params(group_by="district"))
    assert table.exit_code == 0, table.output
    assert "按期处置" in table.output and "Δ score" in table.output
    hw = city.department_id("hw")
    score = evaluation(city, city.key("admin"), **june_params())["groups"]
    shown = next(g for g in score if g["key"] == hw)
    assert f"{shown['score']:.1f}" in table.output
    assert bad.exit_code == 1 and "invalid_group_by" in bad.output


def test_a_read_is_recorded_as_personal(city: City, june: dict[str, int]) -> None:
    """Inspectors' names with their performance are staff data: each answer is in the log."""
    before = city.value("SELECT coalesce(max(seq), 0) FROM audit_log")
    evaluation(city, city.key("dispatcher"), **june_params(group_by="inspector"))
    rows = city.rows(
        "SELECT route, detail FROM audit_log WHERE seq > %s AND action = 'personal.read'",
        (before,),
    )
    assert rows == [("/incidents/evaluation", {"personal": ["staff"]})]
