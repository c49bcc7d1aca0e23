"""Patrol over HTTP: inspectors send GPS fixes; dispatchers read coverage, on-duty time,
tracks, live positions, off-post episodes and the inspector evaluation; shifts are set here.

Roles: fixes — an inspector key (the fixes are its inspector's) or admin (naming
``inspector_id``); every read — the inspector themself, dispatchers (within their district
scope) and admin; never anonymous (401) nor app or editor keys (403). Shift schedules —
dispatchers and admin. Reads of tracks and live positions are audited as personal-data reads.

The router also runs the periodic off-post check of the server (every
``CITYHEX_OFF_POST_CHECK_SECONDS``) for the life of the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, time
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Query, Request, Response
from pydantic import BaseModel, Field, StrictBool
from sqlalchemy.ext.asyncio import AsyncEngine

from gis.errors import BadRequest, Forbidden, PayloadTooLarge
from layers.patrol.access import (
    Reader,
    check_district,
    counted_in,
    inspector_for,
    inspectors_for,
)
from layers.patrol.coverage import coverage_by_district, coverage_of, parse_period
from layers.patrol.evaluation import evaluation
from layers.patrol.fixes import MAX_BATCH, ingest, parse_batch
from layers.patrol.off_post import check_inspectors, off_post_records
from layers.patrol.settings import patrol_settings
from layers.patrol.shifts import Schedule, delete_schedule, list_schedules, set_schedule
from layers.patrol.tracks import live, track
from spatial_api.auth import Principal
from spatial_api.deps import Connection, Dispatcher, Engine, FixSender, PatrolReader
from spatial_api.openapi import errors
from spatial_api.params import UserId
from spatial_api.schemas.patrol import (
    CoverageAnswer,
    FixReport,
    PatrolEvaluation,
    PatrolFeatures,
    ShiftSchedule,
)

log = logging.getLogger("cityhex.patrol")
MAX_BODY_BYTES = 8 * 1024 * 1024
FROM = Query(None, alias="from", description="ISO 8601; default: the start of today (local)")
TO = Query(None, alias="to", description="ISO 8601; default: now")

FIXES_BODY = {
    "description": f"Up to {MAX_BATCH} fixes of one inspector.",
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["fixes"],
                "properties": {
                    "inspector_id": {
                        "type": "integer",
                        "description": "admin only: whose fixes (an inspector key sends its own)",
                    },
                    "fixes": {
                        "type": "array",
                        "maxItems": MAX_BATCH,
                        "items": {
                            "type": "object",
                            "required": ["ts", "lon", "lat"],
                            "properties": {
                                "ts": {"type": "string", "format": "date-time"},
                                "lon": {"type": "number"},
                                "lat": {"type": "number"},
                                "accuracy_m": {"type": "number"},
                                "speed_mps": {"type": "number"},
                            },
                        },
                    },
                },
            }
        }
    },
}


async def off_post_loop(engine: AsyncEngine, interval: float) -> None:
    """Check every inspector on shift for off-post episodes, every ``interval`` seconds."""
    while True:
        await asyncio.sleep(interval)
        try:
            async with engine.connect() as conn:
                await check_inspectors(conn, datetime.now(UTC))
        except Exception:  # the next round tries again; the server keeps serving
            log.exception("the off-post check failed")


@asynccontextmanager
async def off_post_checker(app: FastAPI) -> AsyncIterator[None]:
    """The periodic off-post check, for the life of the process."""
    task = asyncio.create_task(
        off_post_loop(app.state.engine, patrol_settings().off_post_check_seconds)
    )
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


router = APIRouter(prefix="/patrol", tags=["patrol"], lifespan=off_post_checker)


def reader_of(caller: Principal) -> Reader:
    """The caller as the patrol access rules see it."""
    return Reader(caller.role, caller.inspector_id, caller.scope.districts)


@router.post(
    "/fixes",
    summary="Send a batch of GPS fixes (idempotent per inspector and time)",
    openapi_extra={"requestBody": FIXES_BODY},
    response_model=FixReport,
    responses=errors(413, 422),
)
async def fixes_ingest(request: Request, engine: Engine, caller: FixSender) -> dict[str, Any]:
    """Store the valid fixes of a batch once each; report accepted, duplicate and rejected
    fixes (with the reason for each)."""
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body exceeds {MAX_BODY_BYTES} bytes")
    batch = parse_batch(body)
    if caller.role == "admin":
        if batch.inspector_id is None:
            raise BadRequest(
                "an admin names the inspector: inspector_id", code="inspector_required"
            )
        inspector = batch.inspector_id
    else:
        inspector = Reader(caller.role, caller.inspector_id, None).own()
        if batch.inspector_id not in (None, inspector):
            raise Forbidden("an inspector key sends its own fixes only", code="not_yours")
    report = await ingest(engine, inspector, batch.fixes)
    return report.to_dict()


@router.get(
    "/coverage",
    summary="Patrolled cells, coverage, on-duty time and off-post episodes",
    response_model=CoverageAnswer,
    responses=errors(404),
)
async def patrol_coverage(
    conn: Connection,
    caller: PatrolReader,
    inspector: UserId = None,
    start: str | None = FROM,
    end: str | None = TO,
    group_by: Literal["district"] | None = Query(None, description="district: a centre's table"),
    district: str | None = Query(None, description="with group_by: one district (6-digit code)"),
) -> dict[str, Any]:
    """An inspector's assigned and patrolled cells, coverage, on-duty minutes, shift minutes,
    在岗率 and off-post episodes in [from, to); with ``group_by=district``, every inspector's
    figures and each district's sums."""
    lo, hi = parse_period(start, end, datetime.now(UTC))
    reader = reader_of(caller)
    if group_by == "district":
        ids = await inspectors_for(conn, reader, district)
        return await coverage_by_district(conn, ids, lo, hi, counted_in(reader, district))
    who = await inspector_for(conn, reader, inspector)
    (figures,) = await coverage_of(conn, [who], lo, hi)
    figures.off_post = (await off_post_records(conn, [who], lo, hi))[who]
    return figures.as_dict()


@router.get(
    "/tracks",
    summary="An inspector's track (GeoJSON lines, split at gaps)",
    response_model=PatrolFeatures,
    response_model_exclude_unset=True,
    responses=errors(404),
)
async def patrol_tracks(
    conn: Connection,
    caller: PatrolReader,
    inspector: UserId = None,
    start: str | None = FROM,
    end: str | None = TO,
) -> dict[str, Any]:
    """The counted fixes of [from, to) as lines, a new line after every gap over the limit."""
    lo, hi = parse_period(start, end, datetime.now(UTC))
    who = await inspector_for(conn, reader_of(caller), inspector)
    return await track(conn, who, lo, hi)


@router.get(
    "/live",
    summary="Last position of each inspector on shift",
    response_model=PatrolFeatures,
    response_model_exclude_unset=True,
)
async def patrol_live(
    conn: Connection,
    caller: PatrolReader,
    district: str | None = Query(None, description="one district (6-digit code)"),
) -> dict[str, Any]:
    """Each inspector on shift now with their last counted fix (an inspector sees only
    themself)."""
    ids = await inspectors_for(conn, reader_of(caller), district)
    return await live(conn, datetime.now(UTC), ids)


@router.get(
    "/evaluation",
    summary="Inspector evaluation: reports, 有效上报, 按时核实率, 按时核查率, coverage, 在岗率",
    response_model=PatrolEvaluation,
    responses=errors(404),
)
async def patrol_evaluation(
    conn: Connection,
    caller: PatrolReader,
    inspector: UserId = None,
    district: str | None = Query(None, description="one district (6-digit code)"),
    start: str | None = FROM,
    end: str | None = TO,
) -> dict[str, Any]:
    """The evaluation figures of each inspector (one, or those of a district, or all the
    caller may read) and of their districts over [from, to)."""
    lo, hi = parse_period(start, end, datetime.now(UTC))
    reader = reader_of(caller)
    if inspector is not None or reader.role == "inspector":
        ids = [await inspector_for(conn, reader, inspector)]
    else:
        ids = await inspectors_for(conn, reader, district)
    return await evaluation(conn, ids, lo, hi, counted_in(reader, district))


class ShiftIn(BaseModel):
    """A daily shift for one inspector or for a district's inspectors."""

    inspector_id: int | None = Field(None, ge=1, le=2**31 - 1)
    district: str | None = Field(None, pattern="^[0-9]{6}$")
    start_time: time
    end_time: time
    working_days_only: StrictBool = True


@router.get("/shifts", summary="Shift schedules", response_model=list[ShiftSchedule])
async def shifts_list(conn: Connection, _: Dispatcher) -> list[dict[str, Any]]:
    """Every schedule, per district and per inspector."""
    return await list_schedules(conn)


@router.put(
    "/shifts",
    summary="Set the shift of an inspector or of a district",
    response_model=ShiftSchedule,
    responses=errors(404, 422),
)
async def shifts_set(body: ShiftIn, conn: Connection, caller: Dispatcher) -> dict[str, Any]:
    """Store the shift: local times in CITYHEX_TIMEZONE, on working days of the calendar
    (or on every day); an end not after the start runs past midnight."""
    schedule = Schedule(body.start_time, body.end_time, body.working_days_only)
    reader = reader_of(caller)
    check_district(reader, body.district)
    if body.inspector_id is not None:
        await inspector_for(conn, reader, body.inspector_id)
    return await set_schedule(conn, schedule, caller.actor, body.inspector_id, body.district)


@router.delete("/shifts", status_code=204, summary="Remove a shift schedule", responses=errors(404))
async def shifts_delete(
    conn: Connection,
    caller: Dispatcher,
    inspector_id: UserId = None,
    district: str | None = Query(None, pattern="^[0-9]{6}$"),
) -> Response:
    """Remove the schedule of an inspector or of a district."""
    reader = reader_of(caller)
    check_district(reader, district)
    if inspector_id is not None:
        await inspector_for(conn, reader, inspector_id)
    await delete_schedule(conn, inspector_id, district)
    return Response(status_code=204)
