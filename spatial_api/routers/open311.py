"""Open311 GeoReport v2 (JSON) under ``/open311/v2/``.

service_code ↔ category, agency_responsible ↔ department, expected_datetime ↔ deadline;
status is ``closed`` for closed and cancelled cases and ``open`` otherwise, with the
workflow state in status_notes. Requests are read by anyone (anonymous callers get the
location of the grid cell, not the reported point, and descriptions without phone numbers,
ID numbers or plates) and posted with an app key, given as
``Authorization: Bearer`` or as the GeoReport ``api_key`` field.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import h3
from fastapi import APIRouter, Path, Query, Request
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from gis.errors import BadRequest, Forbidden, NotFound, Unauthorized
from gis.jsontext import parse_json
from layers.attachments.records import report_photos
from layers.incidents import workflow as wf
from layers.incidents.cases import BIGINT_MAX, Incident, ReportInput, report_incident
from layers.incidents.categories import department_names, get_category_record, list_categories
from layers.incidents.lists import IncidentQuery, list_incidents
from layers.incidents.redaction import scrub
from spatial_api.auth import ANONYMOUS, Authorization, Principal, principal_from
from spatial_api.bodies import media_type, read_bytes
from spatial_api.deps import Caller, Engine
from spatial_api.openapi import errors
from spatial_api.proxies import public_base_url
from spatial_api.responses import JSON
from spatial_api.routers.incident_common import actor_of
from spatial_api.schemas.open311 import (
    Discovery,
    PostedRequest,
    Service,
    ServiceDefinition,
    ServiceRequest,
)

router = APIRouter(prefix="/open311/v2", tags=["open311"])
CLOSED = ("closed", "cancelled")
STATUS_NOTES = {
    "reported": "reported, awaiting registration",
    "registered": "registered as a case (立案), awaiting dispatch",
    "dispatched": "dispatched to the responsible department (派遣)",
    "in_progress": "being handled by the department (处置)",
    "resolved": "handled, awaiting on-site verification (处置完成)",
    "verified": "verified on site (核查), awaiting closure",
    "closed": "closed (结案)",
    "cancelled": "cancelled: not a valid case (作废)",
    "parked": "kept on record as not solvable for now (挂账)",
}
ASSET_ATTRIBUTE = {
    "variable": True,
    "code": "asset_code",
    "datatype": "string",
    "required": False,
    "datatype_description": "16-digit municipal asset code (部件编码)",
    "order": 1,
    "description": "The code on the damaged or concerned asset, if any",
}
REQUEST_FIELDS = {
    "type": "object",
    "required": ["service_code", "lat", "long"],
    "properties": {
        "service_code": {"type": "string", "description": "The category code (4 digits)"},
        "lat": {"type": "number"},
        "long": {"type": "number"},
        "description": {"type": "string"},
        "media_url": {"type": "string"},
        "attribute[asset_code]": {"type": "string"},
        "api_key": {"type": "string", "description": "An app key (or Authorization: Bearer)"},
    },
}
POST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {"schema": REQUEST_FIELDS},
            "application/json": {"schema": REQUEST_FIELDS},
        },
    }
}
Endpoint = Callable[..., Awaitable[Any]]
MAX_REQUESTS = 1000
MAX_BODY = 1024 * 1024
DEFAULT_WINDOW = timedelta(days=90)


def both(path: str, response_model: Any) -> Callable[[Endpoint], Endpoint]:
    """Register a GET handler at ``path`` and at ``path.json``, answering ``response_model``."""

    def register(func: Endpoint) -> Endpoint:
        summary = (func.__doc__ or "").splitlines()[0]
        documented = router.get(path + ".json", summary=summary, response_model=response_model)
        return documented(
            router.get(path, response_model=response_model, include_in_schema=False)(func)
        )

    return register


@both("/discovery", Discovery)
async def discovery(request: Request) -> dict[str, Any]:
    """GeoReport v2 discovery: where the endpoint is and what it speaks."""
    base = public_base_url(request) + router.prefix + "/"
    return {
        "changeset": "2026-01-01T00:00:00Z",
        "contact": "CityHex operator",
        "key_service": "API keys with the app role: cityhex keys create --role app",
        "endpoints": [
            {
                "specification": "http://wiki.open311.org/GeoReport_v2",
                "url": base,
                "changeset": "2026-01-01T00:00:00Z",
                "type": "production",
                "formats": ["application/json"],
            }
        ],
    }


@both("/services", list[Service])
async def services(engine: Engine) -> list[dict[str, Any]]:
    """The services: one per incident category."""
    async with engine.connect() as conn:
        records = await list_categories(conn)
    return [
        {
            "service_code": r.code,
            "service_name": f"{r.name} ({r.name_en})",
            "description": f"{r.name_en}: handled by "
            f"{r.department_name_en or r.department_name} "
            f"within {r.time_limit_hours:g} working hours",
            "metadata": True,
            "type": "realtime",
            "keywords": r.name_en.lower().replace(" ", ","),
            "group": r.major_name,
        }
        for r in records
    ]


@router.get(
    "/services/{code}.json",
    summary="A service definition: its attributes",
    response_model=ServiceDefinition,
)
async def service_definition(code: str, engine: Engine) -> dict[str, Any]:
    """The attributes a request for ``code`` may carry."""
    async with engine.connect() as conn:
        record = await get_category_record(conn, code)
    return {"service_code": record.code, "attributes": [ASSET_ATTRIBUTE]}


def as_request(
    incident: Incident, departments: dict[int, str], exact: bool, photo_url: str | None = None
) -> dict[str, Any]:
    """A case as a GeoReport service request: as reported when ``exact`` (a caller with a
    key), else at its cell's centre with phone numbers, ID numbers and plates masked in the
    description. ``media_url`` is ``photo_url`` (its report photo, for a caller with a key)
    or else the first photo URL the report carried."""
    lon, lat = incident.lon, incident.lat
    if not exact and incident.h3:
        lat, lon = h3.cell_to_latlng(h3.int_to_str(incident.h3))
    return {
        "service_request_id": str(incident.id),
        "status": "closed" if incident.status in CLOSED else "open",
        "status_notes": STATUS_NOTES[incident.status],
        "service_code": incident.category_code,
        "description": incident.description if exact else scrub(incident.description),
        "agency_responsible": departments.get(incident.department_id or 0),
        "service_notice": None,
        "requested_datetime": incident.reported_at.isoformat(),
        "updated_datetime": incident.updated_at.isoformat(),
        "expected_datetime": incident.deadline.isoformat() if incident.deadline else None,
        "address": None,
        "address_id": None,
        "zipcode": None,
        "lat": lat,
        "long": lon,
        "media_url": photo_url or (incident.photos[0] if incident.photos else None),
    }


async def photo_urls(
    request: Request, conn: AsyncConnection, cases: list[Incident], exact: bool
) -> dict[int, str]:
    """The absolute URL of each case's report photo (``layers.attachments``), for a caller
    with a key (anonymous callers may not fetch case photos, so they get none)."""
    if not exact or not cases:
        return {}
    found = await report_photos(conn, [c.id for c in cases])
    base = public_base_url(request)
    return {case: f"{base}/incidents/{case}/attachments/{photo}" for case, photo in found.items()}


def _date(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(
            f"{name} {value!r} is not an ISO 8601 time", code=f"invalid_{name}"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _ids(value: str | None) -> list[int]:
    ids = [v.strip() for v in (value or "").split(",") if v.strip()]
    if not all(v.isdigit() and int(v) <= BIGINT_MAX for v in ids):
        raise BadRequest("service_request_id must be a comma list of ids", code="invalid_id")
    return [int(v) for v in ids]


def request_query(
    ids: str | None,
    service_code: str | None,
    start: str | None,
    end: str | None,
    status: str | None,
) -> IncidentQuery:
    """The list query for a GeoReport requests search (default: the last 90 days)."""
    query = IncidentQuery(
        ids=_ids(ids),
        categories=[c.strip() for c in (service_code or "").split(",") if c.strip()],
        reported_from=_date(start, "start_date"),
        reported_to=_date(end, "end_date"),
        sort="newest",
        limit=MAX_REQUESTS,
    )
    if not query.ids and query.reported_from is None and query.reported_to is None:
        query.reported_from = datetime.now(UTC) - DEFAULT_WINDOW
    wanted = {s.strip() for s in (status or "").split(",") if s.strip()}
    if wanted - {"open", "closed"}:
        raise BadRequest("status must be open, closed or both", code="invalid_status")
    if wanted == {"open"}:
        query.statuses = [s for s in wf.STATES if s not in CLOSED]
    elif wanted == {"closed"}:
        query.statuses = list(CLOSED)
    return query


@both("/requests", list[ServiceRequest])
async def requests(
    request: Request,
    caller: Caller,
    engine: Engine,
    service_request_id: str | None = None,
    service_code: str | None = None,
    start_date: str | None = None,
    end_date: str | None = None,
    status: str | None = Query(None, description="open, closed"),
) -> list[dict[str, Any]]:
    """Service requests, newest first (at most 1000; the last 90 days unless dates are given)."""
    query = request_query(service_request_id, service_code, start_date, end_date, status)
    exact = caller.role != ANONYMOUS
    if exact:  # keyed callers get exact cases: those of their scope only
        query.visible_to = actor_of(caller)
    async with engine.connect() as conn:
        page = await list_incidents(conn, query)
        departments = await department_names(conn)
        photos = await photo_urls(request, conn, page.items, exact)
    return [as_request(i, departments, exact, photos.get(i.id)) for i in page.items]


@router.get(
    "/requests/{request_id}.json",
    summary="One service request",
    response_model=list[ServiceRequest],
)
async def one_request(
    request_id: Annotated[int, Path(ge=1, le=BIGINT_MAX)],
    request: Request,
    caller: Caller,
    engine: Engine,
) -> list[dict[str, Any]]:
    """The request ``request_id`` as a one-element list (as GeoReport v2 has it)."""
    exact = caller.role != ANONYMOUS
    async with engine.connect() as conn:
        query = IncidentQuery(ids=[request_id], limit=1)
        if exact:  # a case outside a keyed caller's scope: not found
            query.visible_to = actor_of(caller)
        page = await list_incidents(conn, query)
        departments = await department_names(conn)
        photos = await photo_urls(request, conn, page.items, exact)
    if not page.items:
        raise NotFound(f"no service request {request_id}", code="unknown_request")
    return [as_request(page.items[0], departments, exact, photos.get(request_id))]


async def poster(request: Request, authorization: str | None, fields: dict[str, Any]) -> Principal:
    """The caller of a POST: the Bearer key, or the GeoReport ``api_key`` field."""
    api_key = fields.get("api_key")
    if api_key and authorization is None:
        authorization = f"Bearer {api_key}"
    principal = await principal_from(request, authorization)
    if principal.role == ANONYMOUS:
        raise Unauthorized(
            "posting service requests needs an app key (api_key or Authorization: Bearer)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if principal.role not in ("app", "admin"):
        raise Forbidden("posting service requests needs an app key", code="app_key_required")
    return principal


async def post_fields(request: Request) -> dict[str, Any]:
    """The POST's fields, from a form (as GeoReport v2 has it) or a JSON object."""
    if media_type(request) == JSON:
        body = parse_json(await read_bytes(request, MAX_BODY))
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object", code="invalid_json")
        return body
    return dict(await request.form())


def report_of(fields: dict[str, Any]) -> ReportInput:
    """The report a GeoReport POST describes."""
    if fields.get("lat") in (None, "") or fields.get("long") in (None, ""):
        raise BadRequest(
            "lat and long are required (addresses are not geocoded)", code="no_location"
        )
    media = fields.get("media_url")
    try:
        return ReportInput(
            category=str(fields.get("service_code") or ""),
            description=fields.get("description"),
            lon=float(fields["long"]),
            lat=float(fields["lat"]),
            asset_code=fields.get("attribute[asset_code]") or None,
            photos=[media] if media else [],
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise BadRequest(f"invalid service request: {problems}", code="invalid_request") from None
    except (ValueError, TypeError):
        raise BadRequest("lat and long must be numbers", code="invalid_location") from None


@router.post(
    "/requests.json",
    status_code=201,
    summary="Post a service request (app key)",
    response_model=list[PostedRequest],
    openapi_extra=POST_BODY,
    responses=errors(413, 422),
)
async def post_request(
    request: Request, authorization: Authorization, engine: Engine
) -> list[dict[str, Any]]:
    """201 with ``[{service_request_id, service_notice, account_id}]``."""
    fields = await post_fields(request)
    principal = await poster(request, authorization, fields)
    data = report_of(fields)
    async with engine.begin() as conn:
        incident = await report_incident(conn, data, actor_of(principal))
    notice = f"expected by {incident.deadline.isoformat()}" if incident.deadline else None
    return [{"service_request_id": str(incident.id), "service_notice": notice, "account_id": None}]
