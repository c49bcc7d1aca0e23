"""Alarm levels of sensor properties, with hysteresis, and the incidents alarms open.

Each measured property of a sensor is at a level: normal, warning or alarm. A value at or
above a level's threshold enters it; the level is left only when the value falls below
the threshold minus the hysteresis, so a value wavering around a threshold does not
flap. Every level change is recorded in ``sensor_alarms`` with the reading that caused it.

Entering the alarm level is a crossing: it opens exactly one incident (category from the
sensor kind, routed like any report, linked to the sensor and its asset). While that
incident is still open, a new crossing of the same property is recorded against it
instead of opening another, so a sensor that keeps crossing does not flood the
departments with cases. Falling back below alarm - hysteresis records the recovery.

Readings are taken in time order; a reading not newer than the property's latest one
(late or repeated) is stored but moves neither the latest value nor the level.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gis.errors import CityHexError
from layers.catalog.changes import publish_change
from layers.incidents import workflow as case_workflow
from layers.incidents.cases import Actor, ReportInput, report_incident
from layers.sensors.registry import ALARM_CATEGORIES, LAYER, get_sensor

RANK = {"normal": 0, "warning": 1, "alarm": 2}
Point = tuple[datetime, float]


@dataclass(frozen=True)
class Levels:
    """A property's thresholds: warning and alarm levels (either may be absent), hysteresis."""

    warning: float | None
    alarm: float | None
    hysteresis: float = 0.0

    @classmethod
    def of(cls, spec: dict[str, Any] | None) -> Levels | None:
        """The levels of a stored threshold (None when the property has none)."""
        if not spec:
            return None
        return cls(spec.get("warning"), spec.get("alarm"), float(spec.get("hysteresis") or 0.0))


def entered_level(value: float, levels: Levels) -> str:
    """The highest level whose threshold ``value`` reaches."""
    if levels.alarm is not None and value >= levels.alarm:
        return "alarm"
    if levels.warning is not None and value >= levels.warning:
        return "warning"
    return "normal"


def next_level(current: str, value: float, levels: Levels | None) -> str:
    """The level after ``value`` when the property was at ``current``."""
    if levels is None:
        return "normal"
    entered = entered_level(value, levels)
    if RANK[entered] >= RANK[current]:
        return entered
    held = levels.hysteresis
    if current == "alarm" and levels.alarm is not None and value >= levels.alarm - held:
        return "alarm"
    if levels.warning is not None and value >= levels.warning - held:
        return "warning"
    return entered


@dataclass(frozen=True)
class Change:
    """A property moving from one level to another on a reading."""

    property: str
    from_level: str
    to_level: str
    ts: datetime
    value: float


def walk(
    prop: str, level: str, points: list[Point], levels: Levels | None
) -> tuple[str, list[Change]]:
    """The final level and the level changes along ``points`` (in time order)."""
    changes = []
    for ts, value in points:
        new = next_level(level, value, levels)
        if new != level:
            changes.append(Change(prop, level, new, ts, value))
            level = new
    return level, changes


@dataclass
class AlarmOutcome:
    """What a batch did to alarms: level changes recorded, incidents opened."""

    transitions: int = 0
    incidents: list[int] = field(default_factory=list)


@dataclass
class SensorState:
    """A locked sensor row: what the alarm logic reads and rewrites."""

    id: int
    code: str
    kind: str
    asset_code: str | None
    lon: float
    lat: float
    measures: dict[str, Any]
    thresholds: dict[str, Any]
    latest: dict[str, Any]
    changes: list[Change] = field(default_factory=list)

    @property
    def alarm_state(self) -> str:
        """The sensor's level: the highest level of its properties."""
        levels = [v.get("level", "normal") for v in self.latest.values()]
        return max(levels, key=RANK.__getitem__, default="normal")


def group_series(
    rows: Iterable[tuple[int, str, datetime, float]],
) -> dict[tuple[int, str], list[Point]]:
    """The rows per (sensor, property) in time order; the first value of a repeated time wins."""
    series: dict[tuple[int, str], dict[datetime, float]] = {}
    for sensor_id, prop, ts, value in rows:
        series.setdefault((sensor_id, prop), {}).setdefault(ts, value)
    return {key: sorted(points.items()) for key, points in series.items()}


async def lock_sensors(conn: AsyncConnection, ids: list[int]) -> dict[int, SensorState]:
    """The sensors ``ids``, locked (in id order, so concurrent batches cannot deadlock)."""
    rows = await conn.execute(
        text(
            "SELECT id, code, kind, asset_code, ST_X(geom) AS lon, ST_Y(geom) AS lat, "
            "measures::text AS measures, thresholds::text AS thresholds, latest::text AS latest "
            "FROM sensors WHERE id = ANY(:ids) ORDER BY id FOR NO KEY UPDATE"
        ),
        {"ids": ids},
    )
    return {
        r.id: SensorState(
            r.id,
            r.code,
            r.kind,
            r.asset_code,
            r.lon,
            r.lat,
            orjson.loads(r.measures),
            orjson.loads(r.thresholds),
            orjson.loads(r.latest),
        )
        for r in rows
    }


def advance(state: SensorState, prop: str, points: list[Point]) -> bool:
    """Move the sensor's latest value and level of ``prop`` along the readings newer than the
    latest one; whether anything changed."""
    prev = state.latest.get(prop) or {}
    if prev.get("ts"):
        since = datetime.fromisoformat(prev["ts"])
        points = [p for p in points if p[0] > since]
    if not points:
        return False
    levels = Levels.of(state.thresholds.get(prop))
    level, changes = walk(prop, prev.get("level", "normal"), points, levels)
    ts, value = points[-1]
    state.latest[prop] = {"value": value, "ts": ts.isoformat(), "level": level}
    state.changes.extend(changes)
    return True


async def save_latest(conn: AsyncConnection, states: list[SensorState]) -> None:
    """Write the sensors' latest values and alarm states."""
    await conn.execute(
        text(
            "UPDATE sensors s SET latest = CAST(u.latest AS jsonb), alarm_state = u.state "
            "FROM unnest(CAST(:ids AS integer[]), CAST(:latest AS text[]), "
            "CAST(:states AS text[])) AS u(id, latest, state) WHERE s.id = u.id"
        ),
        {
            "ids": [s.id for s in states],
            "latest": [orjson.dumps(s.latest).decode() for s in states],
            "states": [s.alarm_state for s in states],
        },
    )


async def last_alarm_incident(
    conn: AsyncConnection, sensor_id: int, prop: str
) -> tuple[int | None, bool]:
    """The incident of the property's latest crossing into alarm, and whether it is open."""
    row = (
        await conn.execute(
            text(
                "SELECT a.incident_id, i.status FROM sensor_alarms a "
                "JOIN incidents i ON i.id = a.incident_id "
                "WHERE a.sensor_id = :s AND a.property = :p AND a.to_level = 'alarm' "
                "ORDER BY a.ts DESC LIMIT 1"
            ),
            {"s": sensor_id, "p": prop},
        )
    ).first()
    if row is None:
        return None, False
    return row.incident_id, row.status in case_workflow.OPEN


def alarm_report(state: SensorState, change: Change) -> ReportInput:
    """The incident report of a crossing into alarm."""
    unit = state.measures.get(change.property, {}).get("unit", "")
    level = state.thresholds[change.property]["alarm"]
    return ReportInput(
        category=ALARM_CATEGORIES[state.kind],
        description=(
            f"{state.kind} sensor {state.code}: {change.property} {change.value:g} {unit} "
            f"reached the alarm level {level:g} at {change.ts.isoformat()}"
        ),
        lon=state.lon,
        lat=state.lat,
        asset_code=state.asset_code,
        sensor_id=state.id,
    )


async def open_alarm_incident(
    conn: AsyncConnection, state: SensorState, change: Change
) -> tuple[int | None, str | None]:
    """Report the crossing as an incident: its id, or None and why it could not be opened
    (say, the sensor stands outside the city grid); a refusal leaves the batch intact."""
    if state.kind not in ALARM_CATEGORIES:
        return None, f"no incident: kind {state.kind!r} has no incident category"
    actor = Actor(role="app", name=f"sensor:{state.code}")
    try:
        async with conn.begin_nested():
            incident = await report_incident(conn, alarm_report(state, change), actor, at=change.ts)
    except CityHexError as exc:
        return None, f"no incident: {exc.message}"
    return incident.id, None


async def record_change(
    conn: AsyncConnection, state: SensorState, change: Change, outcome: AlarmOutcome
) -> None:
    """Record one level change; a crossing into alarm opens an incident (or joins the
    property's open one), a recovery is linked to the incident of its alarm."""
    alarm_id = await conn.scalar(
        text(
            "INSERT INTO sensor_alarms (sensor_id, property, from_level, to_level, value, ts) "
            "VALUES (:s, :p, :f, :t, :v, :ts) "
            "ON CONFLICT (sensor_id, property, ts) DO NOTHING RETURNING id"
        ),
        {
            "s": state.id,
            "p": change.property,
            "f": change.from_level,
            "t": change.to_level,
            "v": change.value,
            "ts": change.ts,
        },
    )
    if alarm_id is None:
        return
    outcome.transitions += 1
    if change.to_level != "alarm" and change.from_level != "alarm":
        return
    incident_id, still_open = await last_alarm_incident(conn, state.id, change.property)
    note = None
    if change.to_level == "alarm" and not still_open:
        incident_id, note = await open_alarm_incident(conn, state, change)
        if incident_id is not None:
            outcome.incidents.append(incident_id)
    await conn.execute(
        text("UPDATE sensor_alarms SET incident_id = :i, note = :n WHERE id = :a"),
        {"i": incident_id, "n": note, "a": alarm_id},
    )


async def apply_readings(
    conn: AsyncConnection, rows: Iterable[tuple[int, str, datetime, float]]
) -> AlarmOutcome:
    """Advance the latest values and alarm levels of the sensors in ``rows`` (sensor id,
    property, ts, value), record level changes and open incidents, in ``conn``'s
    transaction; the sensors layer is announced as changed where values moved."""
    series = group_series(rows)
    states = await lock_sensors(conn, sorted({sensor_id for sensor_id, _ in series}))
    moved = {}
    for (sensor_id, prop), points in series.items():
        state = states.get(sensor_id)
        if state is not None and advance(state, prop, points):
            moved[sensor_id] = state
    outcome = AlarmOutcome()
    if not moved:
        return outcome
    await save_latest(conn, list(moved.values()))
    for state in moved.values():
        for change in sorted(state.changes, key=lambda c: c.ts):
            await record_change(conn, state, change, outcome)
    await publish_change(conn, LAYER, [(s.lon, s.lat, s.lon, s.lat) for s in moved.values()])
    return outcome


async def alarm_history(
    conn: AsyncConnection, sensor_ref: int | str, limit: int = 100
) -> dict[str, Any]:
    """The sensor's level changes, newest first, with the incident each belongs to."""
    sensor = await get_sensor(conn, sensor_ref)
    rows = await conn.execute(
        text(
            "SELECT id, property, from_level, to_level, value, ts, at, incident_id, note "
            "FROM sensor_alarms WHERE sensor_id = :s ORDER BY ts DESC, id DESC LIMIT :limit"
        ),
        {"s": sensor["id"], "limit": limit},
    )
    return {
        "sensor_id": sensor["id"],
        "sensor": sensor["code"],
        "alarm_state": sensor["alarm_state"],
        "changes": [
            {
                "id": r.id,
                "property": r.property,
                "from": r.from_level,
                "to": r.to_level,
                "value": r.value,
                "ts": r.ts.isoformat(),
                "recorded_at": r.at.isoformat(),
                "incident_id": r.incident_id,
                "note": r.note,
            }
            for r in rows
        ],
    }
