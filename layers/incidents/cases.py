"""Incidents: the case record, reading it, and reporting a new one.

A report is routed by where it is (its point gives the grid cell, the cell the inspector who
verifies it and the district) and by what it is (the category gives the department that
handles it and the time limit, counted in working hours, that sets the deadline). Open cases
of the same category nearby, or on the same asset, come back as possible duplicates; the
reporter may attach the report to one of them instead (``attach_report``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Annotated, Any, Literal

import numpy as np
import orjson
from pydantic import AfterValidator, BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gis.crs import parse_crs, to_xy, transformer
from gis.errors import BadRequest, Forbidden, NotFound, Unprocessable
from gis.hexgrid import level_columns, parse_cell, point_cells, to_hex
from layers.catalog.changes import publish_change
from layers.db.engine import raw_connection
from layers.db.scope import UNLIMITED, Scope
from layers.grid.lookup import lookup as grid_lookup
from layers.incidents import workflow as wf
from layers.incidents.events import recording_step
from layers.incidents.working_time import (
    OVERRIDES_SINCE,
    WorkCalendar,
    default_calendar,
    local_day,
    overrides_from_json,
)

LAYER = "incidents"
BIGINT_MAX = 2**63 - 1
INT_MAX = 2**31 - 1
CaseId = Annotated[int, Field(ge=1, le=BIGINT_MAX)]
"""A case id (bigint), as a client may send it."""
RowId = Annotated[int, Field(ge=1, le=INT_MAX)]
"""The id of a department, user or sensor (integer), as a client may send it."""


def _storable(value: str) -> str:
    if "\x00" in value:
        raise ValueError("text must not contain NUL characters")
    return value


Text = Annotated[str, AfterValidator(_storable)]
"""Text a client sends that PostgreSQL can store (no NUL character)."""


class IncidentSettings(BaseSettings):
    """How reports are checked for duplicates."""

    model_config = SettingsConfigDict(env_prefix="CITYHEX_", extra="ignore")

    duplicate_radius_m: float = Field(50.0, ge=0, le=5000)
    """An open case of the same category within this distance is a possible duplicate."""


@lru_cache
def incident_settings() -> IncidentSettings:
    """The process-wide incident settings."""
    return IncidentSettings()


@dataclass(frozen=True)
class Actor:
    """Who acts: a role, the name recorded in history, the user the key speaks for, and
    the scope (districts, departments) the caller is limited to."""

    role: str
    name: str
    user_id: int | None = None
    scope: Scope = UNLIMITED


class GeoJSONPoint(BaseModel):
    """A GeoJSON point; its coordinates follow the axis order of the report's CRS."""

    type: Literal["Point"]
    coordinates: list[float] = Field(min_length=2, max_length=3)


class ReportInput(BaseModel):
    """What a reporter sends: category, description, location, asset, photos."""

    model_config = {"extra": "forbid"}

    category: str = Field(pattern=r"^[0-9]{4}$", description="4-digit category code")
    description: Text | None = Field(None, max_length=4000)
    lon: float | None = Field(None, description="longitude (with lat; geographic CRS)")
    lat: float | None = Field(None, description="latitude (with lon; geographic CRS)")
    location: GeoJSONPoint | None = Field(None, description="GeoJSON point instead of lon/lat")
    crs: str | None = Field(None, description="CRS of the location; default CRS84 (lon/lat)")
    asset_code: str | None = Field(None, pattern=r"^[0-9]{16}$")
    photos: list[Text] = Field(default_factory=list, max_length=20)
    sensor_id: RowId | None = Field(None, description="the sensor whose alarm opened the case")

    @field_validator("photos")
    @classmethod
    def _photo_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.startswith(("http://", "https://")) or len(url) > 1000:
                raise ValueError(f"{url[:80]!r} is not an http(s) URL of at most 1000 characters")
        return urls


@dataclass(frozen=True)
class Duplicate:
    """An open case that a new report may duplicate."""

    id: int
    status: str
    distance_m: float
    same_asset: bool

    def as_dict(self, *, where: bool = True) -> dict[str, Any]:
        """JSON-ready data; without where the case is (its distance, whether it is on the
        same asset) unless ``where``, for a reporter who may not read the case."""
        data: dict[str, Any] = {"id": self.id, "status": self.status}
        if where:
            data.update(distance_m=round(self.distance_m, 1), same_asset=self.same_asset)
        return data


@dataclass(frozen=True)
class Incident:
    """A case as stored, with its possible duplicates when it was just reported."""

    id: int
    category_code: str
    status: str
    description: str | None
    source: str
    reporter: str | None
    asset_code: str | None
    sensor_id: int | None
    photos: list[str]
    inspector_id: int | None
    department_id: int | None
    district_id: int | None
    h3: int | None
    reported_at: datetime
    registered_at: datetime | None
    dispatched_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    deadline: datetime | None
    rework_count: int
    version: int
    updated_at: datetime
    lon: float
    lat: float
    possible_duplicates: tuple[Duplicate, ...] = field(default=())

    @property
    def overdue(self) -> bool:
        """Whether the deadline has passed and the case is not closed, cancelled or parked."""
        return (
            self.deadline is not None
            and self.status not in wf.CLOCK_STOPPED
            and self.deadline < datetime.now(UTC)
        )

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """The point as a lon/lat box (for tile invalidation)."""
        return (self.lon, self.lat, self.lon, self.lat)

    def as_dict(self) -> dict[str, Any]:
        """The case as JSON-ready data (cells as hex strings, times as ISO 8601)."""
        data = {
            "id": self.id,
            "category_code": self.category_code,
            "status": self.status,
            "description": self.description,
            "source": self.source,
            "reporter": self.reporter,
            "asset_code": self.asset_code,
            "sensor_id": self.sensor_id,
            "photos": self.photos,
            "inspector_id": self.inspector_id,
            "department_id": self.department_id,
            "district_id": self.district_id,
            "cell": to_hex(self.h3) if self.h3 else None,
            "location": {"type": "Point", "coordinates": [self.lon, self.lat]},
        }
        for name in ("reported_at", "registered_at", "dispatched_at", "resolved_at"):
            data[name] = _iso(getattr(self, name))
        data.update(
            closed_at=_iso(self.closed_at),
            deadline=_iso(self.deadline),
            overdue=self.overdue,
            rework_count=self.rework_count,
            version=self.version,
            updated_at=_iso(self.updated_at),
        )
        return data


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


COLUMNS = (
    "i.id, i.category_code, i.status, i.description, i.source, i.reporter, i.asset_code, "
    "i.sensor_id, i.photos, i.inspector_id, i.department_id, i.district_id, i.h3, "
    "i.reported_at, i.registered_at, i.dispatched_at, i.resolved_at, i.closed_at, "
    "i.deadline, i.rework_count, i.version, i.updated_at, ST_X(i.geom) AS lon, "
    "ST_Y(i.geom) AS lat"
)


def incident_from_row(row: Any, duplicates: tuple[Duplicate, ...] = ()) -> Incident:
    """An Incident from a row selected with ``COLUMNS``."""
    return Incident(*row[:24], possible_duplicates=duplicates)


async def get_incident(conn: AsyncConnection, incident_id: int, *, lock: bool = False) -> Incident:
    """The case ``incident_id`` (locked for update if asked); NotFound otherwise."""
    suffix = " FOR UPDATE" if lock else ""
    row = (
        await conn.execute(
            text(f"SELECT {COLUMNS} FROM incidents i WHERE i.id = :id{suffix}"),
            {"id": incident_id},
        )
    ).first()
    if row is None:
        raise NotFound(f"no incident {incident_id}", code="unknown_incident")
    return incident_from_row(row)


def report_lonlat(data: ReportInput) -> tuple[float, float]:
    """The report's point as WGS 84 lon/lat; BadRequest when it is missing or out of range."""
    crs = parse_crs(data.crs)
    if data.location is not None and (data.lon is not None or data.lat is not None):
        raise BadRequest("give either lon/lat or location, not both", code="invalid_location")
    if data.location is not None:
        x, y = to_xy(np.array([data.location.coordinates[:2]], dtype=float), crs)[0]
    elif data.lon is not None and data.lat is not None:
        if not crs.geographic:
            raise BadRequest(
                f"lon/lat need a geographic CRS, not {crs.name}; send a location point",
                code="invalid_location",
            )
        x, y = data.lon, data.lat
    else:
        raise BadRequest("a report needs lon and lat, or a location point", code="no_location")
    if crs.srid != 4326:
        x, y = transformer(crs.srid, 4326).transform(x, y)
    if not (np.isfinite(x) and np.isfinite(y) and -180 <= x <= 180 and -90 <= y <= 90):
        raise BadRequest(f"location {x}, {y} is not a lon/lat on Earth", code="invalid_location")
    return float(x), float(y)


@dataclass(frozen=True)
class Category:
    """What a report needs of its category: the time limit in working hours."""

    code: str
    time_limit_hours: float


async def category_and_calendar(
    conn: AsyncConnection, code: str, since: date
) -> tuple[Category, WorkCalendar]:
    """The category ``code`` and the working calendar from ``since`` on, in one query;
    Unprocessable when the table has no such category."""
    row = (
        await conn.execute(
            text(
                "SELECT code, time_limit_hours, "
                f"({OVERRIDES_SINCE}) FROM incident_categories WHERE code = :code"
            ),
            {"code": code, "since": since},
        )
    ).first()
    if row is None:
        raise Unprocessable(
            f"no incident category {code!r} (see /incidents/categories)", code="unknown_category"
        )
    return Category(row[0], float(row[1])), default_calendar(overrides_from_json(row[2]))


@dataclass(frozen=True)
class Route:
    """Where a report goes: its grid cell, district (code), inspector and department."""

    cell: int
    district_code: str | None
    inspector_id: int | None
    department_id: int


async def route_report(conn: AsyncConnection, lon: float, lat: float, category: str) -> Route:
    """The grid's answer for the point and category (``layers.grid.lookup``, as
    ``/grid/lookup`` gives it); Unprocessable when the point lies outside the grid."""
    async with raw_connection(conn) as raw:
        try:
            answer = await grid_lookup(raw, lon, lat, category, names=False)
        except NotFound:
            raise Unprocessable(
                f"{lon}, {lat} lies outside the city grid", code="outside_grid"
            ) from None
    district, inspector = answer["district"], answer["inspector"]
    return Route(
        parse_cell(answer["cell"]),
        district["code"] if district else None,
        inspector["id"] if inspector else None,
        answer["department"]["id"],
    )


DUPLICATES = f"""
SELECT id, status, ST_Distance(geom::geography, pt::geography) AS distance_m,
       coalesce(asset_code = :asset, false) AS same_asset
FROM incidents, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS pt
WHERE status IN {tuple(sorted(wf.OPEN))}
  AND ((category_code = :category
        AND ST_DWithin(geom_3857, ST_Transform(pt, 3857), :radius / cos(radians(:lat)) * 1.01)
        AND ST_DWithin(geom::geography, pt::geography, :radius))
       OR asset_code = :asset)
ORDER BY same_asset DESC, distance_m
LIMIT 10
"""


async def find_duplicates(
    conn: AsyncConnection, category: str, lon: float, lat: float, asset_code: str | None
) -> tuple[Duplicate, ...]:
    """Open cases of ``category`` within the duplicate radius, or on the same asset."""
    radius = incident_settings().duplicate_radius_m
    rows = await conn.execute(
        text(DUPLICATES),
        {"lon": lon, "lat": lat, "category": category, "asset": asset_code, "radius": radius},
    )
    return tuple(Duplicate(r[0], r[1], float(r[2]), bool(r[3])) for r in rows)


def check_sensor_claim(actor: Actor, data: ReportInput) -> None:
    """Forbidden when a report names a sensor and the actor does not speak for sensors."""
    if data.sensor_id is not None and actor.role not in wf.SENSOR_ROLES:
        allowed = ", ".join(sorted(wf.SENSOR_ROLES))
        raise Forbidden(
            f"only {allowed} keys report for a sensor: leave sensor_id out",
            code="sensor_report_forbidden",
        )


def source_of(actor: Actor, data: ReportInput) -> str:
    """Where a report comes from: a sensor, the public, or the role of the key."""
    if data.sensor_id is not None:
        return "sensor"
    return "public" if actor.role == "anonymous" else actor.role


LEVELS = level_columns()
"""The cell columns besides ``h3`` (the grid cell): the point's cell at each resolution."""
INSERT = f"""
INSERT INTO incidents AS i (category_code, status, description, source, reporter, asset_code,
    sensor_id, photos, inspector_id, department_id, district_id, h3, reported_at, deadline,
    updated_at, geom, {", ".join(LEVELS.values())})
VALUES (:category, :status, :description, :source, :reporter, :asset, :sensor,
    CAST(:photos AS jsonb), :inspector, :department,
    (SELECT id FROM districts WHERE code = :district), :cell, :at, :deadline, :at,
    ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), {", ".join(":" + c for c in LEVELS.values())})
RETURNING {COLUMNS}
"""


async def report_incident(
    conn: AsyncConnection, data: ReportInput, actor: Actor, *, at: datetime | None = None
) -> Incident:
    """Open a case: route it, set its deadline, record the report, announce it.

    ``at`` is when it was observed (default now). The returned case lists the open cases it
    may duplicate. Runs in the caller's transaction; nothing is written when it raises.
    """
    if actor.role not in wf.REPORT_ROLES:
        raise BadRequest(f"role {actor.role!r} cannot report", code="role_not_allowed")
    check_sensor_claim(actor, data)
    at = at or datetime.now(UTC)
    lon, lat = report_lonlat(data)
    category, calendar = await category_and_calendar(conn, data.category, local_day(at))
    route = await route_report(conn, lon, lat, category.code)
    duplicates = await find_duplicates(conn, category.code, lon, lat, data.asset_code)
    params = {
        "category": category.code,
        "status": wf.INITIAL,
        "description": data.description,
        "source": source_of(actor, data),
        "reporter": actor.name,
        "asset": data.asset_code,
        "sensor": data.sensor_id,
        "photos": orjson.dumps(data.photos).decode(),
        "inspector": route.inspector_id,
        "department": route.department_id,
        "district": route.district_code,
        "cell": route.cell,
        "at": at,
        "deadline": calendar.add_working_hours(at, category.time_limit_hours),
        "lon": lon,
        "lat": lat,
    }
    params |= {LEVELS[r]: c for r, c in point_cells(lon, lat, LEVELS).items()}
    row = (await conn.execute(text(INSERT), params)).one()
    incident = incident_from_row(row, duplicates)
    await record_transition(conn, incident, wf.REPORT, None, actor, data.description, at=at)
    return incident


RECORD_STEP = recording_step(
    "INSERT INTO incident_transitions (incident_id, action, from_status, to_status, actor, at,"
    " note, details) VALUES (:id, :action, :from_status, :to_status, :actor, :at, :note,"
    " CAST(:details AS jsonb)) RETURNING *"
)


async def record_transition(
    conn: AsyncConnection,
    incident: Incident,
    action: str,
    from_status: str | None,
    actor: Actor,
    note: str | None,
    *,
    at: datetime,
    details: dict[str, Any] | None = None,
) -> int:
    """Record one step of the case (it now stands in ``incident.status``), invalidate its
    tiles and announce it on /events, all in the caller's transaction; the step's id."""
    transition_id = (
        await conn.execute(
            text(RECORD_STEP),
            {
                "id": incident.id,
                "action": action,
                "from_status": from_status,
                "to_status": incident.status,
                "actor": actor.name,
                "at": at,
                "note": note,
                "details": orjson.dumps(details).decode() if details else None,
            },
        )
    ).scalar_one()
    await publish_change(conn, LAYER, [incident.bbox])
    return transition_id


async def attach_report(
    conn: AsyncConnection, incident_id: int, data: ReportInput, actor: Actor, *, discreet: bool
) -> Incident:
    """Attach a report to the open case ``incident_id`` instead of opening a new one.

    NotFound when there is no such case; Unprocessable when it is closed or cancelled, or of
    another category. A ``discreet`` caller (one who may not read the case) gets one and the
    same Unprocessable for all of these, so its answers tell nothing about the case.
    """
    check_sensor_claim(actor, data)
    lon, lat = report_lonlat(data)
    try:
        incident = await attachable_case(conn, incident_id, data.category)
    except (NotFound, Unprocessable):
        if not discreet:
            raise
        raise Unprocessable(
            f"this report cannot be attached to case {incident_id}; "
            "report it as a new case (without duplicate_of)",
            code="duplicate_not_attachable",
        ) from None
    await conn.execute(
        text(
            "INSERT INTO incident_duplicates (incident_id, source, reporter, description, "
            "asset_code, photos, geom) VALUES (:id, :source, :reporter, :description, :asset, "
            "CAST(:photos AS jsonb), ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))"
        ),
        {
            "id": incident_id,
            "source": source_of(actor, data),
            "reporter": actor.name,
            "description": data.description,
            "asset": data.asset_code,
            "photos": orjson.dumps(data.photos).decode(),
            "lon": lon,
            "lat": lat,
        },
    )
    return incident


async def attachable_case(conn: AsyncConnection, incident_id: int, category: str) -> Incident:
    """The open case ``incident_id`` of ``category``, locked; NotFound when there is none,
    Unprocessable when it is closed or cancelled, or of another category."""
    incident = await get_incident(conn, incident_id, lock=True)
    if incident.status not in wf.OPEN:
        raise Unprocessable(
            f"incident {incident_id} is {incident.status}; report a new case instead",
            code="duplicate_of_closed",
        )
    if category != incident.category_code:
        raise Unprocessable(
            f"incident {incident_id} is of category {incident.category_code}, not {category}",
            code="duplicate_category_mismatch",
        )
    return incident
