"""``/events``: incident events as server-sent events (incident.created, incident.transitioned),
and patrol events (inspector.off_post, inspector.back) for the callers who may read them
(dispatchers, within their districts' inspectors when limited to districts; admin; and an
inspector for their own).

Each event's id is its step in the case history; a client that reconnects with
``Last-Event-ID`` first gets the events it missed (up to 1000), then a ``: live`` comment
(from here on it misses nothing), then the live stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
from fastapi import APIRouter, Header, Query
from sqlalchemy.ext.asyncio import AsyncEngine
from sse_starlette import EventSourceResponse, ServerSentEvent

from gis.errors import BadRequest
from layers.incidents.cases import BIGINT_MAX
from layers.incidents.events import TYPES as INCIDENT_TYPES
from layers.incidents.events import Event, EventHub, events_after
from layers.incidents.scope import EventScope, event_scope
from layers.patrol.access import works_in
from layers.patrol.off_post import TYPES as PATROL_TYPES
from layers.patrol.off_post import events_after as patrol_events_after
from spatial_api.auth import Principal
from spatial_api.deps import Engine, IncidentEvents, Reader
from spatial_api.routers.incident_common import actor_of

TYPES = INCIDENT_TYPES + PATROL_TYPES

router = APIRouter(tags=["events"])


def wanted_types(types: str | None) -> frozenset[str]:
    """The event types a client asked for (all by default)."""
    if not types:
        return frozenset(TYPES)
    asked = frozenset(t.strip() for t in types.split(",") if t.strip())
    unknown = asked - set(TYPES)
    if unknown:
        raise BadRequest(
            f"unknown event type {', '.join(sorted(unknown))}; one of {', '.join(TYPES)}",
            code="unknown_event_type",
        )
    return asked


def last_event_id(value: str | None) -> int | None:
    """The id a reconnecting client saw last."""
    if value is None or not value.strip():
        return None
    if not value.strip().isdigit() or int(value) > BIGINT_MAX:
        raise BadRequest(f"Last-Event-ID {value!r} is not an event id", code="invalid_event_id")
    return int(value)


def may_see(caller: Principal, event: Event) -> bool:
    """Whether the caller may see the event: a patrol event (about an inspector's
    whereabouts) only for dispatchers, admin and that inspector."""
    if event.type not in PATROL_TYPES or caller.role in ("dispatcher", "admin"):
        return True
    return caller.role == "inspector" and (
        caller.inspector_id == orjson.loads(event.data)["inspector_id"]
    )


async def shown(engine: AsyncEngine, caller: Principal, visible: EventScope, event: Event) -> bool:
    """Whether the caller gets the event: an incident event when its case lies within what
    the caller may see; a patrol event by ``may_see`` and, for a caller limited to districts
    (other than the inspector concerned), when the inspector has cells in one of them (read
    when the event comes, so a reassignment counts at once)."""
    if event.type not in PATROL_TYPES:
        return visible.allows(event)
    if not may_see(caller, event):
        return False
    if visible.districts is None or caller.role == "inspector":
        return True
    async with engine.connect() as conn:
        return await works_in(conn, orjson.loads(event.data)["inspector_id"], visible.districts)


async def missed(engine: AsyncEngine, after: int) -> list[Event]:
    """The incident and patrol events after ``after`` (they share one id sequence), oldest
    first, at most 1000."""
    async with engine.connect() as conn:
        found = await events_after(conn, after)
        found += [Event(*row) for row in await patrol_events_after(conn, after)]
    return sorted(found, key=lambda e: e.id)[:1000]


async def stream(
    hub: EventHub,
    engine: AsyncEngine,
    kinds: frozenset[str],
    after: int | None,
    caller: Principal,
    visible: EventScope,
) -> AsyncIterator[ServerSentEvent]:
    """The missed events after ``after``, a ``: live`` comment, then every new event (of
    the types asked for, and of the cases the caller may see)."""

    def message(event: Event) -> ServerSentEvent:
        return ServerSentEvent(data=event.data, event=event.type, id=str(event.id))

    async with hub.subscribe() as queue:
        replayed: set[int] = set()
        if after is not None:
            for event in await missed(engine, after):
                replayed.add(event.id)
                if event.type in kinds and await shown(engine, caller, visible, event):
                    yield message(event)
        yield ServerSentEvent(comment="live")
        while (event := await queue.get()) is not None:
            wanted = event.type in kinds and await shown(engine, caller, visible, event)
            if wanted and event.id not in replayed:
                yield message(event)


@router.get(
    "/events",
    summary="Live incident events (server-sent events)",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "The event stream"}},
)
async def events(
    hub: IncidentEvents,
    engine: Engine,
    caller: Reader,
    types: str | None = Query(
        None, description="comma list: incident.created, inspector.off_post, ..."
    ),
    last_event: str | None = Header(None, alias="Last-Event-ID"),
) -> EventSourceResponse:
    """A text/event-stream of incident events; each data is the event as JSON. A caller
    limited to districts or departments, or an inspector key, gets the events of its cases
    only. Browsers, whose EventSource sends no headers, pass a token of ``POST /auth/token``
    as ``?access_token=``."""
    kinds = wanted_types(types)
    after = last_event_id(last_event)
    async with engine.connect() as conn:
        visible = await event_scope(conn, actor_of(caller))
    return EventSourceResponse(stream(hub, engine, kinds, after, caller, visible), ping=15)
