"""Incidents over HTTP: report, read, move through the workflow, list.

The logic lives in ``layers.incidents``, ``layers.incident_transitions`` and
``layers.incident_lists``; each handler runs one transaction, committed before it answers.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response

from gis.errors import BadRequest
from layers.incident_lists import IncidentQuery, Page, assignee_me, list_incidents
from layers.incident_transitions import (
    TransitionInput,
    parse_if_match,
    transition_history,
    transition_incident,
)
from layers.incidents import (
    Actor,
    Incident,
    ReportInput,
    attach_report,
    get_incident,
    report_incident,
)
from spatial_api.auth import ANONYMOUS, Principal, current_principal, require_role
from spatial_api.rate_limit import RateLimiter, public_report_limiter

router = APIRouter(tags=["incidents"])
READERS = ("app", "inspector", "editor", "dispatcher")


def actor_of(principal: Principal) -> Actor:
    """The workflow's view of the caller."""
    return Actor(role=principal.role, name=principal.actor, user_id=principal.inspector_id)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response rendered with orjson."""
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


def incident_response(incident: Incident, status: int = 200, **extra: Any) -> Response:
    """The case as JSON with its version as ETag."""
    return json_response(
        {**incident.as_dict(), **extra},
        status,
        headers={"ETag": f'"{incident.version}"', "Location": f"/incidents/{incident.id}"},
    )


def limiter(request: Request) -> RateLimiter:
    """The process's limiter of anonymous reports."""
    state = request.app.state
    if not hasattr(state, "public_report_limiter"):
        state.public_report_limiter = public_report_limiter()
    return state.public_report_limiter


class ReportBody(ReportInput):
    """A report; with ``duplicate_of`` it is attached to that open case instead."""

    duplicate_of: int | None = None


@router.post(
    "/incidents",
    status_code=201,
    summary="Report an incident: routed to the cell's inspector and the category's department",
)
async def report(
    body: ReportBody, request: Request, principal: Principal = Depends(current_principal)
) -> Response:
    """201 with the new case (cell, inspector, department, deadline, possible duplicates);
    200 with the existing case when the report is attached to it (``duplicate_of``)."""
    if principal.role == ANONYMOUS:
        limiter(request).take(request.client.host if request.client else "unknown")
    actor = actor_of(principal)
    async with request.app.state.engine.begin() as conn:
        if body.duplicate_of is not None:
            incident = await attach_report(conn, body.duplicate_of, body, actor)
            return incident_response(incident, 200, attached=True)
        incident = await report_incident(conn, body, actor)
    duplicates = [d.as_dict() for d in incident.possible_duplicates]
    return incident_response(incident, 201, possible_duplicates=duplicates)


def _csv(value: str | None) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def _floats(value: str | None, count: int, name: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        numbers = tuple(float(v) for v in value.split(","))
    except ValueError:
        numbers = ()
    if len(numbers) != count:
        raise BadRequest(f"{name} must be {count} comma-separated numbers", code=f"invalid_{name}")
    return numbers


def page_body(page: Page) -> dict[str, Any]:
    """A page of cases as JSON."""
    items = []
    for incident, distance in zip(page.items, page.distances_m, strict=True):
        item = incident.as_dict()
        if distance is not None:
            item["distance_m"] = round(distance, 1)
        items.append(item)
    more = page.offset + len(items) < page.total
    return {
        "items": items,
        "total": page.total,
        "limit": page.limit,
        "offset": page.offset,
        "next_offset": page.offset + len(items) if more else None,
    }


@router.get("/incidents", summary="List cases: task lists for the mobile app")
async def list_cases(
    request: Request,
    assignee: Literal["me"] | None = Query(None, description="me: the caller's cases"),
    status: str | None = Query(None, description="comma list of statuses"),
    category: str | None = Query(None, description="comma list of category codes"),
    department_id: int | None = None,
    inspector_id: int | None = None,
    bbox: str | None = Query(None, description="minlon,minlat,maxlon,maxlat"),
    near: str | None = Query(None, description="lon,lat: adds distance_m"),
    overdue: bool | None = None,
    sort: Literal["deadline", "distance", "newest"] = "deadline",
    limit: int = Query(50, ge=1, le=1000),
    offset: int = Query(0, ge=0),
    principal: Principal = Depends(require_role(*READERS)),
) -> Response:
    """One page of cases with the total, each with its overdue flag."""
    query = IncidentQuery(
        statuses=_csv(status),
        categories=_csv(category),
        department_id=department_id,
        inspector_id=inspector_id,
        bbox=_floats(bbox, 4, "bbox"),  # type: ignore[arg-type]
        near=_floats(near, 2, "near"),  # type: ignore[arg-type]
        overdue=overdue,
        sort=sort,
        limit=limit,
        offset=offset,
    )
    async with request.app.state.engine.begin() as conn:
        if assignee == "me":
            for name, value in (await assignee_me(conn, actor_of(principal))).items():
                setattr(query, name, value)
        page = await list_incidents(conn, query)
    return json_response(page_body(page))


@router.get("/incidents/{incident_id}", summary="One case, with its version as ETag")
async def read_case(
    incident_id: int, request: Request, _: Principal = Depends(require_role(*READERS))
) -> Response:
    """The case; its ETag is the version a transition must name in If-Match."""
    async with request.app.state.engine.connect() as conn:
        incident = await get_incident(conn, incident_id)
    return incident_response(incident)


@router.post(
    "/incidents/{incident_id}/transitions",
    summary="Take a workflow action on a case (If-Match: its version)",
)
async def transition(
    incident_id: int,
    body: TransitionInput,
    request: Request,
    if_match: str | None = Header(None),
    principal: Principal = Depends(require_role(*READERS)),
) -> Response:
    """The case after the action. 428 without If-Match, 412 on a stale version, 409 listing
    the allowed actions when the action does not fit the state, 403 when it is not the
    caller's to take."""
    version = parse_if_match(if_match)
    async with request.app.state.engine.begin() as conn:
        incident = await transition_incident(conn, incident_id, body, actor_of(principal), version)
    return incident_response(incident)


@router.get("/incidents/{incident_id}/transitions", summary="The case's history")
async def history(
    incident_id: int, request: Request, _: Principal = Depends(require_role(*READERS))
) -> Response:
    """Every step of the case: who, when, from, to, note."""
    async with request.app.state.engine.connect() as conn:
        steps = await transition_history(conn, incident_id)
    return json_response({"incident_id": incident_id, "transitions": steps})


api = APIRouter()
"""Every incident route, in matching order (fixed paths before /incidents/{id})."""
api.include_router(router)
