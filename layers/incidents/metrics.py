"""Case metrics over a period [from, to), in total and by category, department, inspector,
cell or district.

Counts (each case counted in the group it stands in now):

- reported, registered: cases reported / registered (立案) in the period;
- due (应结案): registered cases, neither cancelled nor parked, whose deadline falls in the
  period (an approved extension moves the deadline);
- closed (结案): due cases closed before the period's end; closed on time: by the deadline;
- handled on time (按期处置): due cases whose last resolution, before the period's end and
  not sent back, came by the deadline;
- resolved: cases resolved in the period; reworked: those of them sent back (返工) in it.

Rates: 结案率 = closed / due, 按期结案率 = closed on time / due, 返工率 = reworked / resolved,
按期处置率 = handled on time / due (None when the denominator is 0). The department score is
按期处置率 × 60 + 结案率 × 30 + (1 − 返工率) × 10, given when there are due cases (a group
without resolutions counts as no rework). Time to close (mean, p90, in hours) is over the
cases closed in the period.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gis.errors import BadRequest
from gis.hexgrid import to_hex
from layers.incidents.cases import Actor
from layers.incidents.scope import visible_sql

GroupBy = Literal["category", "department", "inspector", "cell", "district"]
GROUPS: dict[str, tuple[str, str]] = {
    "category": ("i.category_code", "LEFT JOIN incident_categories l ON l.code = m.key"),
    "department": ("i.department_id", "LEFT JOIN departments l ON l.id = m.key"),
    "inspector": ("i.inspector_id", "LEFT JOIN users l ON l.id = m.key"),
    "district": ("i.district_id", "LEFT JOIN districts l ON l.id = m.key"),
    "cell": ("i.h3", "LEFT JOIN (SELECT NULL::text AS name) l ON true"),
}
TOTAL = ("NULL::int", "LEFT JOIN (SELECT NULL::text AS name) l ON true")
COUNTS = (
    "reported",
    "registered",
    "due",
    "closed",
    "closed_on_time",
    "handled_on_time",
    "resolved",
    "reworked",
)

DUE = """(i.registered_at IS NOT NULL AND i.status NOT IN ('cancelled', 'parked'))"""
"""A registered case neither cancelled nor parked (due when its deadline is in the period)."""


def step_in_period(action: str) -> str:
    """SQL: case ``i`` has an ``action`` step (resolve or rework) in [:f, :t). Its first or
    last step is in it, or it has 3+ steps spanning the period and one of them is in it."""
    first, last, n = f"i.{action}_first_at", f"i.{action}_last_at", f"i.{action}_n"
    return f"""({first} >= :f AND {first} < :t OR {last} >= :f AND {last} < :t
        OR {n} >= 3 AND {first} < :f AND {last} >= :t AND EXISTS (
            SELECT 1 FROM incident_transitions x WHERE x.incident_id = i.id
            AND x.action = '{action}' AND x.at >= :f AND x.at < :t))"""


def with_step(action: str, columns: str) -> str:
    """SELECT ``columns`` of the visible cases with an ``action`` step in [:f, :t), each once:
    those whose first step is in it, those whose last is (and not the first), and those with
    3+ steps spanning it (each arm reads one index; the last looks at the transitions)."""
    first, last, n = f"i.{action}_first_at", f"i.{action}_last_at", f"i.{action}_n"
    return f"""
        SELECT {columns} FROM incidents i
        WHERE {first} >= :f AND {first} < :t AND {{visible}}
        UNION ALL
        SELECT {columns} FROM incidents i
        WHERE {n} >= 2 AND {last} >= :f AND {last} < :t AND {first} < :f AND {{visible}}
        UNION ALL
        SELECT {columns} FROM incidents i
        WHERE {n} >= 3 AND {last} >= :t AND {first} < :f AND {{visible}} AND EXISTS (
            SELECT 1 FROM incident_transitions x WHERE x.incident_id = i.id
            AND x.action = '{action}' AND x.at >= :f AND x.at < :t)"""


BY_CASE = (
    f"""
reported AS (
    SELECT {{key}} AS key, count(*) AS n FROM incidents i
    WHERE i.reported_at >= :f AND i.reported_at < :t AND {{visible}} GROUP BY 1
), registered AS (
    SELECT {{key}} AS key, count(*) AS n FROM incidents i
    WHERE i.registered_at >= :f AND i.registered_at < :t AND {{visible}} GROUP BY 1
), due AS (
    SELECT {{key}} AS key,
        count(*) FILTER (WHERE {DUE}) AS due,
        count(*) FILTER (WHERE {DUE} AND i.closed_at < :t) AS closed,
        count(*) FILTER (WHERE {DUE} AND i.closed_at < :t AND i.closed_at <= i.deadline)
            AS closed_on_time,
        count(*) FILTER (WHERE {DUE} AND i.status IN ('resolved', 'verified', 'closed')
                         AND i.resolved_at < :t AND i.resolved_at <= i.deadline)
            AS handled_on_time
    FROM incidents i
    WHERE i.deadline >= :f AND i.deadline < :t AND {{visible}} GROUP BY 1
), resolved AS (
    SELECT key, count(*) AS resolved, count(*) FILTER (WHERE reworked) AS reworked
    FROM ({with_step("resolve", "{key} AS key, " + step_in_period("rework") + " AS reworked")}
    ) s GROUP BY 1
)""",
    """
    SELECT key, n, 0, 0, 0, 0, 0, 0, 0 FROM reported
    UNION ALL SELECT key, 0, n, 0, 0, 0, 0, 0, 0 FROM registered
    UNION ALL SELECT key, 0, 0, due, closed, closed_on_time, handled_on_time, 0, 0 FROM due
    UNION ALL SELECT key, 0, 0, 0, 0, 0, 0, resolved, reworked FROM resolved""",
)
"""Reported, registered, the counts by deadline, resolved and reworked, read from the cases
(any period)."""

LATER_RESOLVED = with_step(
    "resolve", "{key} AS key, " + step_in_period("rework") + " AS reworked"
).split("UNION ALL", 1)[1]
"""The cases resolved in the period whose first resolution came before it (with_step's
second and third arms)."""

BY_DAY = (
    f"""
days AS (
    SELECT {{key}} AS key, sum(i.reported) AS reported, sum(i.registered) AS registered,
           sum(i.due) AS due, sum(i.closed_on_time) AS closed_on_time,
           sum(i.handled_on_time) AS handled_on_time, sum(i.first_resolved) AS resolved
    FROM incident_day_counts i
    WHERE i.day >= :first_day AND i.day < :end_day AND {{visible}} GROUP BY 1
    HAVING sum(i.reported) + sum(i.registered) + sum(i.deadlines) + sum(i.first_resolved) > 0
), late AS (
    SELECT {{key}} AS key, count(*) FILTER (WHERE {DUE} AND i.closed_at < :t) AS closed
    FROM incidents i
    WHERE i.deadline >= :f AND i.deadline < :t AND i.closed_at > i.deadline AND {{visible}}
    GROUP BY 1
), resolved_later AS (
    SELECT key, count(*) AS resolved, count(*) FILTER (WHERE reworked) AS reworked
    FROM ({LATER_RESOLVED}) s GROUP BY 1
), reworked_first AS (
    SELECT key, count(*) FILTER (WHERE first_resolved) AS reworked
    FROM ({
        with_step(
            "rework",
            "{key} AS key, i.resolve_first_at >= :f AND i.resolve_first_at < :t AS first_resolved",
        )
    }) s GROUP BY 1
)""",
    """
    SELECT key, reported, registered, due, closed_on_time, closed_on_time, handled_on_time,
           resolved, 0 FROM days
    UNION ALL SELECT key, 0, 0, 0, closed, 0, 0, 0, 0 FROM late
    UNION ALL SELECT key, 0, 0, 0, 0, 0, 0, resolved, reworked FROM resolved_later
    UNION ALL SELECT key, 0, 0, 0, 0, 0, 0, 0, reworked FROM reworked_first""",
)
"""The same counts for a period of whole days, summed from ``incident_day_counts`` (migration
0027): a case closed or handled by a deadline in the period is so before the period ends, so
only the cases closed after their deadline are read (index ``ix_incidents_closed_late``); the
cases first resolved in the period are counted by that day, and only those resolved in it
later (resolved two or more times) and the reworked (a rework in it) are read."""

DAY_ZONE = ZoneInfo("Asia/Shanghai")
"""The time zone ``incident_day_counts`` cuts days in."""
DAY_COLUMNS = {"category_code", "department_id", "district_id"}
"""The case columns ``incident_day_counts`` groups by."""

SQL = f"""
WITH {{by_time}}, reworked AS (
    SELECT DISTINCT key FROM ({with_step("rework", "{key} AS key")}) s
), closed AS (
    SELECT key, GROUPING(key) = 1 AS is_total, avg(hours) AS mean_hours,
           percentile_cont(0.9) WITHIN GROUP (ORDER BY hours) AS p90_hours
    FROM (SELECT {{key}} AS key, extract(epoch FROM i.closed_at - i.reported_at) / 3600.0
                 AS hours
          FROM incidents i
          WHERE i.closed_at >= :f AND i.closed_at < :t AND {{visible}}) c
    GROUP BY GROUPING SETS ((key), ())
), parts (key, reported, registered, due, closed, closed_on_time, handled_on_time, resolved,
          reworked) AS ({{time_parts}}
    UNION ALL SELECT key, 0, 0, 0, 0, 0, 0, 0, 0 FROM reworked
    UNION ALL SELECT key, 0, 0, 0, 0, 0, 0, 0, 0 FROM closed WHERE NOT is_total
), m AS (
    SELECT key, GROUPING(key) = 1 AS is_total,
        {", ".join(f"coalesce(sum({c}), 0)::bigint AS {c}" for c in COUNTS)}
    FROM parts GROUP BY GROUPING SETS ((key), ())
)
SELECT m.*, c.mean_hours, c.p90_hours, l.name AS label
FROM m LEFT JOIN closed c ON c.is_total = m.is_total AND c.key IS NOT DISTINCT FROM m.key
{{label_join}}
ORDER BY m.is_total, m.key
"""
"""Each count read from the one time range that decides it, over the case's current group:
reported, registered, due (and closed, on time, handled on time) by deadline (BY_CASE or
BY_DAY), resolved and reworked by the steps kept on the case, time to close by closing time;
the groups are those of every case reported, registered, due, closed, resolved or reworked in
the period (as the definition in the module doc, with zero counts where only a rework or a
closing falls in it). Each range is an index-only scan of an index that carries what it
reads (migration 0025_metrics_fast)."""


def whole_day(at: datetime) -> date | None:
    """The day (in DAY_ZONE) that ``at`` starts, None when it is not a midnight there (or
    lies past the calendar's end there)."""
    try:
        local = at.astimezone(DAY_ZONE)
    except OverflowError:
        return None
    return local.date() if local.time() == time(0) else None


def by_days(start: datetime, end: datetime, sql: str) -> dict[str, date] | None:
    """The day parameters when [start, end) is whole days in DAY_ZONE and ``sql`` (the group
    key and the caller's scope) reads only columns the day table has; None otherwise."""
    first, last = whole_day(start), whole_day(end)
    if first is None or last is None or not set(re.findall(r"\bi\.(\w+)", sql)) <= DAY_COLUMNS:
        return None
    return {"first_day": first, "end_day": last}


WORK_MEM = "64MB"
"""Memory for the statement's sorts (a year's closing times, ~600,000 values at 10× the demo,
sorted in memory instead of on disk); set for the transaction only."""


def rate(part: int, whole: int) -> float | None:
    """part / whole, None when whole is 0."""
    return part / whole if whole else None


@dataclass(frozen=True)
class MetricsRow:
    """The counts and rates of one group (key None: every case)."""

    key: Any
    label: str | None
    counts: dict[str, int]
    mean_hours_to_close: float | None
    p90_hours_to_close: float | None

    @property
    def rates(self) -> dict[str, float | None]:
        """结案率, 按期结案率, 返工率 and 按期处置率."""
        c = self.counts
        return {
            "closing_rate": rate(c["closed"], c["due"]),
            "on_time_closing_rate": rate(c["closed_on_time"], c["due"]),
            "rework_rate": rate(c["reworked"], c["resolved"]),
            "on_time_handling_rate": rate(c["handled_on_time"], c["due"]),
        }

    @property
    def score(self) -> float | None:
        """按期处置率×60 + 结案率×30 + (1−返工率)×10; None without due cases."""
        r = self.rates
        if r["on_time_handling_rate"] is None or r["closing_rate"] is None:
            return None
        rework = r["rework_rate"] or 0.0
        return r["on_time_handling_rate"] * 60 + r["closing_rate"] * 30 + (1 - rework) * 10

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "key": self.key,
            "label": self.label,
            **self.counts,
            **self.rates,
            "score": self.score,
            "mean_hours_to_close": self.mean_hours_to_close,
            "p90_hours_to_close": self.p90_hours_to_close,
        }


@dataclass(frozen=True)
class Metrics:
    """The metrics of a period: every group, and the total."""

    start: datetime
    end: datetime
    group_by: str | None
    groups: list[MetricsRow]
    total: MetricsRow


def _row(row: Any, group_by: str | None) -> MetricsRow:
    data = row._mapping
    key = data["key"] if not data["is_total"] else None
    if group_by == "cell" and key is not None:
        key = to_hex(key)
    mean, p90 = data["mean_hours"], data["p90_hours"]
    return MetricsRow(
        key=key,
        label=data["label"] if group_by != "cell" else key,
        counts={name: data[name] for name in COUNTS},
        mean_hours_to_close=float(mean) if mean is not None else None,
        p90_hours_to_close=float(p90) if p90 is not None else None,
    )


async def case_metrics(
    conn: AsyncConnection,
    start: datetime,
    end: datetime,
    group_by: GroupBy | None = None,
    visible_to: Actor | None = None,
) -> Metrics:
    """The case metrics of [start, end), grouped by ``group_by`` (None: the total only),
    over the cases ``visible_to`` may see (None: every case)."""
    if start.tzinfo is None or end.tzinfo is None:
        raise BadRequest("from and to need a time zone (e.g. Z or +08:00)", code="naive_time")
    if start >= end:
        raise BadRequest("from must come before to", code="invalid_period")
    if group_by is not None and group_by not in GROUPS:
        raise BadRequest(f"group_by must be one of {', '.join(GROUPS)}", code="invalid_group_by")
    key, label_join = GROUPS[group_by] if group_by else TOTAL
    visible, params = visible_sql(visible_to) if visible_to else ("true", {})
    days = by_days(start, end, f"{key} {visible}")
    by_time, time_parts = BY_DAY if days else BY_CASE
    await conn.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
    sql = SQL.replace("{by_time}", by_time).replace("{time_parts}", time_parts)
    result = await conn.execute(
        text(sql.format(key=key, label_join=label_join, visible=visible)),
        {**params, **(days or {}), "f": start, "t": end},
    )
    rows = result.all()
    total = next(_row(r, group_by) for r in rows if r.is_total)
    groups = [_row(r, group_by) for r in rows if not r.is_total] if group_by else []
    return Metrics(start, end, group_by, groups, total)
