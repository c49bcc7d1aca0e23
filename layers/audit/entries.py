"""What an audit entry says: the action, who took it, on what, with what outcome, from where."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from layers.db.keys import KEY_ACTIONS

WRITE = "write"
"""A POST, PUT, PATCH or DELETE by a caller without the admin role, done or refused."""
ADMIN = "admin"
"""A change made with the admin role, or a request to the audit log itself."""
KEY_USE = "key.use"
"""The first use of an API key (or token) in a UTC hour."""
PERSONAL_READ = "personal.read"
"""An answered read of personal data: reporters, staff names and contacts, patrol tracks."""
PRUNE = "audit.prune"
"""Retention: the oldest rows removed, behind an anchor."""
ACTIONS = (WRITE, ADMIN, KEY_USE, PERSONAL_READ, PRUNE, *KEY_ACTIONS)
"""Every action; key.create, key.revoke, key.rotate and token.issue are appended by
``layers.db.keys`` and ``layers.db.tokens`` in the transaction of the operation."""

MAX_TEXT = 1000
"""The longest text an entry keeps of any one field (a path, an id); the rest is cut."""


def clean(value: str) -> str:
    """A text as the log keeps it: at most MAX_TEXT characters, NUL bytes replaced."""
    return value[:MAX_TEXT].replace("\x00", "\ufffd")


@dataclass(frozen=True)
class Entry:
    """One audit entry before it is chained (the database adds its seq, time and hashes).

    ``status`` is the HTTP status answered; it is None for an entry written inside the
    transaction of the change it records, which commits with it (or not at all)."""

    action: str
    actor: str
    role: str
    key_id: int | None = None
    method: str | None = None
    route: str | None = None
    path: str | None = None
    target: dict[str, str] | None = None
    status: int | None = None
    client: str | None = None
    detail: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        """The entry as one object of ``audit_append``'s array, its texts cleaned."""
        texts = {
            "action": self.action,
            "actor": self.actor,
            "role": self.role,
            "method": self.method,
            "route": self.route,
            "path": self.path,
            "client": self.client,
        }
        body: dict[str, Any] = {k: clean(v) if v is not None else None for k, v in texts.items()}
        body["key_id"] = self.key_id
        body["status"] = self.status
        body["target"] = (
            {clean(k): clean(v) for k, v in self.target.items()} if self.target else None
        )
        body["detail"] = self.detail
        return body


def entries_json(entries: Sequence[Entry]) -> str:
    """The JSON array ``audit_append`` takes."""
    return orjson.dumps([e.as_json() for e in entries]).decode()
