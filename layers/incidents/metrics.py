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

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

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

IN_PERIOD = """(
          (i.reported_at >= :f AND i.reported_at < :t)
       OR (i.registered_at >= :f AND i.registered_at < :t)
       OR (i.deadline >= :f AND i.deadline < :t)
       OR (i.closed_at >= :f AND i.closed_at < :t))"""
"""A case reported, registered, due or closed in the period (each time column has an index,
so PostgreSQL ORs four index ranges instead of reading every case)."""

SQL = """
WITH steps AS (
    SELECT incident_id, bool_or(action = 'resolve') AS resolved,
           bool_or(action = 'rework') AS reworked
    FROM incident_transitions
    WHERE action IN ('resolve', 'rework') AND at >= :f AND at < :t
    GROUP BY incident_id
), period AS MATERIALIZED (
    SELECT i.* FROM incidents i WHERE {in_period}
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
    result = await conn.execute(
        text(SQL.format(key=key, label_join=label_join, visible=visible, in_period=IN_PERIOD)),
        {**params, "f": start, "t": end},
    )
    rows = result.all()
    total = next(_row(r, group_by) for r in rows if r.is_total)
    groups = [_row(r, group_by) for r in rows if not r.is_total] if group_by else []
    return Metrics(start, end, group_by, groups, total)
