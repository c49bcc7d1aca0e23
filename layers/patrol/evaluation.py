"""Inspector evaluation (GB/T 30428.4-style) over a period, per inspector and per district.

Per inspector I and period [from, to) (docs/patrol.md has the formulas):

- reports: cases reported by an inspector key (``source`` inspector) in I's cells in the
  period; registered (有效上报): those of them that were registered (立案);
- 核实: each case reported in I's cells in the period is verified on time when its first
  decision (立案 register or 作废 cancel, taken on the inspector's check) comes within
  ``CITYHEX_PATROL_VERIFY_HOURS`` working hours of the report;
- 核查: each resolution (处置完成) of a case in I's cells in the period is checked on time when
  the on-site check (核查通过 verify or 返工 rework) comes within ``CITYHEX_PATROL_CHECK_HOURS``
  working hours of it;
- coverage and 在岗率 as ``layers.patrol.coverage`` computes them.

A district's figures are the sums over its inspectors (by the user's district), and its
rates the ratios of those sums.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from layers.incidents.working_time import load_calendar, local_day
from layers.patrol.coverage import InspectorCoverage, check_period, coverage_of, home_districts
from layers.patrol.settings import patrol_settings

REPORTS = text("""
SELECT i.inspector_id, i.source = 'inspector' AS own, i.reported_at,
       EXISTS (SELECT 1 FROM incident_transitions t
               WHERE t.incident_id = i.id AND t.action = 'register') AS registered,
       (SELECT min(t.at) FROM incident_transitions t
        WHERE t.incident_id = i.id AND t.action IN ('register', 'cancel')) AS decided_at
FROM incidents i
WHERE i.inspector_id = ANY(:ids) AND i.reported_at >= :start AND i.reported_at < :end
""")

CHECKS = text("""
SELECT i.inspector_id, r.at AS resolved_at,
       (SELECT min(t.at) FROM incident_transitions t
        WHERE t.incident_id = r.incident_id AND t.action IN ('verify', 'rework')
          AND t.at >= r.at) AS checked_at
FROM incident_transitions r JOIN incidents i ON i.id = r.incident_id
WHERE r.action = 'resolve' AND i.inspector_id = ANY(:ids) AND r.at >= :start AND r.at < :end
""")

COUNTS = (
    "reports",
    "registered",
    "verifications",
    "verified_on_time",
    "checks",
    "checked_on_time",
)


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def rates(counts: dict[str, Any]) -> dict[str, Any]:
    """The rates of a row of counts (None where nothing was due)."""
    return {
        "valid_report_rate": _ratio(counts["registered"], counts["reports"]),
        "on_time_verification_rate": _ratio(counts["verified_on_time"], counts["verifications"]),
        "on_time_check_rate": _ratio(counts["checked_on_time"], counts["checks"]),
        "coverage": _ratio(counts["patrolled_cells"], counts["assigned_cells"]),
        "on_duty_rate": _ratio(counts["shift_on_duty_minutes"], counts["shift_minutes"]),
    }


async def evaluation(
    conn: AsyncConnection,
    inspector_ids: Sequence[int],
    start: datetime,
    end: datetime,
    within: Collection[str] | None = None,
) -> dict[str, Any]:
    """The figures of each inspector and of each district over [start, end) (each inspector
    under their ``home_districts`` among ``within``)."""
    check_period(start, end)
    settings = patrol_settings()
    ids = list(inspector_ids)
    calendar = await load_calendar(conn, local_day(start) - timedelta(days=1))
    counts: dict[int, dict[str, Any]] = {i: dict.fromkeys(COUNTS, 0) for i in ids}
    for row in await conn.execute(REPORTS, {"ids": ids, "start": start, "end": end}):
        c = counts[row.inspector_id]
        if row.own:
            c["reports"] += 1
            c["registered"] += int(row.registered)
        c["verifications"] += 1
        due = calendar.add_working_hours(row.reported_at, settings.patrol_verify_hours)
        c["verified_on_time"] += int(row.decided_at is not None and row.decided_at <= due)
    for row in await conn.execute(CHECKS, {"ids": ids, "start": start, "end": end}):
        c = counts[row.inspector_id]
        c["checks"] += 1
        due = calendar.add_working_hours(row.resolved_at, settings.patrol_check_hours)
        c["checked_on_time"] += int(row.checked_at is not None and row.checked_at <= due)
    covered: dict[int, InspectorCoverage] = {
        cov.inspector_id: cov for cov in await coverage_of(conn, ids, start, end)
    }
    district_of = await home_districts(conn, ids, within)
    inspectors = []
    totals: dict[str | None, dict[str, Any]] = defaultdict(
        lambda: dict.fromkeys(
            (
                *COUNTS,
                "assigned_cells",
                "patrolled_cells",
                "shift_minutes",
                "shift_on_duty_minutes",
                "inspectors",
            ),
            0,
        )
    )
    for i in ids:
        cov = covered[i]
        row = counts[i] | {
            "assigned_cells": cov.assigned_cells,
            "patrolled_cells": len(cov.patrolled_cells),
            "shift_minutes": cov.shift_seconds / 60,
            "shift_on_duty_minutes": cov.shift_on_duty_seconds / 60,
        }
        inspectors.append({"inspector_id": i, "district": district_of.get(i)} | row | rates(row))
        total = totals[district_of.get(i)]
        for key, value in row.items():
            total[key] += value
        total["inspectors"] += 1
    districts = [
        {"district": code} | total | rates(total)
        for code, total in sorted(totals.items(), key=lambda kv: kv[0] or "")
    ]
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "verify_hours": settings.patrol_verify_hours,
        "check_hours": settings.patrol_check_hours,
        "inspectors": inspectors,
        "districts": districts,
    }
