"""Shift schedules: a daily shift (local start and end time) per inspector or per district,
on the working days of the incidents' calendar (or on every day), cut into time intervals.

An inspector's schedule is their own if they have one, else their district's. A shift whose
end time is not after its start time runs over midnight into the next day.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gis.errors import BadRequest, NotFound, Unprocessable
from layers.incidents.working_time import WorkCalendar, load_calendar, local_day

Interval = tuple[datetime, datetime]


@dataclass(frozen=True)
class Schedule:
    """A daily shift: local start and end time, on working days only or on every day."""

    start_time: time
    end_time: time
    working_days_only: bool = True

    def intervals(self, calendar: WorkCalendar, start: datetime, end: datetime) -> list[Interval]:
        """The shifts that overlap [start, end), clipped to it, in time order."""
        intervals: list[Interval] = []
        day = start.astimezone(calendar.tz).date() - timedelta(days=1)
        last = end.astimezone(calendar.tz).date()
        while day <= last:
            if not self.working_days_only or calendar.is_working_day(day):
                lo = datetime.combine(day, self.start_time, calendar.tz)
                end_day = day if self.end_time > self.start_time else day + timedelta(days=1)
                hi = datetime.combine(end_day, self.end_time, calendar.tz)
                lo, hi = max(lo, start), min(hi, end)
                if lo < hi:
                    intervals.append((lo, hi))
            day += timedelta(days=1)
        return intervals

    def as_dict(self) -> dict[str, Any]:
        """The schedule as JSON-ready data."""
        return {
            "start_time": self.start_time.isoformat("minutes"),
            "end_time": self.end_time.isoformat("minutes"),
            "working_days_only": self.working_days_only,
        }


SCHEDULES = text("""
SELECT u.id, coalesce(own.start_time, d.start_time), coalesce(own.end_time, d.end_time),
       coalesce(own.working_days_only, d.working_days_only)
FROM users u
LEFT JOIN patrol_schedules own ON own.inspector_id = u.id
LEFT JOIN patrol_schedules d ON d.district_id = u.district_id
WHERE u.id = ANY(:ids) AND coalesce(own.id, d.id) IS NOT NULL
""")


async def schedules_of(conn: AsyncConnection, inspector_ids: Sequence[int]) -> dict[int, Schedule]:
    """The schedule of each of the inspectors that has one (their own or their district's)."""
    rows = await conn.execute(SCHEDULES, {"ids": list(inspector_ids)})
    return {i: Schedule(s, e, w) for i, s, e, w in rows}


async def shift_windows(
    conn: AsyncConnection, inspector_ids: Sequence[int], start: datetime, end: datetime
) -> dict[int, list[Interval]]:
    """Each inspector's shift intervals within [start, end) (none without a schedule)."""
    schedules = await schedules_of(conn, inspector_ids)
    calendar = await load_calendar(conn, local_day(start) - timedelta(days=1))
    return {
        i: schedules[i].intervals(calendar, start, end) if i in schedules else []
        for i in inspector_ids
    }


def total_seconds(intervals: Iterable[Interval]) -> float:
    """The summed length of intervals, in seconds."""
    return sum((hi - lo).total_seconds() for lo, hi in intervals)


async def set_schedule(
    conn: AsyncConnection,
    schedule: Schedule,
    actor: str,
    inspector_id: int | None = None,
    district_code: str | None = None,
) -> dict[str, Any]:
    """Give an inspector (or every inspector of a district without their own) a shift."""
    if (inspector_id is None) == (district_code is None):
        raise BadRequest("name either inspector_id or district", code="invalid_schedule")
    if schedule.start_time == schedule.end_time:
        raise Unprocessable("a shift must not start and end at the same time", code="empty_shift")
    district_id = None
    if district_code is not None:
        district_id = await conn.scalar(
            text("SELECT id FROM districts WHERE code = :c"), {"c": district_code}
        )
        if district_id is None:
            raise Unprocessable(f"no district with code {district_code!r}", code="unknown_district")
    elif await conn.scalar(text("SELECT 1 FROM users WHERE id = :i"), {"i": inspector_id}) is None:
        raise Unprocessable(f"no user with id {inspector_id}", code="unknown_inspector")
    column, target = (
        ("inspector_id", inspector_id) if district_id is None else ("district_id", district_id)
    )
    await conn.execute(
        text(
            f"INSERT INTO patrol_schedules ({column}, start_time, end_time, working_days_only, "
            f"updated_by) VALUES (:t, :s, :e, :w, :actor) ON CONFLICT ({column}) "
            f"WHERE {column} IS NOT NULL DO UPDATE SET start_time = EXCLUDED.start_time, "
            "end_time = EXCLUDED.end_time, working_days_only = EXCLUDED.working_days_only, "
            "updated_at = now(), updated_by = EXCLUDED.updated_by"
        ),
        {
            "t": target,
            "s": schedule.start_time,
            "e": schedule.end_time,
            "w": schedule.working_days_only,
            "actor": actor,
        },
    )
    return {"inspector_id": inspector_id, "district": district_code} | schedule.as_dict()


async def list_schedules(conn: AsyncConnection) -> list[dict[str, Any]]:
    """Every stored schedule (per inspector and per district)."""
    rows = await conn.execute(
        text(
            "SELECT s.inspector_id, d.code, s.start_time, s.end_time, s.working_days_only "
            "FROM patrol_schedules s LEFT JOIN districts d ON d.id = s.district_id "
            "ORDER BY d.code NULLS FIRST, s.inspector_id"
        )
    )
    return [
        {"inspector_id": i, "district": code} | Schedule(s, e, w).as_dict()
        for i, code, s, e, w in rows
    ]


async def delete_schedule(
    conn: AsyncConnection, inspector_id: int | None = None, district_code: str | None = None
) -> None:
    """Remove an inspector's (or a district's) schedule; 404 when there is none."""
    if (inspector_id is None) == (district_code is None):
        raise BadRequest("name either inspector_id or district", code="invalid_schedule")
    result = await conn.execute(
        text(
            "DELETE FROM patrol_schedules WHERE inspector_id = :i OR district_id = "
            "(SELECT id FROM districts WHERE code = :c)"
        ),
        {"i": inspector_id, "c": district_code},
    )
    if result.rowcount == 0:
        raise NotFound("no such schedule", code="no_schedule")


async def scheduled_inspectors(conn: AsyncConnection) -> list[int]:
    """Every active user with a shift schedule of their own, and every active inspector of a
    district with one."""
    rows = await conn.scalars(
        text(
            "SELECT u.id FROM users u WHERE u.active AND EXISTS (SELECT 1 FROM patrol_schedules s "
            "WHERE s.inspector_id = u.id "
            "OR (u.role = 'inspector' AND s.district_id = u.district_id)) ORDER BY u.id"
        )
    )
    return list(rows)
