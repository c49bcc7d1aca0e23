"""Batch ingest parts shared by sensor readings and patrol fixes: rows checked one by one
with the reason of each refusal, the staging COPY, partitions made on demand, and retention
that drops whole partitions older than an age.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gis.errors import BadRequest, ServiceUnavailable
from layers.db.engine import raw_connection

MAX_CLOCK_SKEW = timedelta(minutes=10)
"""How far in the future a row's time may be (clocks of senders drift)."""
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
AGE = re.compile(r"^\s*(\d{1,6})\s*(d|h)\s*$")
UNITS = {"d": "days", "h": "hours"}
R = TypeVar("R")


@dataclass(frozen=True)
class Rejection:
    """A row that was not stored: its position in the batch, a code and the reason."""

    index: int
    code: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """The client's view of the rejection."""
        return {"index": self.index, "code": self.code, "reason": self.reason}


def parse_timestamp(raw: Any) -> datetime:
    """A row's time: an ISO 8601 string with a UTC offset, or Unix seconds."""
    if isinstance(raw, str):
        ts = datetime.fromisoformat(raw)
        if ts.tzinfo is None:
            raise ValueError(f"{raw!r} has no UTC offset")
        return ts
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return datetime.fromtimestamp(raw, UTC)
    raise ValueError("ts must be an ISO 8601 string or Unix seconds")


def checked_time(raw: Any, now: datetime) -> datetime | str:
    """A row's time, from 2000 to ``MAX_CLOCK_SKEW`` after ``now``, or why it is refused as
    ``"code: reason"``."""
    try:
        ts = parse_timestamp(raw)
    except (ValueError, TypeError, OverflowError, OSError) as exc:
        return f"invalid_timestamp: {exc}"
    if not EARLIEST <= ts <= now + MAX_CLOCK_SKEW:
        return f"invalid_timestamp: {ts.isoformat()} is before 2000 or in the future"
    return ts


def checked_number(value: Any, name: str, low: float, high: float) -> float | str:
    """``value`` as a finite float within ``[low, high]``, or why it is refused as
    ``"code: reason"``."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return f"malformed: {name} must be a number"
    try:
        number = float(value)
    except OverflowError:
        return f"non_finite_value: {name} does not fit a double"
    if not math.isfinite(number):
        return f"non_finite_value: {name} is {number}"
    if not low <= number <= high:
        return f"out_of_range: {name} {number} is outside [{low}, {high}]"
    return number


def check_rows(
    rows: Sequence[Any], check: Callable[[Any], R | str]
) -> tuple[list[R], list[Rejection]]:
    """The rows ``check`` accepts and the rejections (with their batch positions) of those
    it refuses with ``"code: reason"``."""
    good: list[R] = []
    bad: list[Rejection] = []
    for index, row in enumerate(rows):
        checked = check(row)
        if isinstance(checked, str):
            code, _, reason = checked.partition(": ")
            bad.append(Rejection(index, code, reason))
        else:
            good.append(checked)
    return good, bad


async def copy_to_stage(
    conn: AsyncConnection, stage: str, table: str, records: list[tuple], columns: Sequence[str]
) -> None:
    """Create the temporary staging ``table`` (statement ``stage``) in the open transaction
    of ``conn`` and copy ``records`` into it; 503 if the database refuses them."""
    # A SQLAlchemy statement comes first: it opens the transaction the raw COPY joins.
    await conn.execute(text(stage))
    try:
        async with raw_connection(conn) as pg:
            await pg.copy_records_to_table(table, records=records, columns=list(columns))
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise ServiceUnavailable(f"the database did not take the batch: {exc}") from exc


async def make_partitions(conn: AsyncConnection, table: str, missing: Sequence[Any]) -> None:
    """Make ``table``'s partitions for the ``missing`` keys with ``{table}_ensure_partition``,
    under a lock so that concurrent batches never make one twice."""
    if not missing:
        return
    lock = {"lock": f"cityhex.{table}"}
    await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:lock))"), lock)
    for key in missing:
        await conn.execute(text(f"SELECT {table}_ensure_partition(:k)"), {"k": key})


def parse_age(value: str) -> timedelta:
    """An age such as ``365d`` or ``12h``; 400 for anything else."""
    m = AGE.match(value)
    if m is None:
        raise BadRequest(
            f"an age must be a whole number of days or hours, like 365d or 12h: {value!r}",
            code="invalid_age",
        )
    return timedelta(**{UNITS[m[2]]: int(m[1])})


async def drop_partitions(
    conn: AsyncConnection, table: str, cutoff: datetime, dry_run: bool
) -> list[str]:
    """Drop every partition of ``table`` (listed by ``{table}_partitions()``) whose rows are
    all older than ``cutoff``; their names (those that would go, with ``dry_run``)."""
    names = (
        await conn.scalars(
            text(f"SELECT name FROM {table}_partitions() WHERE upper <= :cutoff ORDER BY lower"),
            {"cutoff": cutoff},
        )
    ).all()
    if not dry_run:
        for name in names:
            await conn.execute(text(f'DROP TABLE "{name}"'))
    return list(names)
