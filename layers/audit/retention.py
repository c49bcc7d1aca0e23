"""Retention: remove the audit rows older than an age, keeping the rest verifiable.

A prune removes a prefix of the chain: every row up to the newest one older than the cutoff.
In the same transaction, and under the chain's lock, it records that row's seq and hash as
an anchor (the database refuses any DELETE not behind an anchor of its own transaction) and
appends a prune entry naming the anchor, so verification starts from the anchor and a moved
anchor shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from layers.audit.chain import Anchor
from layers.audit.entries import PRUNE, Entry
from layers.audit.recording import append


@dataclass(frozen=True)
class PruneResult:
    """What a prune removed: how many rows, before which time, and the anchor it left."""

    removed: int
    cutoff: datetime
    anchor: Anchor | None


async def prune(
    conn: AsyncConnection, older_than: timedelta, actor: str, role: str, client: str | None
) -> PruneResult:
    """Remove the rows older than ``older_than`` in ``conn``'s transaction, behind an anchor,
    and append the prune entry (made by ``actor`` with ``role`` from ``client``)."""
    await conn.execute(text("SELECT 1 FROM audit_head FOR UPDATE"))
    cutoff = (
        await conn.execute(text("SELECT now() - CAST(:age AS interval)"), {"age": older_than})
    ).scalar_one()
    last = (
        await conn.execute(
            text(
                "SELECT seq, hash FROM audit_log WHERE at < :cutoff "
                "ORDER BY at DESC, seq DESC LIMIT 1"
            ),
            {"cutoff": cutoff},
        )
    ).first()
    anchor, removed = None, 0
    if last is not None:
        at = (
            await conn.execute(
                text(
                    "INSERT INTO audit_anchor (seq, hash, txid) VALUES (:seq, :hash, 0) "
                    "RETURNING at"
                ),
                {"seq": last.seq, "hash": bytes(last.hash)},
            )
        ).scalar_one()
        anchor = Anchor(last.seq, bytes(last.hash), at)
        deleted = await conn.execute(
            text("DELETE FROM audit_log WHERE seq <= :seq"), {"seq": last.seq}
        )
        removed = deleted.rowcount
    detail = {
        "older_than": str(older_than),
        "cutoff": cutoff.isoformat(),
        "removed": removed,
        "anchor_seq": anchor.seq if anchor else None,
        "anchor_hash": anchor.hash.hex() if anchor else None,
    }
    await append(conn, [Entry(PRUNE, actor, role, client=client, detail=detail)])
    return PruneResult(removed, cutoff, anchor)
