"""The audit log: its entries, a page of them, and the verification of its chain."""

from __future__ import annotations

from typing import Any

from spatial_api.schemas import Schema


class AuditEntry(Schema):
    """One entry: who (actor, role, key), when, what (action, method, route, path and its
    ids, status; null status: recorded inside the write's own transaction), from where,
    and its place in the hash chain."""

    seq: int
    at: str
    action: str
    actor: str
    role: str
    key_id: int | None
    method: str | None
    route: str | None
    path: str | None
    target: dict[str, str] | None
    status: int | None
    client: str | None
    detail: dict[str, Any] | None
    prev_hash: str
    hash: str


class ChainBreak(Schema):
    """Where the chain first fails: the row, what is wrong (missing, altered, link, head,
    anchor) and a sentence."""

    seq: int
    kind: str
    message: str


class PageCheck(Schema):
    """The check of a page's rows: each against its own hash and the row before it."""

    ok: bool
    checked: int
    first_break: ChainBreak | None


class AuditPage(Schema):
    """A page of entries, newest first; ``next_before`` asks for the next page."""

    entries: list[AuditEntry]
    next_before: int | None
    chain: PageCheck


class RetentionAnchor(Schema):
    """Where the chain starts after retention: the last removed row's seq and hash."""

    seq: int
    hash: str
    at: str


class ChainReport(Schema):
    """The whole chain walked from its anchor (or start) to its head."""

    ok: bool
    checked: int
    first_seq: int | None
    last_seq: int | None
    anchor: RetentionAnchor | None
    first_break: ChainBreak | None
