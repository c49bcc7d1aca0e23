"""Sensors: the registry, batch ingest of readings, series and alarm history."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request, Response

from gis.errors import PayloadTooLarge
from layers.sensors.alarms import alarm_history
from layers.sensors.readings import MAX_BATCH, ingest, parse_batch, parse_time, series
from layers.sensors.registry import (
    SensorIn,
    SensorPatch,
    create_sensor,
    delete_sensor,
    get_sensor,
    list_sensors,
    update_sensor,
)
from spatial_api.deps import Admin, App, Caller, Connection, Engine, Reader
from spatial_api.openapi import errors
from spatial_api.params import Offset
from spatial_api.schemas.sensors import AlarmHistory, IngestReport, Sensor, SensorPage, Series

router = APIRouter(prefix="/sensors", tags=["sensors"])
MAX_BODY_BYTES = 64 * 1024 * 1024

READINGS_BODY = {
    "description": f"Up to {MAX_BATCH} readings: an array, or an object with a 'readings' array.",
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "array",
                "maxItems": MAX_BATCH,
                "items": {
                    "type": "object",
                    "required": ["sensor", "property", "ts", "value"],
                    "properties": {
                        "sensor": {"type": "string", "description": "the sensor's code"},
                        "property": {"type": "string", "example": "pm25"},
                        "ts": {
                            "type": "string",
                            "format": "date-time",
                            "description": "ISO 8601 with a UTC offset (or Unix seconds)",
                        },
                        "value": {"type": "number"},
                    },
                },
            }
        }
    },
}


@router.get("", summary="The sensors, a page at a time", response_model=SensorPage)
async def sensors_list(
    conn: Connection,
    _: Caller,
    kind: str | None = Query(None, description="only sensors of this kind"),
    alarm_state: Literal["normal", "warning", "alarm"] | None = Query(None),
    limit: int = Query(100, ge=1, le=10_000),
    offset: Offset = 0,
) -> dict[str, Any]:
    """Sensors by id with their measures, thresholds, latest values and alarm state."""
    return await list_sensors(conn, kind, alarm_state, limit, offset)


@router.post(
    "",
    status_code=201,
    summary="Register a sensor (admin)",
    response_model=Sensor,
    responses=errors(409, 422),
)
async def sensors_create(
    body: SensorIn,
    conn: Connection,
    _: Admin,
) -> dict[str, Any]:
    """Register a sensor: code, kind, location, measures, thresholds, linked asset."""
    return await create_sensor(conn, body.model_dump())


@router.post(
    "/readings",
    summary="Ingest a batch of readings (idempotent)",
    openapi_extra={"requestBody": READINGS_BODY},
    response_model=IngestReport,
    responses=errors(413),
)
async def readings_ingest(request: Request, engine: Engine, _: App) -> dict[str, Any]:
    """Store the valid readings of a batch once each; report accepted, duplicate and
    rejected rows (with the reason for each) and the alarms raised."""
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body exceeds {MAX_BODY_BYTES} bytes")
    report = await ingest(engine, parse_batch(body))
    return report.to_dict()


@router.get("/{sensor}", summary="One sensor (by id or code)", response_model=Sensor)
async def sensors_get(
    sensor: str,
    conn: Connection,
    _: Caller,
) -> dict[str, Any]:
    """The sensor with its latest values and alarm state."""
    return await get_sensor(conn, sensor)


@router.patch(
    "/{sensor}", summary="Change a sensor (admin)", response_model=Sensor, responses=errors(422)
)
async def sensors_update(
    sensor: str,
    body: SensorPatch,
    conn: Connection,
    _: Admin,
) -> dict[str, Any]:
    """Replace the given fields (measures and thresholds each as a whole)."""
    return await update_sensor(conn, sensor, body.model_dump(exclude_unset=True))


@router.delete("/{sensor}", status_code=204, summary="Remove a sensor (admin)")
async def sensors_delete(
    sensor: str,
    conn: Connection,
    _: Admin,
) -> Response:
    """Remove the sensor, its readings and its alarm history."""
    await delete_sensor(conn, sensor)
    return Response(status_code=204)


@router.get(
    "/{sensor}/readings",
    summary="A sensor's readings, raw or in time buckets",
    response_model=Series,
    response_model_exclude_unset=True,
)
async def sensors_series(
    sensor: str,
    conn: Connection,
    _: Caller,
    property: str | None = Query(None, description="required when the sensor measures several"),
    start: str | None = Query(None, alias="from", description="ISO 8601; default: to - 1 day"),
    end: str | None = Query(None, alias="to", description="ISO 8601; default: now"),
    bucket: Literal["5m", "1h", "1d"] | None = Query(None, description="omit for raw"),
    tz: str = Query("UTC", description="Time zone of the buckets, e.g. Asia/Shanghai"),
) -> dict[str, Any]:
    """Readings of one property in [from, to): raw, or min/avg/max/count per bucket of the
    wall clock in ``tz`` (a ``1d`` bucket is a local day)."""
    return await series(
        conn,
        sensor,
        property,
        parse_time(start, "from") if start else None,
        parse_time(end, "to") if end else None,
        bucket,
        tz,
    )


@router.get("/{sensor}/alarms", summary="A sensor's alarm history", response_model=AlarmHistory)
async def sensors_alarms(
    sensor: str,
    conn: Connection,
    _: Reader,
    limit: int = Query(100, ge=1, le=10_000),
) -> dict[str, Any]:
    """Every level change (newest first): the reading that caused it and its incident."""
    return await alarm_history(conn, sensor, limit)
