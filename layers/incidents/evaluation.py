"""The evaluation of a period (GB/T 30428.4-style 评价) per department, district or inspector.

Every figure is read from the recorded steps (``incident_transitions``) and the cases, in one
SQL statement per period; docs/evaluation.md gives the formula of each. Stage times and the
registration, dispatch and verification limits count working hours on the working-day
calendar of the deadlines (``layers.incidents.working_time``): the statement gets the
calendar as two arrays indexed by day (working seconds before each day, whether it works)
and the daily working periods, so a working-hour clock reading is a lookup, not a loop.

综合指标值 (the score, 0–100) is the weighted mean of the group's figures, each as a share
where higher is better (返工率 and 延期率 as 1 − rate), over the figures the group has; its
grade is the colour band whose lower bound it reaches. Weights, bands and limits are settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gis.errors import BadRequest
from layers.incidents.cases import Actor
from layers.incidents.metrics import rate
from layers.incidents.scope import visible_sql
from layers.incidents.working_time import (
    WorkCalendar,
    load_calendar,
    local_day,
    working_time_settings,
)

GroupBy = Literal["department", "district", "inspector"]
Compare = Literal["yoy", "mom"]
GROUPS: dict[str, tuple[str, str]] = {
    "department": ("i.department_id", "departments"),
    "district": ("i.district_id", "districts"),
    "inspector": ("i.inspector_id", "users"),
}
"""The group key of a case (the group it stands in now) and the table naming the group."""
DISPATCHED_TO = "coalesce((tr.details ->> 'department_id')::int, i.department_id)"
"""By department, a dispatch counts for the department it went to (recorded in the step)."""

FIGURES: dict[str, tuple[str, str, bool]] = {
    "on_time_registration": ("registered_on_time", "registered", True),
    "on_time_dispatch": ("dispatched_on_time", "dispatches", True),
    "accurate_dispatch": ("kept", "assignments", True),
    "on_time_handling": ("handled_on_time", "due", True),
    "on_time_verification": ("checked_on_time", "checks", True),
    "extension": ("extended", "due", False),
    "rework": ("reworked", "resolved", False),
    "closing": ("closed", "due", True),
    "on_time_closing": ("closed_on_time", "due", True),
    "self_handling": ("self_closed", "inspector_reports", True),
}
"""Each rate: numerator count, denominator count, and whether higher is better (else the
score takes 1 − rate). The rate of figure ``x`` is reported as ``x_rate``."""
COUNTS = (
    "registered",
    "registered_on_time",
    "dispatches",
    "dispatched_on_time",
    "assignments",
    "handed_back",
    "due",
    "handled_on_time",
    "closed",
    "closed_on_time",
    "extended",
    "checks",
    "checked_on_time",
    "resolved",
    "reworked",
    "inspector_reports",
    "self_closed",
)
STAGES = ("registration", "dispatch", "handling", "verification", "closing", "total")
"""Stages whose time is measured; all in working hours except ``total`` (calendar hours)."""
MAX_PERIOD = timedelta(days=3660)
EARLIEST_YEAR, LATEST_YEAR = 1900, 2200
"""The years a period may lie in (the calendar reaches a year before it, 同比 a year back)."""
CALENDAR_LOOKBACK = timedelta(days=366)
"""How far before the period the working-time calendar reaches: a stage that started earlier
counts its working hours from that day on."""


def parse_weights(value: str) -> dict[str, float]:
    """Weights written as ``figure=weight`` separated by commas (figures of ``FIGURES``)."""
    weights: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in value.split(","))):
        name, _, number = (s.strip() for s in part.partition("="))
        if name not in FIGURES:
            raise ValueError(f"{name!r} is not a figure; one of {', '.join(FIGURES)}")
        try:
            weight = float(number)
        except ValueError:
            raise ValueError(f"{part!r} is not figure=weight") from None
        if not 0 <= weight <= 1000:
            raise ValueError(f"the weight of {name} must lie in 0..1000")
        weights[name] = weight
    if not any(weights.values()):
        raise ValueError("at least one figure needs a weight above 0")
    return weights


def parse_grades(value: str) -> tuple[tuple[float, str], ...]:
    """Colour bands written as ``lower_bound=colour`` separated by commas, highest first,
    the last starting at 0 (so that every score has a grade)."""
    bands: list[tuple[float, str]] = []
    for part in filter(None, (p.strip() for p in value.split(","))):
        bound, _, colour = (s.strip() for s in part.partition("="))
        try:
            lower = float(bound)
        except ValueError:
            raise ValueError(f"{part!r} is not lower_bound=colour") from None
        if not math.isfinite(lower) or not colour or (bands and lower >= bands[-1][0]):
            raise ValueError(f"{part!r}: bands need a colour and go from the highest bound down")
        bands.append((lower, colour))
    if not bands or bands[-1][0] != 0:
        raise ValueError("the last band must start at 0")
    return tuple(bands)


class EvaluationSettings(BaseSettings):
    """The evaluation (评价): time limits of the centre's own steps, weights, colour bands."""

    model_config = SettingsConfigDict(env_prefix="CITYHEX_", extra="ignore")

    evaluation_register_hours: float = Field(1.0, ge=0.01, le=2000)
    """Working hours from a report to its registration (立案) that count as on time."""
    evaluation_dispatch_hours: float = Field(1.0, ge=0.01, le=2000)
    """Working hours from registration (or a hand-back) to the dispatch that count as on time."""
    evaluation_verify_hours: float = Field(4.0, ge=0.01, le=2000)
    """Working hours from a resolution to the inspector's check (核查) that count as on time."""
    evaluation_weights_department: str = (
        "on_time_handling=40,on_time_closing=20,rework=20,extension=20"
    )
    """Weights of the department score (``figure=weight``, comma list; see docs/evaluation.md)."""
    evaluation_weights_district: str = (
        "on_time_registration=10,on_time_dispatch=10,accurate_dispatch=10,on_time_handling=30,"
        "on_time_verification=10,closing=20,rework=10"
    )
    """Weights of the district score (``figure=weight``, comma list)."""
    evaluation_weights_inspector: str = "on_time_verification=70,self_handling=30"
    """Weights of the inspector score (``figure=weight``, comma list)."""
    evaluation_grades: str = "90=green,75=blue,60=yellow,0=red"
    """Colour bands of the score (``lower_bound=colour``, highest first, the last from 0)."""

    @field_validator(
        "evaluation_weights_department",
        "evaluation_weights_district",
        "evaluation_weights_inspector",
    )
    @classmethod
    def _weights(cls, value: str) -> str:
        parse_weights(value)
        return value

    @field_validator("evaluation_grades")
    @classmethod
    def _grades(cls, value: str) -> str:
        parse_grades(value)
        return value

    def weights(self, group_by: str) -> dict[str, float]:
        """The score weights of groups of kind ``group_by``."""
        return parse_weights(getattr(self, f"evaluation_weights_{group_by}"))

    def limits(self) -> dict[str, float]:
        """The registration, dispatch and verification limits, in working hours."""
        return {
            "register_hours": self.evaluation_register_hours,
            "dispatch_hours": self.evaluation_dispatch_hours,
            "verify_hours": self.evaluation_verify_hours,
        }


@lru_cache
def evaluation_settings() -> EvaluationSettings:
    """The process-wide evaluation settings."""
    return EvaluationSettings()


@dataclass(frozen=True)
class ClockTable:
    """A working-hour clock for SQL: ``clock(x)`` = working seconds from ``origin`` to ``x``.

    The statement gets, per local day from ``origin`` on, the working seconds of the days
    before it and whether it works, as two arrays indexed by the day; ``origin`` and ``end``
    are local (naive) times, and moments outside [origin, end] are clamped to it."""

    origin: datetime
    end: datetime
    before: list[float]
    works: list[bool]
    periods: tuple[tuple[int, int], ...]
    tz: str

    def params(self) -> dict[str, Any]:
        """The statement parameters the clock expressions read."""
        return {
            "clock_origin": self.origin,
            "clock_end": self.end,
            "clock_day0": self.origin.date(),
            "clock_before": self.before,
            "clock_works": self.works,
            "tz": self.tz,
        }

    def local(self, column: str) -> str:
        """SQL for the moment ``column`` as a local timestamp, clamped to [origin, end]."""
        return f"least(greatest({column} AT TIME ZONE :tz, :clock_origin), :clock_end)"

    def sql(self, local: str) -> str:
        """SQL for the working seconds from ``origin`` to the local timestamp ``local``: the
        working seconds before its day, plus those of its day up to its time."""
        day = f"({local}::date - CAST(:clock_day0 AS date) + 1)"
        second = f"date_part('epoch', {local}::time)"
        within = " + ".join(f"greatest(0, least({second}, {e}) - {b})" for b, e in self.periods)
        return (
            f"((CAST(:clock_before AS float8[]))[{day}]"
            f" + CASE WHEN (CAST(:clock_works AS boolean[]))[{day}] THEN {within} ELSE 0 END)"
        )


def clock_table(calendar: WorkCalendar, first: datetime, last: datetime) -> ClockTable:
    """The clock of ``calendar`` over the local days from ``first``'s to two after ``last``'s."""
    periods = tuple(
        (b.hour * 3600 + b.minute * 60 + b.second, e.hour * 3600 + e.minute * 60 + e.second)
        for b, e in calendar.periods
    )
    daily = sum(e - b for b, e in periods)
    day, stop = local_day(first), local_day(last) + timedelta(days=2)
    origin = datetime.combine(day, datetime.min.time())
    end = datetime.combine(stop, datetime.min.time())
    before: list[float] = []
    works: list[bool] = []
    total = 0.0
    while day <= stop:
        working = calendar.is_working_day(day)
        before.append(total)
        works.append(working)
        total += daily if working else 0
        day += timedelta(days=1)
    return ClockTable(origin, end, before, works, periods, working_time_settings().timezone)


SQL = """
WITH touched AS (
    SELECT DISTINCT incident_id FROM incident_transitions
    WHERE action IN {counted} AND at >= :f AND at < :t
), trail AS (
    SELECT t.incident_id, t.action, t.from_status, t.at, t.details, t.local_at,
        CASE
            WHEN t.action = 'register'
                THEN max(t.local_at) FILTER (WHERE t.action = 'report') OVER w
            WHEN t.action = 'dispatch'
                THEN max(t.local_at) FILTER (WHERE t.action IN ('register', 'hand_back')) OVER w
            WHEN t.action = 'resolve'
                THEN max(t.local_at) FILTER (
                    WHERE t.action IN ('dispatch', 'redispatch', 'rework')) OVER w
            WHEN t.action IN ('verify', 'rework')
                THEN max(t.local_at) FILTER (WHERE t.action = 'resolve') OVER w
            WHEN t.action = 'close'
                THEN max(t.local_at) FILTER (WHERE t.action = 'verify') OVER w
        END AS start_local,
        min(t.at) FILTER (WHERE t.action = 'hand_back') OVER later AS next_hand_back,
        min(t.at) FILTER (WHERE t.action IN ('dispatch', 'redispatch')) OVER later
            AS next_assignment,
        bool_or(t.action = 'resolve' AND t.at >= :f AND t.at < :t) OVER whole AS case_resolved
    FROM (SELECT t.*, {local_at} AS local_at
          FROM incident_transitions t JOIN touched USING (incident_id)) t
    WINDOW whole AS (PARTITION BY t.incident_id),
        w AS (whole ORDER BY t.at, t.id),
        later AS (whole ORDER BY t.at, t.id ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING)
), steps AS (
    SELECT CASE WHEN tr.action IN ('dispatch', 'redispatch') THEN {step_key} ELSE {key} END
            AS key,
        tr.incident_id, tr.action, tr.from_status, tr.case_resolved,
        (tr.action IN ('dispatch', 'redispatch') AND tr.next_hand_back < :t
         AND (tr.next_assignment IS NULL OR tr.next_hand_back < tr.next_assignment))
            AS handed_back,
        ({clock_at} - {clock_start}) / 3600 AS step_hours,
        date_part('epoch', tr.at - i.reported_at) / 3600 AS total_hours
    FROM trail tr JOIN incidents i ON i.id = tr.incident_id
    WHERE tr.at >= :f AND tr.at < :t AND tr.action IN {counted} AND {visible}
), cases AS (
    SELECT {key} AS key,
        (i.registered_at IS NOT NULL AND i.status NOT IN ('cancelled', 'parked')
         AND i.deadline >= :f AND i.deadline < :t) AS due,
        i.status, i.deadline, i.resolved_at, i.closed_at,
        (i.source = 'inspector' AND i.reported_at >= :f AND i.reported_at < :t)
            AS inspector_report,
        EXISTS (SELECT 1 FROM incident_extensions e WHERE e.incident_id = i.id
                AND e.status = 'approved' AND e.decided_at < :t) AS was_extended
    FROM incidents i
    WHERE {visible} AND ((i.deadline >= :f AND i.deadline < :t)
                         OR (i.reported_at >= :f AND i.reported_at < :t))
), facts AS (
    SELECT key, action, from_status, incident_id, case_resolved, handed_back, step_hours,
        total_hours, false AS due, NULL::text AS status,
        NULL::timestamptz AS deadline, NULL::timestamptz AS resolved_at,
        NULL::timestamptz AS closed_at, false AS inspector_report, false AS was_extended
    FROM steps
    UNION ALL
    SELECT key, NULL, NULL, NULL, false, false, NULL, NULL, due, status, deadline,
        resolved_at, closed_at, inspector_report, was_extended
    FROM cases
), m AS (
    SELECT key, GROUPING(key) = 1 AS is_total,
        count(*) FILTER (WHERE action = 'register') AS registered,
        count(*) FILTER (WHERE action = 'register' AND step_hours <= :register_hours)
            AS registered_on_time,
        count(*) FILTER (WHERE action = 'dispatch') AS dispatches,
        count(*) FILTER (WHERE action = 'dispatch' AND step_hours <= :dispatch_hours)
            AS dispatched_on_time,
        count(*) FILTER (WHERE action IN ('dispatch', 'redispatch')) AS assignments,
        count(*) FILTER (WHERE handed_back) AS handed_back,
        count(*) FILTER (WHERE due) AS due,
        count(*) FILTER (WHERE due AND status IN ('resolved', 'verified', 'closed')
                         AND resolved_at < :t AND resolved_at <= deadline) AS handled_on_time,
        count(*) FILTER (WHERE due AND closed_at < :t) AS closed,
        count(*) FILTER (WHERE due AND closed_at < :t AND closed_at <= deadline)
            AS closed_on_time,
        count(*) FILTER (WHERE due AND was_extended) AS extended,
        count(*) FILTER (WHERE action IN ('verify', 'rework')) AS checks,
        count(*) FILTER (WHERE action IN ('verify', 'rework') AND step_hours <= :verify_hours)
            AS checked_on_time,
        count(DISTINCT incident_id) FILTER (WHERE action = 'resolve') AS resolved,
        count(DISTINCT incident_id) FILTER (WHERE action = 'rework' AND case_resolved)
            AS reworked,
        count(*) FILTER (WHERE inspector_report) AS inspector_reports,
        count(*) FILTER (WHERE action = 'self_close') AS self_closed,
        {stages}
    FROM facts
    GROUP BY GROUPING SETS ((key), ())
)
SELECT m.*, l.name AS label FROM m LEFT JOIN {names} l ON l.id = m.key AND NOT m.is_total
ORDER BY m.is_total, m.key
"""
COUNTED = (
    "('register', 'dispatch', 'redispatch', 'resolve', 'verify', 'rework', 'close', 'self_close')"
)
"""The actions whose steps a figure or stage counts."""
STAGE_SQL = {
    "registration": ("step_hours", "action = 'register'"),
    "dispatch": ("step_hours", "action = 'dispatch'"),
    "handling": ("step_hours", "action = 'resolve'"),
    "verification": ("step_hours", "action IN ('verify', 'rework')"),
    "closing": ("step_hours", "action = 'close'"),
    "total": ("total_hours", "action IN ('close', 'self_close')"),
}
"""Each stage's hours column and the steps that end it."""


def stages_sql() -> str:
    """The count, mean and p90 of every stage's hours, as aggregate columns."""
    columns = []
    for stage, (hours, where) in STAGE_SQL.items():
        columns += [
            f"count(*) FILTER (WHERE {where}) AS {stage}_count",
            f"avg({hours}) FILTER (WHERE {where}) AS {stage}_mean",
            f"percentile_cont(0.9) WITHIN GROUP (ORDER BY {hours}) FILTER (WHERE {where})"
            f" AS {stage}_p90",
        ]
    return ",\n        ".join(columns)


@dataclass(frozen=True)
class Stage:
    """How long one stage took: how many ended in the period, mean and p90 hours."""

    count: int
    mean_hours: float | None
    p90_hours: float | None


@dataclass(frozen=True)
class Figures:
    """The counts, rates, stage times, score and grade of one group (key None: all)."""

    key: int | None
    label: str | None
    counts: dict[str, int]
    stages: dict[str, Stage]
    weights: dict[str, float] = field(repr=False)
    grades: tuple[tuple[float, str], ...] = field(repr=False)

    @property
    def rates(self) -> dict[str, float | None]:
        """Every figure of ``FIGURES`` as ``<figure>_rate`` (None without a denominator)."""
        c = self.counts
        kept = c["assignments"] - c["handed_back"]
        values = {**c, "kept": kept}
        return {
            f"{name}_rate": rate(values[part], values[whole])
            for name, (part, whole, _) in FIGURES.items()
        }

    @property
    def score(self) -> float | None:
        """综合指标值: 100 × Σ weight × share / Σ weight over the weighted figures the group
        has (share = rate, or 1 − rate where lower is better); None when it has none."""
        rates = self.rates
        total = weight_sum = 0.0
        for name, weight in self.weights.items():
            value = rates[f"{name}_rate"]
            if value is None or weight == 0:
                continue
            total += weight * (value if FIGURES[name][2] else 1 - value)
            weight_sum += weight
        return 100 * total / weight_sum if weight_sum else None

    @property
    def grade(self) -> str | None:
        """The colour band of the score."""
        score = self.score
        if score is None:
            return None
        return next(colour for lower, colour in self.grades if score >= lower)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "key": self.key,
            "label": self.label,
            "counts": self.counts,
            "rates": self.rates,
            "stages": {
                name: {"count": s.count, "mean_hours": s.mean_hours, "p90_hours": s.p90_hours}
                for name, s in self.stages.items()
            },
            "score": self.score,
            "grade": self.grade,
        }


@dataclass(frozen=True)
class Evaluation:
    """The figures of a period [start, end) per group and in total."""

    start: datetime
    end: datetime
    group_by: str
    groups: list[Figures]
    total: Figures


def _float(value: Any) -> float | None:
    return float(value) if value is not None else None


def _figures(row: Any, weights: dict[str, float], grades: tuple[tuple[float, str], ...]) -> Figures:
    data = row._mapping
    return Figures(
        key=None if data["is_total"] else data["key"],
        label=None if data["is_total"] else data["label"],
        counts={name: data[name] for name in COUNTS},
        stages={
            s: Stage(data[f"{s}_count"], _float(data[f"{s}_mean"]), _float(data[f"{s}_p90"]))
            for s in STAGES
        },
        weights=weights,
        grades=grades,
    )


def check_period(start: datetime, end: datetime) -> None:
    """BadRequest unless [start, end) is a period with time zones, at most ten years long,
    between the years 1900 and 2200."""
    if start.tzinfo is None or end.tzinfo is None:
        raise BadRequest("from and to need a time zone (e.g. Z or +08:00)", code="naive_time")
    if start.year < EARLIEST_YEAR or end.year >= LATEST_YEAR:
        raise BadRequest(
            f"the period must lie between {EARLIEST_YEAR} and {LATEST_YEAR}", code="invalid_period"
        )
    if start >= end:
        raise BadRequest("from must come before to", code="invalid_period")
    if end - start > MAX_PERIOD:
        raise BadRequest("the period may span at most ten years", code="invalid_period")


async def evaluate(
    conn: AsyncConnection,
    start: datetime,
    end: datetime,
    group_by: GroupBy = "department",
    visible_to: Actor | None = None,
    settings: EvaluationSettings | None = None,
) -> Evaluation:
    """The evaluation of [start, end) grouped by ``group_by``, over the cases ``visible_to``
    may see (None: every case); one statement."""
    check_period(start, end)
    if group_by not in GROUPS:
        raise BadRequest(f"group_by must be one of {', '.join(GROUPS)}", code="invalid_group_by")
    settings = settings or evaluation_settings()
    key, names = GROUPS[group_by]
    clock = clock_table(
        await load_calendar(conn, local_day(start - CALENDAR_LOOKBACK)),
        start - CALENDAR_LOOKBACK,
        end,
    )
    visible, params = visible_sql(visible_to) if visible_to else ("true", {})
    sql = SQL.format(
        key=key,
        step_key=DISPATCHED_TO if group_by == "department" else key,
        names=names,
        visible=visible,
        local_at=clock.local("t.at"),
        clock_at=clock.sql("tr.local_at"),
        clock_start=clock.sql("tr.start_local"),
        counted=COUNTED,
        stages=stages_sql(),
    )
    rows = (
        await conn.execute(
            text(sql),
            {
                **params,
                **clock.params(),
                **settings.limits(),
                "f": start,
                "t": end,
            },
        )
    ).all()
    weights, grades = settings.weights(group_by), parse_grades(settings.evaluation_grades)
    figures = [_figures(r, weights, grades) for r in rows]
    total = next(f for f, r in zip(figures, rows, strict=True) if r.is_total)
    groups = [f for f, r in zip(figures, rows, strict=True) if not r.is_total]
    return Evaluation(start, end, group_by, groups, total)


def previous_period(start: datetime, end: datetime, compare: Compare) -> tuple[datetime, datetime]:
    """The period compared with [start, end): 同比 (yoy) the same dates a year before (29
    February becomes the 28th), 环比 (mom) the period of equal length just before."""
    if compare == "mom":
        return start - (end - start), start
    if compare == "yoy":
        return _year_before(start), _year_before(end)
    raise BadRequest("compare must be yoy or mom", code="invalid_compare")


def _year_before(moment: datetime) -> datetime:
    day = 28 if (moment.month, moment.day) == (2, 29) else moment.day
    return moment.replace(year=moment.year - 1, day=day)


def change(now: Figures, before: Figures | None) -> dict[str, float | None]:
    """Each rate's and the score's change from ``before`` to ``now`` (a difference of
    shares, and of score points); None where either has no value."""
    if before is None:
        return {**dict.fromkeys(now.rates), "score": None}
    then = before.rates
    out: dict[str, float | None] = {
        name: (value - then[name]) if value is not None and then[name] is not None else None
        for name, value in now.rates.items()
    }
    s0, s1 = before.score, now.score
    out["score"] = s1 - s0 if s0 is not None and s1 is not None else None
    return out


@dataclass(frozen=True)
class Comparison:
    """An evaluation and, when asked, that of the previous period with the change of each
    group (matched by key)."""

    current: Evaluation
    compare: Compare | None
    previous: Evaluation | None

    def group_dict(self, figures: Figures, total: bool = False) -> dict[str, Any]:
        """One group (or the total) as JSON, with its previous figures and the change."""
        data = figures.as_dict()
        if self.previous is None:
            return data
        before: Figures | None
        if total:
            before = self.previous.total
        else:
            before = next((g for g in self.previous.groups if g.key == figures.key), None)
        data["previous"] = before.as_dict() if before else None
        data["change"] = change(figures, before)
        return data

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data: the period, the settings used, the groups and the total."""
        settings = evaluation_settings()
        current = self.current
        return {
            "from": current.start.isoformat(),
            "to": current.end.isoformat(),
            "group_by": current.group_by,
            "compare": self.compare,
            "previous_from": self.previous.start.isoformat() if self.previous else None,
            "previous_to": self.previous.end.isoformat() if self.previous else None,
            "limits": settings.limits(),
            "weights": settings.weights(current.group_by),
            "grades": [
                {"min_score": lower, "grade": colour}
                for lower, colour in parse_grades(settings.evaluation_grades)
            ],
            "groups": [self.group_dict(g) for g in current.groups],
            "total": self.group_dict(current.total, total=True),
        }


async def evaluation(
    conn: AsyncConnection,
    start: datetime,
    end: datetime,
    group_by: GroupBy = "department",
    compare: Compare | None = None,
    visible_to: Actor | None = None,
) -> Comparison:
    """The evaluation of [start, end) and, with ``compare``, of the period before (同比 or
    环比) — what ``GET /incidents/evaluation`` and ``cityhex incidents evaluation`` give."""
    check_period(start, end)
    before = previous_period(start, end, compare) if compare is not None else None
    current = await evaluate(conn, start, end, group_by, visible_to)
    previous = await evaluate(conn, *before, group_by, visible_to) if before else None
    return Comparison(current, compare, previous)
