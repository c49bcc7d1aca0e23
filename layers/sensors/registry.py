"""The sensor registry: what each sensor measures, where it stands, its alarm thresholds.

A sensor has a unique code, a kind (air_quality, noise, water_level, manhole_cover,
traffic_counter, …), the properties it measures with their unit and physical range, an
optional linked asset, and per property a warning and/or alarm level with a hysteresis.
Every write announces a change of the ``sensors`` layer so tile caches drop its tiles.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gis.errors import Conflict, NotFound, Unprocessable
from gis.hexgrid import DEFAULT_RES, level_columns, point_cells, to_hex
from layers.catalog.changes import publish_change

LAYER = "sensors"
LEVELS = ("normal", "warning", "alarm")
# The incident category an alarm of each kind opens (see migration 0002).
ALARM_CATEGORIES = {
    "air_quality": "0606",
    "noise": "0607",
    "water_level": "0608",
    "manhole_cover": "0602",
}

PropertyName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
SensorCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]
Kind = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
AssetCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{16}$")]
SENSOR_ID = re.compile(r"[0-9]+")
"""A sensor id as a path names it: ASCII digits only (``str.isdigit`` also takes '³')."""
INT_MAX = 2**31 - 1


def _finite(value: float | None, name: str) -> None:
    if value is not None and not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number")


class Measure(BaseModel):
    """One measured property: its unit and the physical range a valid reading lies in."""

    model_config = ConfigDict(extra="forbid")
    unit: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    min: float
    max: float

    @model_validator(mode="after")
    def _range(self) -> Measure:
        _finite(self.min, "min")
        _finite(self.max, "max")
        if self.min >= self.max:
            raise ValueError(f"min ({self.min}) must be below max ({self.max})")
        return self


class Threshold(BaseModel):
    """Warning and alarm levels of a property (a value at or above a level reaches it), and
    the hysteresis: a level is left only when the value falls below level - hysteresis."""

    model_config = ConfigDict(extra="forbid")
    warning: float | None = None
    alarm: float | None = None
    hysteresis: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _levels(self) -> Threshold:
        for name in ("warning", "alarm", "hysteresis"):
            _finite(getattr(self, name), name)
        if self.warning is None and self.alarm is None:
            raise ValueError("a threshold needs a warning level, an alarm level or both")
        if self.warning is not None and self.alarm is not None and self.warning >= self.alarm:
            raise ValueError(f"warning ({self.warning}) must be below alarm ({self.alarm})")
        return self


class SensorIn(BaseModel):
    """A sensor as it is registered."""

    model_config = ConfigDict(extra="forbid")
    code: SensorCode
    kind: Kind
    name: str | None = None
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    asset_code: AssetCode | None = None
    measures: dict[PropertyName, Measure] = Field(min_length=1)
    thresholds: dict[PropertyName, Threshold] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _thresholds_fit(self) -> SensorIn:
        for prop, threshold in self.thresholds.items():
            measure = self.measures.get(prop)
            if measure is None:
                raise ValueError(f"threshold for {prop!r}, which the sensor does not measure")
            for level in (threshold.warning, threshold.alarm):
                if level is not None and not measure.min <= level <= measure.max:
                    raise ValueError(
                        f"{prop}: level {level} lies outside the range "
                        f"[{measure.min}, {measure.max}]"
                    )
            if threshold.alarm is not None and self.kind not in ALARM_CATEGORIES:
                kinds = ", ".join(sorted(ALARM_CATEGORIES))
                raise ValueError(
                    f"kind {self.kind!r} has no incident category, so it cannot have an "
                    f"alarm level (kinds with one: {kinds})"
                )
        return self


class SensorPatch(BaseModel):
    """A partial update: the fields given replace the stored ones (measures and thresholds
    as a whole)."""

    model_config = ConfigDict(extra="forbid")
    kind: Kind | None = None
    name: str | None = None
    lon: float | None = None
    lat: float | None = None
    asset_code: AssetCode | None = None
    measures: dict[PropertyName, Measure] | None = None
    thresholds: dict[PropertyName, Threshold] | None = None


@dataclass(frozen=True)
class SensorRanges:
    """What ingest needs to check a reading: the sensor's id and each property's range."""

    id: int
    ranges: dict[str, tuple[float, float]]


SELECT_SENSOR = (
    "SELECT id, code, kind, name, ST_X(geom) AS lon, ST_Y(geom) AS lat, h3, asset_code, "
    "measures::text AS measures, thresholds::text AS thresholds, latest::text AS latest, "
    "alarm_state FROM sensors"
)


def validate_sensor(data: dict[str, Any]) -> SensorIn:
    """``data`` as a registered sensor; Unprocessable listing every problem otherwise."""
    try:
        return SensorIn.model_validate(data)
    except ValidationError as exc:
        problems = [
            {"loc": ".".join(map(str, e["loc"])) or "sensor", "msg": e["msg"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        message = "; ".join(f"{p['loc']}: {p['msg']}" for p in problems)
        raise Unprocessable(message, code="invalid_sensor", details=problems) from None


def sensor_dict(row: Any) -> dict[str, Any]:
    """The client's view of a sensors row (cell as a hex string, jsonb decoded)."""
    return {
        "id": row.id,
        "code": row.code,
        "kind": row.kind,
        "name": row.name,
        "lon": row.lon,
        "lat": row.lat,
        "cell": to_hex(row.h3) if row.h3 else None,
        "asset_code": row.asset_code,
        "measures": orjson.loads(row.measures),
        "thresholds": orjson.loads(row.thresholds),
        "latest": orjson.loads(row.latest),
        "alarm_state": row.alarm_state,
    }


CELLS = {DEFAULT_RES: "h3"} | level_columns()
"""The sensor's cell columns by resolution: the cell containing its point at each."""
CELL_NAMES = ", ".join(CELLS.values())
CELL_VALUES = ", ".join(f":{c}" for c in CELLS.values())
CELL_SETS = ", ".join(f"{c} = :{c}" for c in CELLS.values())


def _cells(lon: float, lat: float) -> dict[str, int]:
    """The sensor's cells, as parameters named by their columns."""
    return {CELLS[r]: c for r, c in point_cells(lon, lat, CELLS).items()}


def _bbox(lon: float, lat: float) -> tuple[float, float, float, float]:
    return (lon, lat, lon, lat)


async def _check_asset(conn: AsyncConnection, asset_code: str | None) -> None:
    if asset_code is None:
        return
    found = await conn.scalar(text("SELECT 1 FROM assets WHERE code = :c"), {"c": asset_code})
    if not found:
        raise Unprocessable(f"no asset with code {asset_code!r}", code="unknown_asset")


def _write_params(sensor: SensorIn) -> dict[str, Any]:
    return {
        "code": sensor.code,
        "kind": sensor.kind,
        "name": sensor.name,
        "asset": sensor.asset_code,
        "measures": orjson.dumps(sensor.model_dump()["measures"]).decode(),
        "thresholds": orjson.dumps(sensor.model_dump()["thresholds"]).decode(),
        "lon": sensor.lon,
        "lat": sensor.lat,
        **_cells(sensor.lon, sensor.lat),
    }


async def create_sensor(conn: AsyncConnection, data: dict[str, Any]) -> dict[str, Any]:
    """Register a sensor; Conflict when its code is taken."""
    sensor = validate_sensor(data)
    await _check_asset(conn, sensor.asset_code)
    new_id = await conn.scalar(
        text(
            f"INSERT INTO sensors (code, kind, name, asset_code, measures, thresholds, geom, "
            f"{CELL_NAMES}) VALUES (:code, :kind, :name, :asset, CAST(:measures AS jsonb), "
            "CAST(:thresholds AS jsonb), ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), "
            f"{CELL_VALUES}) "
            "ON CONFLICT (code) DO NOTHING RETURNING id"
        ),
        _write_params(sensor),
    )
    if new_id is None:
        raise Conflict(f"a sensor with code {sensor.code!r} exists", code="sensor_exists")
    await publish_change(conn, LAYER, [_bbox(sensor.lon, sensor.lat)])
    return await get_sensor(conn, new_id)


def sensor_key(ref: int | str) -> tuple[str, int | str] | None:
    """The column and value that find the sensor ``ref`` names: ``id`` for an int or a string
    of ASCII digits, else ``code``; None when no sensor can have it (an id past the integer
    column, a code holding a NUL)."""
    if isinstance(ref, str) and SENSOR_ID.fullmatch(ref):
        ref = int(ref)
    if isinstance(ref, int):
        return ("id", ref) if 1 <= ref <= INT_MAX else None
    return None if "\x00" in ref else ("code", ref)


async def get_sensor(conn: AsyncConnection, ref: int | str, lock: bool = False) -> dict[str, Any]:
    """The sensor with id ``ref`` (an int or a string of ASCII digits) or code ``ref``."""
    key = sensor_key(ref)
    row = None
    if key is not None:
        column, value = key
        sql = f"{SELECT_SENSOR} WHERE {column} = :ref" + (" FOR UPDATE" if lock else "")
        row = (await conn.execute(text(sql), {"ref": value})).first()
    if row is None:
        raise NotFound(f"no sensor {ref!r}", code="unknown_sensor")
    return sensor_dict(row)


async def list_sensors(
    conn: AsyncConnection,
    kind: str | None = None,
    alarm_state: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> dict[str, Any]:
    """Sensors by id, optionally of one kind and/or alarm state, a page at a time."""
    where = " WHERE (CAST(:kind AS text) IS NULL OR kind = :kind)"
    where += " AND (CAST(:state AS text) IS NULL OR alarm_state = :state)"
    params = {"kind": kind, "state": alarm_state, "limit": limit, "offset": offset}
    total = await conn.scalar(text("SELECT count(*) FROM sensors" + where), params)
    rows = await conn.execute(
        text(SELECT_SENSOR + where + " ORDER BY id LIMIT :limit OFFSET :offset"), params
    )
    return {"total": total, "sensors": [sensor_dict(r) for r in rows]}


async def update_sensor(
    conn: AsyncConnection, ref: int | str, patch: dict[str, Any]
) -> dict[str, Any]:
    """Replace the given fields of a sensor (its code stays) and revalidate it as a whole."""
    current = await get_sensor(conn, ref, lock=True)
    merged = {k: current[k] for k in SensorIn.model_fields if k in current}
    merged.update(patch)
    sensor = validate_sensor(merged)
    if sensor.code != current["code"]:
        raise Unprocessable("a sensor's code cannot change", code="invalid_sensor")
    await _check_asset(conn, sensor.asset_code)
    await conn.execute(
        text(
            "UPDATE sensors SET kind = :kind, name = :name, asset_code = :asset, "
            "measures = CAST(:measures AS jsonb), thresholds = CAST(:thresholds AS jsonb), "
            f"{CELL_SETS}, geom = ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) WHERE code = :code"
        ),
        _write_params(sensor),
    )
    boxes = [_bbox(current["lon"], current["lat"]), _bbox(sensor.lon, sensor.lat)]
    await publish_change(conn, LAYER, boxes)
    return await get_sensor(conn, current["id"])


async def delete_sensor(conn: AsyncConnection, ref: int | str) -> None:
    """Remove a sensor with its readings and alarm history."""
    current = await get_sensor(conn, ref, lock=True)
    await conn.execute(text("DELETE FROM readings WHERE sensor_id = :id"), {"id": current["id"]})
    await conn.execute(text("DELETE FROM sensors WHERE id = :id"), {"id": current["id"]})
    await publish_change(conn, LAYER, [_bbox(current["lon"], current["lat"])])


async def sensor_ranges(conn: AsyncConnection, codes: list[str]) -> dict[str, SensorRanges]:
    """The id and property ranges of each known sensor among ``codes``."""
    rows = await conn.execute(
        text("SELECT id, code, measures::text AS measures FROM sensors WHERE code = ANY(:codes)"),
        {"codes": codes},
    )
    found = {}
    for row in rows:
        measures = orjson.loads(row.measures)
        ranges = {p: (float(m["min"]), float(m["max"])) for p, m in measures.items()}
        found[row.code] = SensorRanges(row.id, ranges)
    return found
