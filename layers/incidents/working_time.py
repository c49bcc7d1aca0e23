"""Working-hour deadlines on a working-day calendar.

A handling time limit of N working hours runs only inside the working periods of working
days: Monday to Friday by default, minus the holidays and plus the make-up working days
(调休) stored in the ``work_calendar`` table. The daily working periods and the time zone
come from the environment: ``CITYHEX_WORKING_HOURS`` (default ``09:00-12:00,13:00-18:00``)
and ``CITYHEX_TIMEZONE`` (default ``Asia/Shanghai``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gis.errors import NotFound

Period = tuple[time, time]


def parse_periods(value: str) -> tuple[Period, ...]:
    """Working periods written as ``HH:MM-HH:MM`` separated by commas, in order of the day."""
    periods: list[Period] = []
    for part in filter(None, (p.strip() for p in value.split(","))):
        try:
            start, end = (time.fromisoformat(t.strip()) for t in part.split("-"))
        except ValueError:
            raise ValueError(f"{part!r} is not a period HH:MM-HH:MM") from None
        if start >= end or (periods and start < periods[-1][1]):
            raise ValueError(f"{part!r} must end after it starts and after the period before it")
        periods.append((start, end))
    if not periods:
        raise ValueError("at least one working period is needed")
    return tuple(periods)


class WorkingTimeSettings(BaseSettings):
    """The working day: its periods and the time zone the calendar is kept in."""

    model_config = SettingsConfigDict(env_prefix="CITYHEX_", extra="ignore")

    working_hours: str = "09:00-12:00,13:00-18:00"
    timezone: str = "Asia/Shanghai"

    @field_validator("working_hours")
    @classmethod
    def _periods(cls, value: str) -> str:
        parse_periods(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


@lru_cache
def working_time_settings() -> WorkingTimeSettings:
    """The process-wide working-time settings."""
    return WorkingTimeSettings()


@dataclass(frozen=True)
class WorkCalendar:
    """Working periods of the day, a time zone, and the days that break the weekly rule.

    ``overrides`` maps a date to True (a make-up working day) or False (a holiday).
    """

    periods: tuple[Period, ...]
    tz: ZoneInfo
    overrides: Mapping[date, bool] = field(default_factory=dict)

    def is_working_day(self, day: date) -> bool:
        """Whether ``day`` is a working day: Monday to Friday unless overridden."""
        return self.overrides.get(day, day.weekday() < 5)

    def add_working_hours(self, start: datetime, hours: float) -> datetime:
        """The moment (UTC) at which ``hours`` working hours have run since ``start``.

        A clock started outside working time starts at the next working period; a limit
        used up exactly at the end of a period ends there.
        """
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        remaining = timedelta(seconds=round(float(hours) * 3600))
        local = start.astimezone(self.tz)
        day = local.date()
        while True:
            if self.is_working_day(day):
                for begin, end in self.periods:
                    lo = max(datetime.combine(day, begin, self.tz), local)
                    hi = datetime.combine(day, end, self.tz)
                    if lo >= hi:
                        continue
                    if hi - lo >= remaining:
                        return (lo + remaining).astimezone(UTC)
                    remaining -= hi - lo
            day += timedelta(days=1)


def default_calendar(overrides: Mapping[date, bool] | None = None) -> WorkCalendar:
    """The configured working day with the given overrides."""
    settings = working_time_settings()
    return WorkCalendar(
        parse_periods(settings.working_hours), ZoneInfo(settings.timezone), overrides or {}
    )


OVERRIDES_SINCE = (
    "SELECT coalesce(json_object_agg(day, working), '{}') FROM work_calendar WHERE day >= :since"
)
"""SQL for the stored overrides from ``:since`` on, as one JSON object (date → working)."""


def overrides_from_json(data: Mapping[str, bool]) -> dict[date, bool]:
    """The overrides selected with ``OVERRIDES_SINCE``."""
    return {date.fromisoformat(day): working for day, working in data.items()}


def local_day(moment: datetime) -> date:
    """The calendar day of ``moment`` in the configured time zone."""
    return moment.astimezone(ZoneInfo(working_time_settings().timezone)).date()


async def load_calendar(conn: AsyncConnection, since: date) -> WorkCalendar:
    """The configured calendar with every stored override from ``since`` on."""
    data = (await conn.execute(text(OVERRIDES_SINCE), {"since": since})).scalar_one()
    return default_calendar(overrides_from_json(data))


async def deadline_after(conn: AsyncConnection, start: datetime, hours: float) -> datetime:
    """The deadline ``hours`` working hours after ``start`` on the stored calendar."""
    calendar = await load_calendar(conn, local_day(start))
    return calendar.add_working_hours(start, hours)


@dataclass(frozen=True)
class CalendarDay:
    """A day that breaks the weekly rule: a holiday, or a make-up working day."""

    day: date
    working: bool
    name: str | None

    def as_dict(self) -> dict[str, object]:
        """The day as JSON-ready data."""
        return {"day": self.day.isoformat(), "working": self.working, "name": self.name}


async def list_calendar_days(
    conn: AsyncConnection, start: date | None = None, end: date | None = None
) -> list[CalendarDay]:
    """The stored overrides between ``start`` and ``end`` (inclusive), in date order."""
    rows = await conn.execute(
        text(
            "SELECT day, working, name FROM work_calendar "
            "WHERE (CAST(:start AS date) IS NULL OR day >= :start) "
            "AND (CAST(:end AS date) IS NULL OR day <= :end) ORDER BY day"
        ),
        {"start": start, "end": end},
    )
    return [CalendarDay(*row) for row in rows]


async def set_calendar_day(
    conn: AsyncConnection, day: date, working: bool, name: str | None
) -> CalendarDay:
    """Store ``day`` as a holiday (working False) or make-up working day (True).

    Deadlines already set are kept; the change applies to deadlines computed afterwards.
    """
    await conn.execute(
        text(
            "INSERT INTO work_calendar (day, working, name) VALUES (:day, :working, :name) "
            "ON CONFLICT (day) DO UPDATE SET working = EXCLUDED.working, name = EXCLUDED.name"
        ),
        {"day": day, "working": working, "name": name},
    )
    return CalendarDay(day, working, name)


async def delete_calendar_day(conn: AsyncConnection, day: date) -> None:
    """Drop the override of ``day`` (it follows the weekly rule again)."""
    result = await conn.execute(text("DELETE FROM work_calendar WHERE day = :day"), {"day": day})
    if result.rowcount == 0:
        raise NotFound(f"{day.isoformat()} has no calendar entry", code="no_calendar_day")
