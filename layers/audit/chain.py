"""The hash chain of the audit log, and its verification.

Each row stores ``hash = sha256(prev_hash || canonical(row))``, ``prev_hash`` being the hash
of the row before it (32 zero bytes before the first row, or the anchor's hash after a
prune). The canonical form joins the row's fields in a fixed order, each written as
``<length>:<text>`` (``~`` for NULL), with ``|``; the time is in whole microseconds since
1970 and the JSON fields are PostgreSQL's text of their jsonb. ``audit_canonical`` in
migration 0013 computes the same when a row is appended; verification recomputes it here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from layers.audit.entries import PRUNE

GENESIS = bytes(32)
"""The ``prev_hash`` of the first row ever appended."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BATCH = 5000
"""Rows verification reads per query."""
COLUMNS = (
    "seq, at, action, actor, role, key_id, method, route, path, target::text AS target, "
    "status, client, detail::text AS detail, prev_hash, hash"
)


@dataclass(frozen=True)
class StoredRow:
    """A row of the audit log as stored (its JSON fields as PostgreSQL's jsonb text)."""

    seq: int
    at: datetime
    action: str
    actor: str
    role: str
    key_id: int | None
    method: str | None
    route: str | None
    path: str | None
    target: str | None
    status: int | None
    client: str | None
    detail: str | None
    prev_hash: bytes
    hash: bytes


def _field(value: object) -> str:
    if value is None:
        return "~"
    text_value = str(value)
    return f"{len(text_value)}:{text_value}"


def canonical(row: StoredRow) -> str:
    """The text a row's hash covers (after the previous hash)."""
    micros = (row.at - EPOCH) // timedelta(microseconds=1)
    fields = (
        row.seq,
        micros,
        row.action,
        row.actor,
        row.role,
        row.key_id,
        row.method,
        row.route,
        row.path,
        row.target,
        row.status,
        row.client,
        row.detail,
    )
    return "|".join(_field(v) for v in fields)


def row_hash(row: StoredRow) -> bytes:
    """The hash the row should store, from its own ``prev_hash`` and content."""
    return hashlib.sha256(bytes(row.prev_hash) + canonical(row).encode()).digest()


@dataclass(frozen=True)
class Break:
    """The first place the chain does not hold: the row's seq, what is wrong, in words."""

    seq: int
    kind: str
    """missing (rows removed), altered (a row's content), link (a row does not follow the
    one before it), head (rows removed from the end) or anchor (a retention anchor that no
    prune entry names)."""
    message: str

    def as_dict(self) -> dict[str, Any]:
        """The break as JSON."""
        return {"seq": self.seq, "kind": self.kind, "message": self.message}


@dataclass(frozen=True)
class Anchor:
    """Where the chain starts after retention: the last removed row's seq and hash."""

    seq: int
    hash: bytes
    at: datetime

    def as_dict(self) -> dict[str, Any]:
        """The anchor as JSON."""
        return {"seq": self.seq, "hash": self.hash.hex(), "at": self.at.isoformat()}


@dataclass(frozen=True)
class ChainReport:
    """What a verification found: how many rows it checked, from where, the first break."""

    checked: int
    first_seq: int | None
    last_seq: int | None
    anchor: Anchor | None
    first_break: Break | None

    @property
    def ok(self) -> bool:
        """Whether the whole chain holds."""
        return self.first_break is None

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON."""
        return {
            "ok": self.ok,
            "checked": self.checked,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "anchor": self.anchor.as_dict() if self.anchor else None,
            "first_break": self.first_break.as_dict() if self.first_break else None,
        }


def link_break(prev_seq: int, prev_hash: bytes, row: StoredRow) -> Break | None:
    """What is wrong with ``row`` following the row (or anchor) ``prev_seq`` with
    ``prev_hash``; None when it follows it."""
    if row.seq != prev_seq + 1:
        missing = f"{prev_seq + 1}" if row.seq == prev_seq + 2 else f"{prev_seq + 1}..{row.seq - 1}"
        return Break(prev_seq + 1, "missing", f"row {missing} is missing from the chain")
    if row_hash(row) != bytes(row.hash):
        return Break(row.seq, "altered", f"row {row.seq} was altered after it was written")
    if bytes(row.prev_hash) != prev_hash:
        return Break(
            row.seq,
            "link",
            f"row {row.seq} does not follow row {prev_seq}: row {prev_seq} was altered "
            f"(and its hash recomputed), or this row's link was",
        )
    return None


async def latest_anchor(conn: AsyncConnection) -> Anchor | None:
    """The newest retention anchor, if the log was ever pruned."""
    row = (
        await conn.execute(text("SELECT seq, hash, at FROM audit_anchor ORDER BY seq DESC LIMIT 1"))
    ).first()
    return Anchor(row.seq, bytes(row.hash), row.at) if row else None


async def _anchor_break(conn: AsyncConnection, anchor: Anchor) -> Break | None:
    """A break when no prune entry of the chain names ``anchor``."""
    named = (
        await conn.execute(
            text(
                "SELECT 1 FROM audit_log WHERE action = :prune AND seq > :seq "
                "AND detail->>'anchor_seq' = :seq_text AND detail->>'anchor_hash' = :hash "
                "LIMIT 1"
            ),
            {
                "prune": PRUNE,
                "seq": anchor.seq,
                "seq_text": str(anchor.seq),
                "hash": anchor.hash.hex(),
            },
        )
    ).first()
    if named:
        return None
    return Break(
        anchor.seq + 1,
        "anchor",
        f"the chain starts after an anchor at row {anchor.seq} that no prune entry names",
    )


async def rows_after(conn: AsyncConnection, seq: int, limit: int) -> list[StoredRow]:
    """Up to ``limit`` rows after ``seq``, in chain order."""
    result = await conn.execute(
        text(f"SELECT {COLUMNS} FROM audit_log WHERE seq > :seq ORDER BY seq LIMIT :limit"),
        {"seq": seq, "limit": limit},
    )
    return [StoredRow(*r) for r in result]


async def verify_chain(conn: AsyncConnection) -> ChainReport:
    """Walk the chain from its anchor (or its start) to its head; the first break, if any.
    Run it in one snapshot (see ``verify``) so rows appended meanwhile do not count."""
    anchor = await latest_anchor(conn)
    prev_seq, prev_hash = (anchor.seq, anchor.hash) if anchor else (0, GENESIS)
    checked, first_seq = 0, None
    brk = await _anchor_break(conn, anchor) if anchor else None
    while brk is None:
        rows = await rows_after(conn, prev_seq, BATCH)
        for row in rows:
            brk = link_break(prev_seq, prev_hash, row)
            if brk is not None:
                break
            first_seq = first_seq or row.seq
            prev_seq, prev_hash = row.seq, bytes(row.hash)
            checked += 1
        if len(rows) < BATCH:
            break
    if brk is None:
        head = (await conn.execute(text("SELECT seq, hash FROM audit_head"))).one()
        if head.seq != prev_seq or bytes(head.hash) != prev_hash:
            brk = Break(
                prev_seq + 1,
                "head",
                f"the chain ends at row {prev_seq} but its head is row {head.seq}: "
                "rows were removed from its end",
            )
    return ChainReport(checked, first_seq, prev_seq if checked else None, anchor, brk)


async def verify(engine: AsyncEngine) -> ChainReport:
    """Verify the whole chain in one repeatable-read snapshot."""
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="REPEATABLE READ")
        return await verify_chain(conn)


async def check_rows(conn: AsyncConnection, rows: list[StoredRow]) -> tuple[int, Break | None]:
    """Check each of ``rows`` (any rows, say a page of a listing) against its own hash and
    the row before it: how many were checked, and the first break in chain order."""
    if not rows:
        return 0, None
    anchor = await latest_anchor(conn)
    wanted = [r.seq - 1 for r in rows]
    result = await conn.execute(
        text("SELECT seq, hash FROM audit_log WHERE seq = ANY(:seqs)"), {"seqs": wanted}
    )
    known = {seq: bytes(h) for seq, h in result}
    known[0] = GENESIS
    if anchor:
        known[anchor.seq] = anchor.hash
    for row in sorted(rows, key=lambda r: r.seq):
        prev = row.seq - 1
        if prev not in known:
            return len(rows), Break(prev, "missing", f"row {prev} is missing from the chain")
        brk = link_break(prev, known[prev], row)
        if brk is not None:
            return len(rows), brk
    return len(rows), None
