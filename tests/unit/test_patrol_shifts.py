"""Shift intervals on the working-day calendar, and away stretches within a shift (pure)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from layers.incidents.working_time import WorkCalendar, parse_periods
from layers.patrol.off_post import away_stretches, episodes
from layers.patrol.shifts import Schedule

TZ = ZoneInfo("Asia/Shanghai")
CALENDAR = WorkCalendar(
    parse_periods("09:00-18:00"),
    TZ,
    {date(2026, 10, 1): False, date(2026, 10, 10): True},  # a holiday, a make-up Saturday
)


def local(day: int, month: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=TZ)


def test_working_day_shifts_skip_weekends_and_holidays_and_keep_make_up_days() -> None:
    shift = Schedule(time(8, 30), time(17, 30))
    got = shift.intervals(CALENDAR, local(30, 9, 0), local(12, 10, 0))
    days = [lo.astimezone(TZ).date().day for lo, _ in got]
    # Sep 30 (Wed), Oct 2 (Fri), Oct 5–9, Oct 10 (make-up Saturday); not Oct 1, 3, 4, 11
    assert days == [30, 2, 5, 6, 7, 8, 9, 10]
    assert all(hi - lo == timedelta(hours=9) for lo, hi in got)


def test_an_overnight_shift_runs_into_the_next_day_and_is_clipped_to_the_period() -> None:
    night = Schedule(time(22, 0), time(6, 0), working_days_only=False)
    got = night.intervals(CALENDAR, local(5, 10, 3), local(6, 10, 23))
    assert got == [
        (local(5, 10, 3), local(5, 10, 6)),
        (local(5, 10, 22), local(6, 10, 6)),
        (local(6, 10, 22), local(6, 10, 23)),
    ]


def test_away_stretches_are_the_shift_minus_the_inside_times() -> None:
    shift = (local(5, 10, 9), local(5, 10, 12))
    inside = [(local(5, 10, 8), local(5, 10, 9, 10)), (local(5, 10, 9, 20), local(5, 10, 10))]
    assert away_stretches(shift, inside) == [
        (local(5, 10, 9, 10), local(5, 10, 9, 20)),
        (local(5, 10, 10), local(5, 10, 12)),
    ]
    assert episodes([shift], inside, timedelta(minutes=15)) == [
        (local(5, 10, 10), local(5, 10, 12))
    ]
