"""Moving a case through the workflow: one checked, recorded step at a time.

``transition_incident`` locks the case, checks the caller's version (If-Match), checks the
action against the state machine of ``layers.incidents.workflow`` and the caller's role and
scope, applies the action's effects, and records the step, all in one transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gis.errors import BadRequest, Forbidden, PreconditionFailed, PreconditionRequired
from layers.incidents import workflow as wf
from layers.incidents.cases import (
    COLUMNS,
    Actor,
    Incident,
    RowId,
    Text,
    incident_from_row,
)
from layers.incidents.cases import record_transition as record
from layers.incidents.scope import visible_incident
from layers.incidents.working_time import deadline_after


class TransitionInput(BaseModel):
    """An action on a case, with its note and the action's own fields."""

    model_config = {"extra": "forbid"}

    action: str = Field(max_length=32)
    note: Text | None = Field(None, max_length=4000)
    department_id: RowId | None = Field(None, description="dispatch / redispatch: the department")
    hours: float | None = Field(
        None, ge=0.01, le=2000, description="request_extension: working hours asked for"
    )


@dataclass
class Effect:
    """What an action changes besides the status: columns of the case, details recorded."""

    columns: dict[str, Any]
    details: dict[str, Any]


Handler = Callable[[AsyncConnection, Incident, TransitionInput, Actor, datetime], Awaitable[Effect]]


def parse_if_match(value: str | None) -> int | None:
    """The version named by an If-Match header (``"3"``, ``W/"3"`` or ``3``), None without one.

    BadRequest when the header names no version.
    """
    if value is None or not value.strip():
        return None
    tag = value.strip().removeprefix("W/").strip('"')
    if not tag.isdigit():
        raise BadRequest(f"If-Match {value!r} is not a case version", code="invalid_if_match")
    return int(tag)


async def pending_extension(conn: AsyncConnection, incident_id: int) -> dict[str, Any] | None:
    """The case's pending extension request (id, hours), if any."""
    row = (
        await conn.execute(
            text(
                "SELECT id, hours FROM incident_extensions "
                "WHERE incident_id = :id AND status = 'pending'"
            ),
            {"id": incident_id},
        )
    ).first()
    return {"id": row[0], "hours": float(row[1])} if row else None


async def allowed_actions(
    conn: AsyncConnection, incident: Incident, actor: Actor
) -> list[wf.Action]:
    """The actions ``actor`` may take on the case now (the buttons the app shows)."""
    pending = await pending_extension(conn, incident.id) is not None
    actions = [wf.ACTIONS[name] for name in wf.actions_for(incident.status, actor.role, pending)]
    return [a for a in actions if not a.reporter_only or is_reporter(incident, actor)]


def is_reporter(incident: Incident, actor: Actor) -> bool:
    """Whether ``actor`` reported the case as an inspector (the name recorded as reporter)."""
    return incident.source == "inspector" and incident.reporter == actor.name


async def check_scope(conn: AsyncConnection, incident: Incident, actor: Actor) -> None:
    """Forbidden when a key that speaks for a user acts on a case that is not that user's:
    an inspector verifies only their own cases, department staff only their department's."""
    if actor.user_id is None:
        return
    if actor.role == "inspector":
        if incident.inspector_id is not None and incident.inspector_id != actor.user_id:
            raise Forbidden(
                f"incident {incident.id} is inspector {incident.inspector_id}'s to verify",
                code="not_your_case",
            )
    elif actor.role == wf.DEPARTMENT:
        department = await user_department(conn, actor.user_id)
        if department is not None and department != incident.department_id:
            raise Forbidden(
                f"incident {incident.id} is department {incident.department_id}'s",
                code="not_your_case",
            )


async def user_department(conn: AsyncConnection, user_id: int) -> int | None:
    """The department of user ``user_id`` (None when they belong to none)."""
    return (
        await conn.execute(text("SELECT department_id FROM users WHERE id = :id"), {"id": user_id})
    ).scalar()


async def checked_department(conn: AsyncConnection, department_id: int) -> int:
    """``department_id`` if such a department exists; BadRequest otherwise."""
    found = (
        await conn.execute(text("SELECT 1 FROM departments WHERE id = :id"), {"id": department_id})
    ).scalar()
    if not found:
        raise BadRequest(f"no department {department_id}", code="unknown_department")
    return department_id


async def _dispatch(
    conn: AsyncConnection, incident: Incident, data: TransitionInput, actor: Actor, at: datetime
) -> Effect:
    department = await checked_department(conn, data.department_id or incident.department_id)
    return Effect({"dispatched_at": at, "department_id": department}, {"department_id": department})


async def _redispatch(
    conn: AsyncConnection, incident: Incident, data: TransitionInput, actor: Actor, at: datetime
) -> Effect:
    if data.department_id is None:
        raise BadRequest(
            "redispatch needs the department_id to send the case to", code="department_required"
        )
    return await _dispatch(conn, incident, data, actor, at)


async def _hand_back(
    conn: AsyncConnection, incident: Incident, data: TransitionInput, actor: Actor, at: datetime
) -> Effect:
    if not (data.note or "").strip():
        raise BadRequest(
            "hand_back needs a note saying why the case is not yours", code="note_required"
        )
    return Effect({}, {"department_id": incident.department_id})


async def _request_extension(
    conn: AsyncConnection, incident: Incident, data: TransitionInput, actor: Actor, at: datetime
) -> Effect:
    if data.hours is None:
        raise BadRequest(
            "request_extension needs the working hours asked for", code="hours_required"
        )
    extension = (
        await conn.execute(
            text(
                "INSERT INTO incident_extensions (incident_id, hours, reason, requested_by,"
                " requested_at) VALUES (:id, :hours, :reason, :actor, :at) RETURNING id"
            ),
            {
                "id": incident.id,
                "hours": data.hours,
                "reason": data.note,
                "actor": actor.name,
                "at": at,
            },
        )
    ).scalar_one()
    return Effect({}, {"extension_id": extension, "hours": data.hours})


async def _decide_extension(
    conn: AsyncConnection, incident: Incident, actor: Actor, at: datetime, approve: bool
) -> Effect:
    pending = await pending_extension(conn, incident.id)
    assert pending is not None  # the state machine admits the action only with one pending
    deadline = incident.deadline
    if approve and deadline is not None:
        deadline = await deadline_after(conn, deadline, pending["hours"])
    await conn.execute(
        text(
            "UPDATE incident_extensions SET status = :status, decided_by = :actor,"
            " decided_at = :at, deadline_before = :before, deadline_after = :after"
            " WHERE id = :id"
        ),
        {
            "status": "approved" if approve else "rejected",
            "actor": actor.name,
            "at": at,
            "before": incident.deadline,
            "after": deadline,
            "id": pending["id"],
        },
    )
    details = {"extension_id": pending["id"], "hours": pending["hours"]}
    return Effect({"deadline": deadline} if approve else {}, details)


async def _approve_extension(
    conn: AsyncConnection, incident: Incident, data: TransitionInput, actor: Actor, at: datetime
) -> Effect:
    return await _decide_extension(conn, incident, actor, at, approve=True)


async def _reject_extension(
    conn: AsyncConnection, incident: Incident, data: TransitionInput, actor: Actor, at: datetime
) -> Effect:
    return await _decide_extension(conn, incident, actor, at, approve=False)


def stamp(column: str) -> Handler:
    """A handler that sets ``column`` to the moment of the action."""

    async def handler(
        conn: AsyncConnection, incident: Incident, data: TransitionInput, actor: Actor, at: datetime
    ) -> Effect:
        return Effect({column: at}, {})

    return handler


async def _rework(
    conn: AsyncConnection, incident: Incident, data: TransitionInput, actor: Actor, at: datetime
) -> Effect:
    return Effect({"rework_count": incident.rework_count + 1}, {})


async def _self_close(
    conn: AsyncConnection, incident: Incident, data: TransitionInput, actor: Actor, at: datetime
) -> Effect:
    """自行处置: only the inspector who reported the case, with a note, on a case with a photo."""
    if not is_reporter(incident, actor):
        raise Forbidden(
            f"only the inspector who reported incident {incident.id} may close it on the spot",
            code="not_your_report",
        )
    if not (data.note or "").strip():
        raise BadRequest(
            "self_close needs a note saying what was done on the spot", code="note_required"
        )
    if not incident.photos and not await has_photo_attachment(conn, incident.id):
        raise BadRequest(
            "self_close needs a photo: report the case with photo URLs or upload one "
            "(POST /incidents/{id}/attachments, stage report) first",
            code="photo_required",
        )
    return Effect({"resolved_at": at, "closed_at": at}, {})


PHOTO_STAGES = ("report", "after")
"""The attachment stages whose images count as the case's photo for 自行处置."""


async def has_photo_attachment(conn: AsyncConnection, incident_id: int) -> bool:
    """Whether the case has an image attachment (not a document) of a stage in PHOTO_STAGES.

    Read from the ``attachments`` table directly: ``layers.attachments`` sits above the
    incidents and checks its uploads against this module, so it cannot be imported here.
    """
    found = await conn.scalar(
        text(
            "SELECT EXISTS (SELECT 1 FROM attachments WHERE incident_id = :i "
            "AND stage = ANY(:stages) AND media_type LIKE 'image/%')"
        ),
        {"i": incident_id, "stages": list(PHOTO_STAGES)},
    )
    return bool(found)


async def _nothing(
    conn: AsyncConnection, incident: Incident, data: TransitionInput, actor: Actor, at: datetime
) -> Effect:
    return Effect({}, {})


HANDLERS: dict[str, Handler] = {
    "register": stamp("registered_at"),
    "dispatch": _dispatch,
    "redispatch": _redispatch,
    "accept": _nothing,
    "hand_back": _hand_back,
    "resolve": stamp("resolved_at"),
    "request_extension": _request_extension,
    "approve_extension": _approve_extension,
    "reject_extension": _reject_extension,
    "verify": _nothing,
    "rework": _rework,
    "close": stamp("closed_at"),
    "self_close": _self_close,
    "cancel": _nothing,
    "park": _nothing,
}
UPDATABLE = (
    "registered_at",
    "dispatched_at",
    "resolved_at",
    "closed_at",
    "deadline",
    "department_id",
    "rework_count",
)


async def withdraw_extension(
    conn: AsyncConnection, incident_id: int, actor: Actor, at: datetime
) -> None:
    """Mark the case's pending extension request withdrawn (the department let the case go)."""
    await conn.execute(
        text(
            "UPDATE incident_extensions SET status = 'withdrawn', decided_by = :actor,"
            " decided_at = :at WHERE incident_id = :id AND status = 'pending'"
        ),
        {"id": incident_id, "actor": actor.name, "at": at},
    )


async def update_case(
    conn: AsyncConnection,
    incident: Incident,
    status: str,
    columns: dict[str, Any],
    at: datetime,
) -> Incident:
    """Store the new status and columns, one version up."""
    sets = "".join(f", {name} = :{name}" for name in columns if name in UPDATABLE)
    row = (
        await conn.execute(
            text(
                f"UPDATE incidents AS i SET status = :status, version = version + 1,"
                f" updated_at = :at{sets} WHERE id = :id RETURNING {COLUMNS}"
            ),
            {"status": status, "at": at, "id": incident.id, **columns},
        )
    ).one()
    return incident_from_row(row)


async def transition_incident(
    conn: AsyncConnection,
    incident_id: int,
    data: TransitionInput,
    actor: Actor,
    if_match: int | None,
    *,
    at: datetime | None = None,
) -> Incident:
    """Take ``data.action`` on the case at version ``if_match``; the case after the step.

    ``at`` is when the step happened (default now; code replaying a recorded history gives it).

    PreconditionRequired (428) without a version, PreconditionFailed (412) when the case has
    moved on, Conflict (409) listing the legal actions when the action does not fit the
    state, Forbidden (403) when it is another role's or another user's case, or lies outside
    the actor's scope.
    """
    incident = await visible_incident(conn, incident_id, actor, lock=True)
    if if_match is None:
        raise PreconditionRequired(
            "a case changes only with If-Match: the version (ETag) it was read at",
            code="if_match_required",
        )
    if if_match != incident.version:
        raise PreconditionFailed(
            f"incident {incident_id} is at version {incident.version}, not {if_match}",
            code="version_mismatch",
            details={"version": incident.version},
            headers={"ETag": f'"{incident.version}"'},
        )
    pending = await pending_extension(conn, incident_id) is not None
    action = wf.check_action(data.action, incident.status, actor.role, pending)
    await check_scope(conn, incident, actor)
    at = at or datetime.now(UTC)
    effect = await HANDLERS[action.name](conn, incident, data, actor, at)
    if action.withdraws_extension and pending:
        await withdraw_extension(conn, incident_id, actor, at)
    updated = await update_case(
        conn, incident, action.next_status(incident.status), effect.columns, at
    )
    await record(
        conn,
        updated,
        action.name,
        incident.status,
        actor,
        data.note,
        at=at,
        details=effect.details or None,
    )
    return updated


async def transition_history(
    conn: AsyncConnection, incident_id: int, viewer: Actor
) -> list[dict[str, Any]]:
    """Every recorded step of the case, oldest first; Forbidden when the case lies outside
    the viewer's scope."""
    await visible_incident(conn, incident_id, viewer)
    rows = await conn.execute(
        text(
            "SELECT id, action, from_status, to_status, actor, at, note, details "
            "FROM incident_transitions WHERE incident_id = :id ORDER BY id"
        ),
        {"id": incident_id},
    )
    return [
        {
            "id": r[0],
            "action": r[1],
            "from": r[2],
            "to": r[3],
            "actor": r[4],
            "at": r[5].isoformat(),
            "note": r[6],
            "details": r[7],
        }
        for r in rows
    ]
