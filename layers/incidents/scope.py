"""Which cases a caller may see and act on: least privilege beside the role.

A caller limited to districts sees only the cases of those districts, one limited to
departments only the cases those departments handle, and an inspector key that speaks for a
user only the cases routed to that inspector. Lists and metrics leave the other cases out;
reading one of them, or acting on it, is Forbidden.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gis.errors import Forbidden
from layers.db.scope import Visibility
from layers.incidents.cases import Actor, Incident, get_incident
from layers.incidents.events import Event


@dataclass(frozen=True)
class Limit:
    """One condition a visible case meets (SQL over the case alias ``i``), and the error
    code and message of a case that does not."""

    sql: str
    code: str
    refusal: str


def limits(actor: Actor) -> tuple[list[Limit], dict[str, Any]]:
    """The conditions the cases visible to ``actor`` meet, and their parameters."""
    found: list[Limit] = []
    params: dict[str, Any] = {}
    scope = actor.scope
    if scope.districts is not None:
        params["scope_districts"] = sorted(scope.districts)
        found.append(
            Limit(
                "i.district_id IN (SELECT id FROM districts WHERE code = ANY(:scope_districts))",
                "out_of_scope",
                f"lies outside your districts ({', '.join(params['scope_districts']) or 'none'})",
            )
        )
    if scope.departments is not None:
        params["scope_departments"] = sorted(scope.departments)
        found.append(
            Limit(
                "i.department_id IN "
                "(SELECT id FROM departments WHERE code = ANY(:scope_departments))",
                "out_of_scope",
                "is handled by none of your departments "
                f"({', '.join(params['scope_departments']) or 'none'})",
            )
        )
    if actor.role == "inspector" and actor.user_id is not None:
        params["scope_inspector"] = actor.user_id
        found.append(
            Limit(
                "i.inspector_id = :scope_inspector",
                "not_your_case",
                f"is not routed to inspector {actor.user_id}",
            )
        )
    return found, params


def visible_sql(actor: Actor) -> tuple[str, dict[str, Any]]:
    """A condition on the case alias ``i`` that holds for the cases ``actor`` may see."""
    found, params = limits(actor)
    return " AND ".join(f"({limit.sql})" for limit in found) or "true", params


async def check_visible(conn: AsyncConnection, incident_id: int, actor: Actor) -> None:
    """Forbidden, saying why, when case ``incident_id`` lies outside what ``actor`` may see."""
    found, params = limits(actor)
    if not found:
        return
    columns = ", ".join(f"coalesce({limit.sql}, false)" for limit in found)
    row = (
        await conn.execute(
            text(f"SELECT {columns} FROM incidents i WHERE i.id = :id"),
            {**params, "id": incident_id},
        )
    ).one()
    for limit, holds in zip(found, row, strict=True):
        if not holds:
            raise Forbidden(f"incident {incident_id} {limit.refusal}", code=limit.code)


async def visible_incident(
    conn: AsyncConnection, incident_id: int, actor: Actor, *, lock: bool = False
) -> Incident:
    """The case ``incident_id`` (locked for update if asked) if ``actor`` may see it:
    NotFound when there is none, Forbidden when it lies outside the actor's scope."""
    incident = await get_incident(conn, incident_id, lock=lock)
    await check_visible(conn, incident_id, actor)
    return incident


@dataclass(frozen=True)
class EventScope:
    """Which incident events a caller may receive: those of the cases it may see (the same
    limits as ``limits``, with district and department codes resolved to ids)."""

    districts: frozenset[int] | None = None
    departments: frozenset[int] | None = None
    inspector_id: int | None = None

    def allows(self, event: Event) -> bool:
        """Whether the event's case lies within what the caller may see."""
        return (
            (self.districts is None or event.district_id in self.districts)
            and (self.departments is None or event.department_id in self.departments)
            and (self.inspector_id is None or event.inspector_id == self.inspector_id)
        )


async def event_scope(conn: AsyncConnection, actor: Actor) -> EventScope:
    """The events ``actor`` may receive."""
    visible = Visibility.of(actor.role, actor.user_id, actor.scope)

    async def ids(table: str, codes: frozenset[str] | None) -> frozenset[int] | None:
        if codes is None:
            return None
        rows = await conn.execute(
            text(f"SELECT id FROM {table} WHERE code = ANY(:codes)"), {"codes": sorted(codes)}
        )
        return frozenset(r[0] for r in rows)

    return EventScope(
        await ids("districts", visible.districts),
        await ids("departments", visible.departments),
        visible.inspector_id,
    )
