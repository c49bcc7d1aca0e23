"""Sensor readings: validated, idempotent batch ingest; series in time buckets; retention.

A batch is checked row by row (a bad row is reported with its reason, the good rows are
stored). The good rows are copied (binary COPY) into a per-connection staging table and
moved with ``INSERT … ON CONFLICT DO NOTHING``, so a reading sent twice is stored once;
the insert, the sensors' latest values and the alarms they raise are one transaction, so a
database failure writes nothing of the batch. Readings live in monthly partitions, which
retention drops whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gis.errors import BadRequest, PayloadTooLarge
from gis.jsontext import parse_json
from gis.timezones import time_zone
from layers.db.batches import (
    Rejection,
    check_rows,
    checked_number,
    checked_time,
    copy_to_stage,
    drop_partitions,
    make_partitions,
)
from layers.sensors.alarms import AlarmOutcome, apply_readings
from layers.sensors.registry import SensorRanges, get_sensor, sensor_ranges

MAX_BATCH = 50_000
BUCKETS = {"5m": timedelta(minutes=5), "1h": timedelta(hours=1), "1d": timedelta(days=1)}
BUCKET_ORIGIN = datetime(2000, 1, 1)
"""Local midnight of a Saturday: buckets are counted from it on the wall clock."""
MAX_BUCKETS = 100_000
MAX_RAW_READINGS = 100_000
COLUMNS = ("sensor_id", "property", "ts", "value")
Row = tuple[int, str, datetime, float]

STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS readings_stage (sensor_id integer, property varchar(32), "
    "ts timestamptz, value double precision) ON COMMIT DELETE ROWS"
)
# Key order: concurrent batches with overlapping new readings wait for each other in the
# same order, so they can never deadlock.
MOVE = (
    "INSERT INTO readings (sensor_id, property, ts, value) "
    "SELECT sensor_id, property, ts, value FROM readings_stage "
    "ORDER BY sensor_id, property, ts ON CONFLICT DO NOTHING"
)


@dataclass
class IngestReport:
    """What became of a batch: stored, already there, refused (with reasons), alarms."""

    received: int
    accepted: int = 0
    duplicate: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    alarms: AlarmOutcome = field(default_factory=AlarmOutcome)

    def to_dict(self) -> dict[str, Any]:
        """The answer to the client."""
        return {
            "received": self.received,
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "rejected": len(self.rejected),
            "rejections": [r.to_dict() for r in self.rejected],
            "alarm_transitions": self.alarms.transitions,
            "incidents_opened": self.alarms.incidents,
        }


def parse_batch(body: bytes) -> list[Any]:
    """The rows of a JSON batch: an array, or an object with a ``readings`` array.

    Non-finite numbers (NaN, Infinity, 1e999) are let through so that their rows can be
    refused one by one.
    """
    data = parse_json(body, allow_non_finite=True)
    if isinstance(data, dict) and "readings" in data:
        data = data["readings"]
    if not isinstance(data, list):
        raise BadRequest(
            "the body must be a JSON array of readings or an object with a 'readings' array",
            code="invalid_batch",
        )
    if len(data) > MAX_BATCH:
        raise PayloadTooLarge(f"{len(data)} readings in one batch; at most {MAX_BATCH}")
    return data


def check_row(row: Any, sensors: dict[str, SensorRanges], now: datetime) -> Row | str:
    """The row as ``(sensor_id, property, ts, value)``, or why it is refused as
    ``"code: reason"``."""
    if not isinstance(row, dict):
        return "malformed: a reading must be an object {sensor, property, ts, value}"
    code = row.get("sensor")
    if isinstance(code, str) and not is_code_text(code):
        return "malformed: a sensor code cannot hold a NUL character"
    sensor = sensors.get(code) if isinstance(code, str) else None
    if sensor is None:
        return f"unknown_sensor: no sensor with code {code!r}"
    prop = row.get("property")
    bounds = sensor.ranges.get(prop) if isinstance(prop, str) else None
    if bounds is None:
        return f"unknown_property: the sensor does not measure {prop!r}"
    ts = checked_time(row.get("ts"), now)
    if isinstance(ts, str):
        return ts
    number = checked_number(row.get("value"), "value", *bounds)
    if isinstance(number, str):
        return number
    return (sensor.id, prop, ts, number)


def validate_rows(
    rows: Sequence[Any], sensors: dict[str, SensorRanges], now: datetime
) -> tuple[list[Row], list[Rejection]]:
    """The valid rows and the rejections (with their batch positions)."""
    return check_rows(rows, lambda row: check_row(row, sensors, now))


def is_code_text(value: Any) -> bool:
    """Whether a reading's ``sensor`` is text the database can compare (a string without
    NUL characters)."""
    return isinstance(value, str) and "\x00" not in value


def _codes(rows: Sequence[Any]) -> list[str]:
    codes = (r.get("sensor") for r in rows if isinstance(r, dict))
    return list({c for c in codes if is_code_text(c)})


async def ensure_partitions(conn: AsyncConnection, times: list[datetime]) -> None:
    """Make the monthly partitions that readings at ``times`` need and that do not exist."""
    # Months are cut in the session's time zone, as readings_ensure_partition cuts them.
    missing = (
        await conn.scalars(
            text(
                "SELECT DISTINCT date_trunc('month', t)::date AS m "
                "FROM unnest(CAST(:times AS timestamptz[])) AS t "
                "WHERE to_regclass('readings_' || to_char(t, 'YYYY_MM')) IS NULL"
            ),
            {"times": times},
        )
    ).all()
    await make_partitions(conn, "readings", missing)


async def insert_readings(conn: AsyncConnection, rows: list[Row]) -> int:
    """Store ``rows`` in the open transaction of ``conn``; how many were new."""
    await copy_to_stage(conn, STAGE, "readings_stage", rows, COLUMNS)
    return (await conn.execute(text(MOVE))).rowcount


async def ingest(
    engine: AsyncEngine, rows: Sequence[Any], now: datetime | None = None
) -> IngestReport:
    """Validate and store a batch of ``{sensor, property, ts, value}`` rows; update the
    sensors' latest values and alarms; all of it or nothing."""
    if len(rows) > MAX_BATCH:
        raise PayloadTooLarge(f"{len(rows)} readings in one batch; at most {MAX_BATCH}")
    report = IngestReport(received=len(rows))
    async with engine.connect() as conn:
        sensors = await sensor_ranges(conn, _codes(rows))
        good, report.rejected = validate_rows(rows, sensors, now or datetime.now(UTC))
        if not good:
            return report
        await ensure_partitions(conn, [r[2] for r in good])
        await conn.commit()
        report.accepted = await insert_readings(conn, good)
        report.alarms = await apply_readings(conn, good)
        await conn.commit()
    report.duplicate = len(good) - report.accepted
    return report


def parse_time(raw: str, name: str) -> datetime:
    """A query's time parameter (ISO 8601; UTC when it has no offset)."""
    try:
        ts = datetime.fromisoformat(raw)
    except ValueError:
        raise BadRequest(f"{name}: {raw!r} is not an ISO 8601 time", code="invalid_time") from None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def _property(sensor: dict[str, Any], prop: str | None) -> str:
    measures = sensor["measures"]
    if prop is None:
        if len(measures) == 1:
            return next(iter(measures))
        raise BadRequest(
            f"property is required: one of {', '.join(sorted(measures))}", code="missing_property"
        )
    if prop not in measures:
        raise BadRequest(
            f"sensor {sensor['code']!r} does not measure {prop!r}; it measures "
            f"{', '.join(sorted(measures))}",
            code="unknown_property",
        )
    return prop


async def series(
    conn: AsyncConnection,
    sensor_ref: int | str,
    prop: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    bucket: str | None = None,
    tz: str = "UTC",
) -> dict[str, Any]:
    """A sensor's readings of one property in [start, end): raw, or per bucket (5m, 1h, 1d)
    with min, avg, max and count. Buckets follow the wall clock of time zone ``tz`` (a day
    is a local day) and start in that zone. Default window: the last day."""
    zone = time_zone(tz)
    sensor = await get_sensor(conn, sensor_ref)
    prop = _property(sensor, prop)
    end = end or datetime.now(UTC)
    start = start or end - timedelta(days=1)
    if start >= end:
        raise BadRequest("from must be before to", code="invalid_time")
    head = {
        "sensor_id": sensor["id"],
        "sensor": sensor["code"],
        "property": prop,
        "unit": sensor["measures"][prop].get("unit"),
        "from": start.isoformat(),
        "to": end.isoformat(),
        "bucket": bucket,
        "tz": zone.key,
    }
    params = {"s": sensor["id"], "p": prop, "start": start, "end": end}
    if bucket is None:
        return head | await _raw_series(conn, params)
    return head | {"buckets": await _bucket_series(conn, params, bucket, zone)}


async def _raw_series(conn: AsyncConnection, params: dict[str, Any]) -> dict[str, Any]:
    rows = await conn.execute(
        text(
            "SELECT ts, value FROM readings WHERE sensor_id = :s AND property = :p "
            "AND ts >= :start AND ts < :end ORDER BY ts LIMIT :limit"
        ),
        params | {"limit": MAX_RAW_READINGS + 1},
    )
    readings = [{"ts": r.ts.isoformat(), "value": r.value} for r in rows]
    return {"readings": readings[:MAX_RAW_READINGS], "truncated": len(readings) > MAX_RAW_READINGS}


async def _bucket_series(
    conn: AsyncConnection, params: dict[str, Any], bucket: str, zone: ZoneInfo
) -> list[dict[str, Any]]:
    step = BUCKETS.get(bucket)
    if step is None:
        raise BadRequest(
            f"bucket must be one of {', '.join(BUCKETS)}, not {bucket!r}", code="invalid_bucket"
        )
    if (params["end"] - params["start"]) / step > MAX_BUCKETS:
        raise BadRequest(
            f"more than {MAX_BUCKETS} buckets: narrow the window or use a larger bucket",
            code="too_many_buckets",
        )
    local = "date_bin(:step, ts AT TIME ZONE :tz, :origin)"
    rows = await conn.execute(
        text(
            f"SELECT {local} AT TIME ZONE :tz, min(value), avg(value), max(value), count(*) "
            "FROM readings "
            "WHERE sensor_id = :s AND property = :p AND ts >= :start AND ts < :end "
            f"GROUP BY {local} ORDER BY 1"
        ),
        params | {"step": step, "origin": BUCKET_ORIGIN, "tz": zone.key},
    )
    return [
        {"start": t.astimezone(zone).isoformat(), "min": lo, "avg": avg, "max": hi, "count": n}
        for t, lo, avg, hi, n in rows
    ]


async def prune_readings(
    conn: AsyncConnection, older_than: timedelta, now: datetime | None = None, dry_run: bool = False
) -> list[str]:
    """Drop every monthly partition whose readings are all older than ``older_than``; the
    names of the partitions dropped (or that would be, with ``dry_run``)."""
    return await drop_partitions(conn, "readings", (now or datetime.now(UTC)) - older_than, dry_run)
