"""The audit log over HTTP, for admins: list its entries and verify its chain.

The logic lives in ``layers.audit`` (listing, chain); requests to these routes are
themselves recorded by the audit trail.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from layers.audit.chain import verify
from layers.audit.entries import ACTIONS
from layers.audit.listing import MAX_LIMIT, AuditQuery, list_entries, row_json
from spatial_api.deps import Admin, Engine
from spatial_api.schemas.audit import AuditPage, ChainReport

router = APIRouter(tags=["audit"])

BIGINT_MAX = 2**63 - 1


@router.get("/audit", summary="The audit log, newest first (admin)", response_model=AuditPage)
async def audit_log(
    engine: Engine,
    _: Admin,
    start: Annotated[
        datetime | None, Query(alias="from", description="Entries at or after, ISO 8601")
    ] = None,
    end: Annotated[
        datetime | None, Query(alias="to", description="Entries before, ISO 8601")
    ] = None,
    actor: Annotated[
        str | None, Query(max_length=1000, description="Exactly this actor (role:key name)")
    ] = None,
    action: Annotated[
        str | None, Query(description=f"One of: {', '.join(ACTIONS)}", max_length=64)
    ] = None,
    path: Annotated[
        str | None, Query(max_length=1000, description="Paths starting with this")
    ] = None,
    before: Annotated[
        int | None, Query(ge=1, le=BIGINT_MAX, description="Entries before this seq (paging)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> dict[str, Any]:
    """A page of entries matching every filter given, and the check of the page's rows
    against their hashes and the rows before them (``/audit/verify`` walks the whole chain)."""
    query = AuditQuery(start, end, actor, action, path, before, limit)
    async with engine.connect() as conn:
        page = await list_entries(conn, query)
    return {
        "entries": [row_json(r) for r in page.rows],
        "next_before": page.next_before,
        "chain": {
            "ok": page.first_break is None,
            "checked": page.checked,
            "first_break": page.first_break.as_dict() if page.first_break else None,
        },
    }


@router.get(
    "/audit/verify",
    summary="Walk the whole audit chain and report its first break (admin)",
    response_model=ChainReport,
)
async def audit_verify(engine: Engine, _: Admin) -> dict[str, Any]:
    """Every row from the retention anchor (or the first row) to the head, each checked
    against its hash and the row before it."""
    return (await verify(engine)).as_dict()
