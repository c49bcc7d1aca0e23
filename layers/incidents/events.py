"""Incident events: every recorded transition, announced with NOTIFY on commit.

A writer records a step with the SQL of ``recording_step``, which notifies in the same
statement, so the event leaves exactly when (and only if) the step is committed. The event
id is the step's id in ``incident_transitions``, so a client that lost its stream asks for
the events after the last id it saw (``events_after``) and misses nothing. ``EventHub``
keeps one LISTEN connection per process and fans the events out to every subscriber.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from layers.db.engine import plain_url

CHANNEL = "cityhex_incident_events"
CREATED = "incident.created"
TRANSITIONED = "incident.transitioned"
TYPES = (CREATED, TRANSITIONED)

EVENT_JSON = f"""json_build_object(
    'type', CASE WHEN t.from_status IS NULL THEN '{CREATED}' ELSE '{TRANSITIONED}' END,
    'event_id', t.id, 'incident_id', i.id, 'action', t.action,
    'from', t.from_status, 'to', t.to_status, 'actor', t.actor, 'at', t.at,
    'note', left(t.note, 500), 'category_code', i.category_code,
    'department_id', i.department_id, 'inspector_id', i.inspector_id,
    'district_id', i.district_id,
    'deadline', i.deadline, 'cell', to_hex(i.h3), 'lon', ST_X(i.geom), 'lat', ST_Y(i.geom)
)::text"""
EVENT_FROM = "FROM incident_transitions t JOIN incidents i ON i.id = t.incident_id"


@dataclass(frozen=True)
class Event:
    """One incident event: its id, its type and its JSON text, and the case's district,
    department and inspector (whose callers may see it)."""

    id: int
    type: str
    data: str
    district_id: int | None = None
    department_id: int | None = None
    inspector_id: int | None = None


def parse_event(payload: str) -> Event:
    """The event carried by a NOTIFY payload."""
    data = orjson.loads(payload)
    return Event(
        data["event_id"],
        data["type"],
        payload,
        data.get("district_id"),
        data.get("department_id"),
        data.get("inspector_id"),
    )


def recording_step(insert: str) -> str:
    """SQL that runs ``insert`` (an ``INSERT INTO incident_transitions ... RETURNING *``) and
    announces the new step when the transaction commits; it returns the step's id."""
    return (
        f"WITH t AS ({insert}) SELECT t.id, pg_notify('{CHANNEL}', {EVENT_JSON}) "
        "FROM t JOIN incidents i ON i.id = t.incident_id"
    )


async def events_after(conn: AsyncConnection, after_id: int, limit: int = 1000) -> list[Event]:
    """The events after ``after_id``, oldest first, at most ``limit`` of them.

    Incident fields (department, inspector, deadline) are as they stand now.
    """
    rows = await conn.execute(
        text(f"SELECT {EVENT_JSON} {EVENT_FROM} WHERE t.id > :after ORDER BY t.id LIMIT :n"),
        {"after": after_id, "n": limit},
    )
    return [parse_event(payload) for (payload,) in rows]


Queue = asyncio.Queue[Event | None]


class EventHub:
    """One LISTEN connection for the process, opened for the first subscriber and closed
    after the last; every subscriber gets every event, then None when the stream ends."""

    def __init__(self, engine: AsyncEngine, queue_size: int = 1000) -> None:
        self.url = plain_url(engine.url.render_as_string(hide_password=False))
        self.queue_size = queue_size
        self.queues: set[Queue] = set()
        self.conn: asyncpg.Connection | None = None
        self.lock = asyncio.Lock()

    def _deliver(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        event = parse_event(payload)
        for queue in list(self.queues):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:  # a subscriber that cannot keep up is let go
                self._end(queue)

    def _end(self, queue: Queue) -> None:
        self.queues.discard(queue)
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(None)

    def _lost(self, _conn: object) -> None:
        self.conn = None
        for queue in list(self.queues):
            self._end(queue)

    async def _open(self) -> None:
        if self.conn is None or self.conn.is_closed():
            self.conn = await asyncpg.connect(self.url)
            self.conn.add_termination_listener(self._lost)
            await self.conn.add_listener(CHANNEL, self._deliver)

    async def _close_if_idle(self) -> None:
        if not self.queues and self.conn is not None:
            conn, self.conn = self.conn, None
            with contextlib.suppress(Exception):
                await conn.close()

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Queue]:
        """A queue receiving every event from now on (None when the stream ends)."""
        queue: Queue = asyncio.Queue(self.queue_size)
        async with self.lock:
            await self._open()
            self.queues.add(queue)
        try:
            yield queue
        finally:
            async with self.lock:
                self.queues.discard(queue)
                await self._close_if_idle()
