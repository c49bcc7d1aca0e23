"""Reading the audit log: newest first, filtered, a page at a time, each page checked."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gis.errors import BadRequest
from layers.audit.chain import COLUMNS, Break, StoredRow, check_rows

MAX_LIMIT = 1000


@dataclass(frozen=True)
class AuditQuery:
    """Which entries to list: a time range, an actor, an action, a path prefix, and the
    page (entries before seq ``before``, newest first)."""

    start: datetime | None = None
    end: datetime | None = None
    actor: str | None = None
    action: str | None = None
    path_prefix: str | None = None
    before: int | None = None
    limit: int = 100


@dataclass(frozen=True)
class AuditPage:
    """A page of entries, the ``before`` of the next page, and the check of this page's rows
    against their hashes and the rows before them."""

    rows: list[StoredRow]
    next_before: int | None
    checked: int
    first_break: Break | None


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _where(query: AuditQuery) -> tuple[str, dict[str, Any]]:
    texts = {"actor": query.actor, "action": query.action, "path": query.path_prefix}
    for name, value in texts.items():
        if value is not None and "\x00" in value:
            raise BadRequest(f"{name} must not hold a NUL character", code="invalid_parameter")
    clauses, params = ["true"], {}
    if query.start is not None:
        clauses.append("at >= :start")
        params["start"] = query.start
    if query.end is not None:
        clauses.append("at < :end")
        params["end"] = query.end
    if query.actor is not None:
        clauses.append("actor = :actor")
        params["actor"] = query.actor
    if query.action is not None:
        clauses.append("action = :action")
        params["action"] = query.action
    if query.path_prefix is not None:
        clauses.append("path LIKE :path ESCAPE '\\'")
        params["path"] = _like_prefix(query.path_prefix)
    if query.before is not None:
        clauses.append("seq < :before")
        params["before"] = query.before
    return " AND ".join(clauses), params


async def list_entries(conn: AsyncConnection, query: AuditQuery) -> AuditPage:
    """One page of entries matching ``query``, newest first, and its chain check."""
    if not 1 <= query.limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be 1..{MAX_LIMIT}", code="invalid_parameter")
    where, params = _where(query)
    sql = f"SELECT {COLUMNS} FROM audit_log WHERE {where} ORDER BY seq DESC LIMIT :limit"
    result = await conn.execute(text(sql), {**params, "limit": query.limit + 1})
    rows = [StoredRow(*r) for r in result]
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    checked, brk = await check_rows(conn, rows)
    return AuditPage(rows, rows[-1].seq if more else None, checked, brk)


def row_json(row: StoredRow) -> dict[str, Any]:
    """An entry as the API shows it."""
    return {
        "seq": row.seq,
        "at": row.at.isoformat(),
        "action": row.action,
        "actor": row.actor,
        "role": row.role,
        "key_id": row.key_id,
        "method": row.method,
        "route": row.route,
        "path": row.path,
        "target": orjson.loads(row.target) if row.target else None,
        "status": row.status,
        "client": row.client,
        "detail": orjson.loads(row.detail) if row.detail else None,
        "prev_hash": bytes(row.prev_hash).hex(),
        "hash": bytes(row.hash).hex(),
    }
