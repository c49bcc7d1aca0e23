"""Lists of cases: the inspector's and the department's task lists, Open311 queries.

Filters combine (status, category, assignee, box, time, ids, overdue); the order is by
deadline, by distance from a point, or newest first; pages come with the total count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gis.errors import BadRequest
from layers.incidents import workflow as wf
from layers.incidents.cases import COLUMNS, Actor, Incident, incident_from_row
from layers.incidents.scope import visible_sql
from layers.incidents.transitions import user_department

Sort = Literal["deadline", "distance", "newest"]
MAX_LIMIT = 1000


@dataclass
class IncidentQuery:
    """What to list: every field set narrows the list."""

    statuses: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    inspector_id: int | None = None
    department_id: int | None = None
    bbox: tuple[float, float, float, float] | None = None
    near: tuple[float, float] | None = None
    reported_from: datetime | None = None
    reported_to: datetime | None = None
    overdue: bool | None = None
    sort: Sort = "deadline"
    limit: int = 50
    offset: int = 0
    visible_to: Actor | None = None
    """The caller whose scope the list keeps to (None: every case)."""


@dataclass(frozen=True)
class Page:
    """One page of cases, the total matched, and each case's distance when near was given."""

    items: list[Incident]
    total: int
    limit: int
    offset: int
    distances_m: list[float | None]


async def assignee_me(conn: AsyncConnection, actor: Actor) -> dict[str, int]:
    """The filter for "my cases": an inspector's cells, or a department user's department."""
    if actor.user_id is not None and actor.role == "inspector":
        return {"inspector_id": actor.user_id}
    if actor.user_id is not None and actor.role == wf.DEPARTMENT:
        department = await user_department(conn, actor.user_id)
        if department is not None:
            return {"department_id": department}
    raise BadRequest(
        "assignee=me needs an inspector key, or a department staff key, that speaks for a user",
        code="no_assignee",
    )


def _check(query: IncidentQuery) -> None:
    unknown = set(query.statuses) - set(wf.STATES)
    if unknown:
        raise BadRequest(
            f"unknown status {', '.join(sorted(unknown))}; one of {', '.join(wf.STATES)}",
            code="unknown_status",
        )
    if not all(c.isascii() and c.isdigit() and len(c) == 4 for c in query.categories):
        raise BadRequest("categories are 4-digit codes", code="invalid_category")
    if query.sort == "distance" and query.near is None:
        raise BadRequest("sort=distance needs near=lon,lat", code="near_required")
    if not 1 <= query.limit <= MAX_LIMIT or query.offset < 0:
        raise BadRequest(f"limit must be 1..{MAX_LIMIT} and offset >= 0", code="invalid_paging")


def _where(query: IncidentQuery) -> tuple[list[str], dict[str, Any]]:
    clauses: list[str] = []
    params: dict[str, Any] = {}
    simple = {
        "i.status = ANY(:statuses)": ("statuses", query.statuses or None),
        "i.category_code = ANY(:categories)": ("categories", query.categories or None),
        "i.id = ANY(:ids)": ("ids", query.ids or None),
        "i.inspector_id = :inspector_id": ("inspector_id", query.inspector_id),
        "i.department_id = :department_id": ("department_id", query.department_id),
        "i.reported_at >= :reported_from": ("reported_from", query.reported_from),
        "i.reported_at < :reported_to": ("reported_to", query.reported_to),
    }
    for clause, (name, value) in simple.items():
        if value is not None:
            clauses.append(clause)
            params[name] = value
    if query.bbox is not None:
        clauses.append("i.geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)")
        params.update(zip(("x0", "y0", "x1", "y1"), query.bbox, strict=True))
    if query.overdue is not None:
        late = f"(i.deadline < now() AND i.status NOT IN {tuple(sorted(wf.CLOCK_STOPPED))})"
        clauses.append(late if query.overdue else f"NOT coalesce({late}, false)")
    if query.visible_to is not None:
        visible, scope_params = visible_sql(query.visible_to)
        clauses.append(visible)
        params.update(scope_params)
    return clauses, params


ORDER = {
    "deadline": "i.deadline ASC NULLS LAST, i.id",
    "distance": "i.geom_3857 <-> ST_Transform(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 3857)",
    "newest": "i.reported_at DESC, i.id DESC",
}


async def list_incidents(conn: AsyncConnection, query: IncidentQuery) -> Page:
    """One page of the cases that match ``query``, in its order."""
    _check(query)
    clauses, params = _where(query)
    distance = "NULL::float8"
    if query.near is not None:
        params["lon"], params["lat"] = query.near
        distance = (
            "ST_Distance(i.geom::geography, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography)"
        )
    where = " AND ".join(clauses) or "true"
    rows = (
        await conn.execute(
            text(
                f"SELECT {COLUMNS}, {distance} AS distance_m, count(*) OVER () AS total "
                f"FROM incidents i WHERE {where} ORDER BY {ORDER[query.sort]} "
                "LIMIT :limit OFFSET :offset"
            ),
            {**params, "limit": query.limit, "offset": query.offset},
        )
    ).all()
    total = rows[0][-1] if rows else await _count(conn, where, params)
    return Page(
        items=[incident_from_row(r) for r in rows],
        total=total,
        limit=query.limit,
        offset=query.offset,
        distances_m=[r[-2] for r in rows],
    )


async def _count(conn: AsyncConnection, where: str, params: dict[str, Any]) -> int:
    sql = f"SELECT count(*) FROM incidents i WHERE {where}"
    return (await conn.execute(text(sql), params)).scalar_one()
