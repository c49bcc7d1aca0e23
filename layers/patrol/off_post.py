"""Off post (脱岗): during a shift, an inspector away from their assigned cells, or with no
fix, for longer than ``CITYHEX_OFF_POST_MINUTES``.

"Away" is every moment of a shift that is not inside the inspector's cells by their track
(``layers.patrol.coverage.inside_intervals``): outside the cells, in a gap between fixes
longer than ``CITYHEX_PATROL_MAX_GAP_S``, or after the last fix. An away stretch longer than
the limit is an episode: a ``patrol_off_post`` row and an ``inspector.off_post`` event; when
the inspector is inside their cells again within the shift, the row is closed and an
``inspector.back`` event follows (an episode that lasts until the shift ends is closed with
``shift_end`` and no event).

Detection runs in two places, both through ``check_inspectors``: the server checks every
inspector on shift every ``CITYHEX_OFF_POST_CHECK_SECONDS`` (this is what notices an
inspector who sends nothing), and a fix batch checks its inspector at once when they have an
open episode (so ``inspector.back`` leaves with the fix that brings them back). A check looks
back over the limit plus twice the check interval plus the gap (or to the start of the open
episode), so an episode is seen while it runs or, if it ended between two checks, at the
next one. Events are sent with NOTIFY on the channel of incident events and share their id
sequence, so ``/events`` carries both in one order.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from layers.incidents.events import CHANNEL
from layers.patrol.coverage import inside_intervals
from layers.patrol.settings import patrol_settings
from layers.patrol.shifts import Interval, scheduled_inspectors, shift_windows

OFF_POST = "inspector.off_post"
BACK = "inspector.back"
TYPES = (OFF_POST, BACK)

EVENT_JSON = """json_build_object(
    'type', e.type, 'event_id', e.id, 'inspector_id', e.inspector_id, 'at', e.at,
    'off_post_id', o.id, 'started_at', o.started_at, 'ended_at', o.ended_at
)::text"""
EVENT_FROM = "FROM patrol_events e JOIN patrol_off_post o ON o.id = e.off_post_id"
RECORD_EVENT = text(
    "WITH e AS (INSERT INTO patrol_events (type, inspector_id, off_post_id, at) "
    "VALUES (:type, :inspector, :record, :at) RETURNING *) "
    f"SELECT pg_notify('{CHANNEL}', {EVENT_JSON}) FROM e JOIN patrol_off_post o "
    "ON o.id = e.off_post_id"
)


def away_stretches(shift: Interval, inside: Sequence[Interval]) -> list[Interval]:
    """The parts of ``shift`` not covered by the (merged, ordered) ``inside`` intervals."""
    lo, hi = shift
    away: list[Interval] = []
    cursor = lo
    for a, b in inside:
        if b <= cursor or a >= hi:
            continue
        if a > cursor:
            away.append((cursor, a))
        cursor = max(cursor, b)
    if cursor < hi:
        away.append((cursor, hi))
    return away


def episodes(
    shifts: Sequence[Interval], inside: Sequence[Interval], limit: timedelta
) -> list[tuple[datetime, datetime]]:
    """The away stretches longer than ``limit`` within ``shifts``."""
    return [(a, b) for shift in shifts for a, b in away_stretches(shift, inside) if b - a > limit]


async def _event(
    conn: AsyncConnection, kind: str, inspector: int, record: int, at: datetime
) -> None:
    await conn.execute(
        RECORD_EVENT, {"type": kind, "inspector": inspector, "record": record, "at": at}
    )


async def check_inspector(conn: AsyncConnection, inspector_id: int, now: datetime) -> int:
    """Record the inspector's off-post episodes seen up to ``now`` and send their events;
    how many events were sent."""
    settings = patrol_settings()
    limit = settings.off_post
    # one check of an inspector at a time (every server process runs the periodic check)
    await conn.execute(
        text("SELECT pg_advisory_xact_lock(hashtext('cityhex.patrol.off_post'), :i)"),
        {"i": inspector_id},
    )
    open_row = (
        await conn.execute(
            text(
                "SELECT id, started_at FROM patrol_off_post WHERE inspector_id = :i "
                "AND ended_at IS NULL ORDER BY started_at DESC LIMIT 1 FOR UPDATE"
            ),
            {"i": inspector_id},
        )
    ).first()
    lookback = limit + 2 * timedelta(seconds=settings.off_post_check_seconds) + settings.max_gap
    start = min(open_row.started_at, now - lookback) if open_row else now - lookback
    shifts = (await shift_windows(conn, [inspector_id], start, now))[inspector_id]
    if not shifts:
        found: list[Interval] = []
    else:
        inside = await inside_intervals(conn, inspector_id, shifts[0][0], now)
        found = episodes(shifts, inside, limit)
    shift_ends = {hi for _, hi in shifts}
    sent = 0
    for lo, hi in found:
        ongoing = hi >= now
        ended_by = None if ongoing else ("shift_end" if hi in shift_ends else "back")
        existing = (
            await conn.execute(
                text(
                    "SELECT id, ended_at FROM patrol_off_post WHERE inspector_id = :i "
                    "AND started_at < :hi AND (ended_at IS NULL OR ended_at > :lo) "
                    "ORDER BY started_at LIMIT 1"
                ),
                {"i": inspector_id, "lo": lo, "hi": hi},
            )
        ).first()
        if existing is None:
            record = await conn.scalar(
                text(
                    "INSERT INTO patrol_off_post (inspector_id, started_at, ended_at, ended_by, "
                    "detected_at) VALUES (:i, :lo, :hi, :by, :now) "
                    "ON CONFLICT (inspector_id, started_at) DO NOTHING RETURNING id"
                ),
                {
                    "i": inspector_id,
                    "lo": lo,
                    "hi": None if ongoing else hi,
                    "by": ended_by,
                    "now": now,
                },
            )
            if record is None:
                continue
            await _event(conn, OFF_POST, inspector_id, record, lo + limit)
            sent += 1
            if ended_by == "back":
                await _event(conn, BACK, inspector_id, record, hi)
                sent += 1
        elif existing.ended_at is None and not ongoing:
            await _close(conn, existing.id, hi, ended_by)
            if ended_by == "back":
                await _event(conn, BACK, inspector_id, existing.id, hi)
                sent += 1
    if open_row and not shifts:  # the schedule was taken away: the episode ends with it
        await _close(conn, open_row.id, now, "shift_end")
    elif open_row and not any(hi > open_row.started_at for _, hi in found):
        # fixes that came in late show no away stretch there any more: the episode ends now
        still_open = await conn.scalar(
            text("SELECT ended_at IS NULL FROM patrol_off_post WHERE id = :id"), {"id": open_row.id}
        )
        if still_open:
            await _close(conn, open_row.id, now, "back")
            await _event(conn, BACK, inspector_id, open_row.id, now)
            sent += 1
    return sent


async def _close(conn: AsyncConnection, record: int, at: datetime, by: str | None) -> None:
    await conn.execute(
        text("UPDATE patrol_off_post SET ended_at = :at, ended_by = :by WHERE id = :id"),
        {"id": record, "at": at, "by": by},
    )


async def check_inspectors(
    conn: AsyncConnection,
    now: datetime,
    inspector_ids: Sequence[int] | None = None,
    only_open: bool = False,
) -> int:
    """Check the given inspectors (default: all with a schedule), or only those of them with
    an open episode; each in its own transaction. How many events were sent."""
    if only_open:
        rows = await conn.scalars(
            text(
                "SELECT DISTINCT inspector_id FROM patrol_off_post WHERE ended_at IS NULL "
                "AND (CAST(:ids AS integer[]) IS NULL OR inspector_id = ANY(:ids))"
            ),
            {"ids": None if inspector_ids is None else list(inspector_ids)},
        )
        inspector_ids = list(rows)
    elif inspector_ids is None:
        inspector_ids = await scheduled_inspectors(conn)
    await conn.commit()
    sent = 0
    for inspector in inspector_ids:
        sent += await check_inspector(conn, inspector, now)
        await conn.commit()
    return sent


async def off_post_records(
    conn: AsyncConnection, inspector_ids: Sequence[int], start: datetime, end: datetime
) -> dict[int, list[dict[str, Any]]]:
    """The episodes of each inspector that overlap [start, end)."""
    rows = await conn.execute(
        text(
            "SELECT id, inspector_id, started_at, ended_at, ended_by FROM patrol_off_post "
            "WHERE inspector_id = ANY(:ids) AND started_at < :end "
            "AND (ended_at IS NULL OR ended_at > :start) ORDER BY started_at"
        ),
        {"ids": list(inspector_ids), "start": start, "end": end},
    )
    found: dict[int, list[dict[str, Any]]] = {i: [] for i in inspector_ids}
    for r in rows:
        found[r.inspector_id].append(
            {
                "id": r.id,
                "started_at": r.started_at.isoformat(),
                "ended_at": r.ended_at.isoformat() if r.ended_at else None,
                "ended_by": r.ended_by,
                "minutes": ((r.ended_at or end) - r.started_at).total_seconds() / 60,
            }
        )
    return found


async def events_after(
    conn: AsyncConnection, after_id: int, limit: int = 1000
) -> list[tuple[int, str, str]]:
    """The patrol events after ``after_id`` as (id, type, JSON text), oldest first."""
    rows = await conn.execute(
        text(
            f"SELECT e.id, e.type, {EVENT_JSON} {EVENT_FROM} "
            "WHERE e.id > :after ORDER BY e.id LIMIT :n"
        ),
        {"after": after_id, "n": limit},
    )
    return [(i, t, data) for i, t, data in rows]
