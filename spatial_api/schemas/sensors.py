"""Sensors: the registry, readings, alarms and batch ingest."""

from __future__ import annotations

from pydantic import Field

from spatial_api.schemas import Number, Schema


class MeasureRange(Schema):
    """A measured property's unit and valid range."""

    max: Number
    min: Number
    unit: str


class Levels(Schema):
    """A property's warning and alarm levels and their hysteresis."""

    alarm: Number | None = None
    warning: Number | None = None
    hysteresis: Number


class Latest(Schema):
    """A property's latest reading and its level."""

    ts: str
    level: str
    value: Number


class Sensor(Schema):
    """A sensor with its measures, thresholds, latest values and alarm state."""

    id: int
    code: str
    kind: str
    name: str | None
    lon: Number
    lat: Number
    cell: str | None
    asset_code: str | None
    measures: dict[str, MeasureRange]
    thresholds: dict[str, Levels]
    latest: dict[str, Latest]
    alarm_state: str


class SensorPage(Schema):
    """One page of sensors and how many there are."""

    total: int
    sensors: list[Sensor]


class Reading(Schema):
    """One raw reading."""

    ts: str
    value: Number


class Bucket(Schema):
    """The readings of one time bucket: min, average, max and count."""

    start: str
    min: Number
    avg: Number
    max: Number
    count: int


class Series(Schema):
    """A sensor's readings of one property in [from, to): raw (``readings``) or per
    bucket (``buckets``)."""

    sensor_id: int
    sensor: str
    property: str
    unit: str | None
    from_: str = Field(alias="from")
    to: str
    bucket: str | None
    tz: str
    readings: list[Reading] | None = None
    truncated: bool | None = None
    buckets: list[Bucket] | None = None


class LevelChange(Schema):
    """One alarm level change: the reading that caused it and its incident."""

    id: int
    property: str
    from_: str = Field(alias="from")
    to: str
    value: Number
    ts: str
    recorded_at: str
    incident_id: int | None
    note: str | None


class AlarmHistory(Schema):
    """A sensor's level changes, newest first."""

    sensor_id: int
    sensor: str
    alarm_state: str
    changes: list[LevelChange]


class Rejection(Schema):
    """A reading that was not stored: its position in the batch, a code and the reason."""

    index: int
    code: str
    reason: str


class IngestReport(Schema):
    """What became of a batch of readings."""

    received: int
    accepted: int
    duplicate: int
    rejected: int
    rejections: list[Rejection]
    alarm_transitions: int
    incidents_opened: list[int]
