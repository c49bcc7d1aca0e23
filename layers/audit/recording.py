"""Appending to the audit chain: on its own, or inside the transaction of a write.

``append`` and ``append_on`` add entries in one statement (``audit_append``), which takes the
chain's lock, so concurrent writers keep one chain. ``watch`` makes an engine record a
request's write in the write's own transaction: while ``recording_writes`` is active, the
first transaction of the request that has written anything appends the request's entry just
before it commits, so the write and its entry are committed together or not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import asyncpg
from sqlalchemy import Connection, event, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from layers.audit.entries import Entry, entries_json

APPEND = text("SELECT audit_append(CAST(:entries AS jsonb), :only_if_written)")
APPEND_RAW = "SELECT audit_append($1::jsonb)"


async def append(conn: AsyncConnection, entries: Sequence[Entry]) -> int | None:
    """Append ``entries`` in ``conn``'s transaction; the last seq appended (None: none were,
    as for a key already recorded this hour)."""
    params = {"entries": entries_json(entries), "only_if_written": False}
    return (await conn.execute(APPEND, params)).scalar()


async def append_on(pool: asyncpg.Pool, entries: Sequence[Entry]) -> int | None:
    """Append ``entries`` in a statement of their own on an asyncpg pool; the last seq."""
    return await pool.fetchval(APPEND_RAW, entries_json(entries))


@dataclass
class WriteAudit:
    """The entry a request's writing transaction records (built when it commits), and what
    became of it."""

    build: Callable[[], Entry]
    recorded: bool = False
    """An entry was appended in a transaction that was about to commit."""
    failed: bool = False
    """Appending failed, so that transaction did not commit."""
    closed: bool = False
    """The request is over: later commits (of tasks it started) record nothing."""


PENDING: ContextVar[WriteAudit | None] = ContextVar("cityhex_audit_write", default=None)


@contextmanager
def recording_writes(audit: WriteAudit) -> Iterator[WriteAudit]:
    """Within this block, the first writing transaction of a watched engine appends
    ``audit``'s entry before it commits."""
    token = PENDING.set(audit)
    try:
        yield audit
    finally:
        audit.closed = True
        PENDING.reset(token)


def _before_commit(conn: Connection) -> None:
    audit = PENDING.get()
    if audit is None or audit.recorded or audit.closed:
        return
    params = {"entries": entries_json([audit.build()]), "only_if_written": True}
    try:
        seq = conn.execute(APPEND, params).scalar()
    except Exception:
        audit.failed = True
        raise
    audit.recorded = seq is not None


def watch(engine: AsyncEngine) -> None:
    """Make ``engine``'s transactions record the active ``recording_writes`` entry (once)."""
    if not event.contains(engine.sync_engine, "commit", _before_commit):
        event.listen(engine.sync_engine, "commit", _before_commit)
