"""Incidents over HTTP: report, read, move through the workflow, list.

The logic lives in ``layers.incidents.cases``, ``layers.incidents.transitions`` and
``layers.incidents.lists``; each handler runs one transaction, committed before it answers.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from gis.errors import BadRequest
from layers.grid.lookup import may_read_names
from layers.incidents.cases import (
    BIGINT_MAX,
    INT_MAX,
    CaseId,
    ReportInput,
    attach_report,
    report_incident,
)
from layers.incidents.evaluation import Compare, evaluation
from layers.incidents.evaluation import GroupBy as EvaluationGroupBy
from layers.incidents.lists import IncidentQuery, Page, assignee_me, list_incidents
from layers.incidents.metrics import GroupBy, case_metrics
from layers.incidents.routed import routed_to
from layers.incidents.scope import visible_incident
from layers.incidents.transitions import (
    TransitionInput,
    allowed_actions,
    parse_if_match,
    transition_history,
    transition_incident,
)
from spatial_api.auth import ANONYMOUS
from spatial_api.deps import Caller, Dispatcher, Engine, Reader, ReportLimiter, may_read_cases
from spatial_api.openapi import errors
from spatial_api.proxies import client_address
from spatial_api.routers.incident_common import actor_of, case_body
from spatial_api.schemas.evaluation import Evaluation
from spatial_api.schemas.incidents import (
    AttachedReport,
    Case,
    CaseHistory,
    CaseMetrics,
    CasePage,
)

router = APIRouter(tags=["incidents"])
CaseIdPath = Annotated[int, Path(ge=1, le=BIGINT_MAX, description="the case id")]


class ReportBody(ReportInput):
    """A report; with ``duplicate_of`` it is attached to that open case instead."""

    duplicate_of: CaseId | None = None


@router.post(
    "/incidents",
    status_code=201,
    summary="Report an incident: routed to the cell's inspector and the category's department",
    response_model=Case,
    response_model_exclude_unset=True,
    responses={
        **errors(404, 409, 422, 429),
        200: {"model": Case, "description": "The report was attached to the case it names"},
        202: {
            "model": AttachedReport,
            "description": "The report was attached to the case it names (to a caller who "
            "may not read cases)",
        },
    },
)
async def report(
    body: ReportBody,
    request: Request,
    response: Response,
    principal: Caller,
    engine: Engine,
    limiter: ReportLimiter,
) -> Any:
    """201 with the new case (cell, deadline, possible duplicates) and where it was routed:
    ``district``, ``inspector`` and ``department`` as ``/grid/lookup`` gives them to the
    caller (beside the ``*_id`` numbers; callers who may not read cases get neither the
    inspector nor their id); with ``duplicate_of``, the report is attached to that open
    case: 200 with the case for a caller who may read cases, else 202 ``{"attached": true,
    "incident_id"}`` and, when it cannot be attached, one 422 whatever the reason. Only app
    and admin keys may name a ``sensor_id`` (403 otherwise)."""
    if principal.role == ANONYMOUS:
        await limiter.take(engine, client_address(request))
    actor = actor_of(principal)
    reads = may_read_cases(principal)
    async with engine.begin() as conn:
        if body.duplicate_of is not None:
            case = body.duplicate_of
            incident = await attach_report(conn, case, body, actor, discreet=not reads)
            if not reads:
                return JSONResponse({"attached": True, "incident_id": incident.id}, 202)
            return case_body(response, incident, 200, attached=True)
        incident = await report_incident(conn, body, actor)
        names = may_read_names(principal.role)
        routed = await routed_to(conn, incident, staff=reads, names=names)
    duplicates = [d.as_dict(where=reads) for d in incident.possible_duplicates]
    answer = case_body(response, incident, 201, possible_duplicates=duplicates, **routed)
    if not reads:
        del answer["inspector_id"]
    return answer


def _csv(value: str | None) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def _floats(value: str | None, count: int, name: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        numbers = tuple(float(v) for v in value.split(","))
    except ValueError:
        numbers = ()
    if len(numbers) != count or not all(math.isfinite(n) for n in numbers):
        raise BadRequest(
            f"{name} must be {count} comma-separated finite numbers", code=f"invalid_{name}"
        )
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


@router.get(
    "/incidents",
    summary="List cases: task lists for the mobile app",
    response_model=CasePage,
    response_model_exclude_unset=True,
)
async def list_cases(
    engine: Engine,
    principal: Reader,
    assignee: Literal["me"] | None = Query(None, description="me: the caller's cases"),
    status: str | None = Query(None, description="comma list of statuses"),
    category: str | None = Query(None, description="comma list of category codes"),
    department_id: int | None = Query(None, ge=1, le=INT_MAX),
    inspector_id: int | None = Query(None, ge=1, le=INT_MAX),
    bbox: str | None = Query(None, description="minlon,minlat,maxlon,maxlat"),
    near: str | None = Query(None, description="lon,lat: adds distance_m"),
    overdue: bool | None = None,
    sort: Literal["deadline", "distance", "newest"] = "deadline",
    limit: int = Query(50, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=INT_MAX),
) -> dict[str, Any]:
    """One page of the cases the caller may see (its districts, departments, or an
    inspector's own cases), with the total, each with its overdue flag."""
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
        visible_to=actor_of(principal),
    )
    async with engine.begin() as conn:
        if assignee == "me":
            for name, value in (await assignee_me(conn, actor_of(principal))).items():
                setattr(query, name, value)
        page = await list_incidents(conn, query)
    return page_body(page)


@router.get(
    "/incidents/metrics",
    summary="Case metrics: 结案率, 按期结案率, 返工率, score",
    response_model=CaseMetrics,
)
async def metrics(
    engine: Engine,
    principal: Reader,
    start: datetime | None = Query(
        None, alias="from", description="period start (default: to - 30 days)"
    ),
    end: datetime | None = Query(
        None, alias="to", description="period end, exclusive (default: now)"
    ),
    group_by: GroupBy | None = None,
) -> dict[str, Any]:
    """Counts, rates, time to close and the department score of the period, per group,
    over the cases the caller may see."""
    end = end or datetime.now(UTC)
    start = start or end - timedelta(days=30)
    async with engine.connect() as conn:
        result = await case_metrics(conn, start, end, group_by, actor_of(principal))
    return {
        "from": result.start.isoformat(),
        "to": result.end.isoformat(),
        "group_by": result.group_by,
        "groups": [g.as_dict() for g in result.groups],
        "total": result.total.as_dict(),
    }


@router.get(
    "/incidents/evaluation",
    summary="Evaluation (评价): 按时立案率, 按时派遣率, 准确派遣率, 按期处置率, 按期核查率, "
    "延期率, 返工率, 自行处置, stage times, 综合指标值 and grade, 同比/环比",
    response_model=Evaluation,
    response_model_exclude_unset=True,
)
async def evaluation_of_period(
    engine: Engine,
    principal: Dispatcher,
    start: datetime | None = Query(
        None, alias="from", description="period start (default: to - 30 days)"
    ),
    end: datetime | None = Query(
        None, alias="to", description="period end, exclusive (default: now)"
    ),
    group_by: EvaluationGroupBy = "department",
    compare: Compare | None = Query(
        None, description="yoy (同比): a year before; mom (环比): the period just before"
    ),
) -> dict[str, Any]:
    """The figures of the period per department, district or inspector and in total, over
    the cases the caller may see (a scoped dispatcher: its districts or departments); with
    ``compare``, the previous period's figures and the change. Dispatchers and admins."""
    end = end or datetime.now(UTC)
    start = start or end - timedelta(days=30)
    async with engine.connect() as conn:
        result = await evaluation(conn, start, end, group_by, compare, actor_of(principal))
    return result.as_dict()


@router.get(
    "/incidents/{incident_id}",
    summary="One case, with its version as ETag",
    response_model=Case,
    response_model_exclude_unset=True,
)
async def read_case(
    incident_id: CaseIdPath, response: Response, engine: Engine, principal: Reader
) -> dict[str, Any]:
    """The case and the actions the caller may take on it now; the ETag is the version a
    transition must name in If-Match. 403 for a case outside the caller's scope."""
    async with engine.connect() as conn:
        actor = actor_of(principal)
        incident = await visible_incident(conn, incident_id, actor)
        actions = await allowed_actions(conn, incident, actor)
    return case_body(
        response, incident, allowed_actions=[{"action": a.name, "label": a.label} for a in actions]
    )


@router.post(
    "/incidents/{incident_id}/transitions",
    summary="Take a workflow action on a case (If-Match: its version)",
    response_model=Case,
    response_model_exclude_unset=True,
    responses=errors(409, 422),
)
async def transition(
    incident_id: CaseIdPath,
    body: TransitionInput,
    response: Response,
    engine: Engine,
    principal: Reader,
    if_match: str | None = Header(None),
) -> dict[str, Any]:
    """The case after the action. 428 without If-Match, 412 on a stale version, 409 listing
    the allowed actions when the action does not fit the state, 403 when it is not the
    caller's to take."""
    version = parse_if_match(if_match)
    async with engine.begin() as conn:
        incident = await transition_incident(conn, incident_id, body, actor_of(principal), version)
    return case_body(response, incident)


@router.get(
    "/incidents/{incident_id}/transitions", summary="The case's history", response_model=CaseHistory
)
async def history(incident_id: CaseIdPath, engine: Engine, principal: Reader) -> dict[str, Any]:
    """Every step of the case: who, when, from, to, note."""
    async with engine.connect() as conn:
        steps = await transition_history(conn, incident_id, actor_of(principal))
    return {"incident_id": incident_id, "transitions": steps}
