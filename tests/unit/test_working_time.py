"""Working-hour deadlines: hand-worked examples, and a minute-by-minute walk as the oracle."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from layers.incidents.working_time import WorkCalendar, parse_periods

SHANGHAI = ZoneInfo("Asia/Shanghai")
PERIODS = parse_periods("09:00-12:00,13:00-18:00")
HOLIDAYS = {date(2025, 10, d): False for d in range(1, 9)} | {date(2025, 10, 11): True}
CAL = WorkCalendar(PERIODS, SHANGHAI, HOLIDAYS)


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    ("start", "hours", "deadline"),
    [
        (local(2025, 9, 22, 10, 0), 4, local(2025, 9, 22, 15, 0)),  # Monday over lunch
        (local(2025, 9, 22, 12, 30), 1, local(2025, 9, 22, 14, 0)),  # starts in the lunch break
        (local(2025, 9, 22, 7, 0), 3, local(2025, 9, 22, 12, 0)),  # ends exactly at noon
        (local(2025, 9, 22, 20, 0), 2, local(2025, 9, 23, 11, 0)),  # after hours
        (local(2025, 9, 26, 16, 0), 4, local(2025, 9, 28, 11, 0)),  # Fri → make-up Sunday
        (local(2025, 9, 27, 10, 0), 1, local(2025, 9, 28, 10, 0)),  # Saturday → Sunday
        (local(2025, 10, 3, 16, 0), 4, local(2025, 10, 9, 14, 0)),  # in the holidays
        (local(2025, 9, 30, 17, 0), 2, local(2025, 10, 9, 10, 0)),  # National Day week
        (local(2025, 10, 10, 17, 0), 8, local(2025, 10, 11, 17, 0)),  # make-up Saturday
        (local(2025, 9, 22, 9, 0), 40, local(2025, 9, 26, 18, 0)),  # a working week
        (local(2025, 9, 22, 9, 0), 0.25, local(2025, 9, 22, 9, 15)),
    ],
)
def test_hand_worked_deadlines(start: datetime, hours: float, deadline: datetime) -> None:
    cal = WorkCalendar(PERIODS, SHANGHAI, {**HOLIDAYS, date(2025, 9, 28): True})
    assert cal.add_working_hours(start, hours) == deadline
    assert cal.add_working_hours(start, hours).tzinfo == UTC


def in_working_time(moment: datetime, cal: WorkCalendar) -> bool:
    """Whether the minute starting at ``moment`` is working time (the oracle's only rule)."""
    t = moment.astimezone(cal.tz)
    if not cal.overrides.get(t.date(), t.weekday() < 5):
        return False
    return any(a <= t.time() < b for a, b in cal.periods)


def walk(start: datetime, minutes: int, cal: WorkCalendar) -> datetime:
    """Step minute by minute until ``minutes`` working minutes have passed: the deadline is
    the end of the last one."""
    moment = start
    while minutes:
        if in_working_time(moment, cal):
            minutes -= 1
        moment += timedelta(minutes=1)
    return moment


@settings(max_examples=150, deadline=None)
@given(
    day=st.dates(date(2025, 9, 20), date(2025, 10, 20)),
    minute=st.integers(0, 24 * 60 - 1),
    minutes=st.integers(1, 60 * 30),
)
def test_matches_a_minute_by_minute_walk(day: date, minute: int, minutes: int) -> None:
    start = datetime.combine(day, time(), SHANGHAI) + timedelta(minutes=minute)
    assert CAL.add_working_hours(start, minutes / 60) == walk(start, minutes, CAL)


@pytest.mark.parametrize("bad", ["", "9-12", "12:00-09:00", "09:00-12:00,11:00-13:00", "x"])
def test_bad_periods_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_periods(bad)


def test_naive_start_is_refused() -> None:
    with pytest.raises(ValueError):
        CAL.add_working_hours(datetime(2025, 9, 22, 10), 1)
