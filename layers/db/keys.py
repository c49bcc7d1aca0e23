"""API keys: made once, stored as a SHA-256 digest, looked up by that digest; listed,
revoked, rotated and let expire by admins (``cityhex keys …`` and ``/auth/keys`` call the
functions here).

Keys are 256-bit random tokens, so a plain (unsalted) digest is safe to store and lets a
request's key be found with one indexed lookup. A key may carry a scope (``layers.db.scope``):
the districts, departments and layers it is limited to; and an expiry. A lookup records the
key's last use, at most once a minute. Every change to a key (create, revoke, rotate) appends
an entry to the audit chain (``audit_append``, migration 0013) in the change's transaction.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gis.errors import BadRequest, Conflict, NotFound
from layers.db.models import ROLES
from layers.db.scope import UNLIMITED, Scope

PREFIX = "chx_"
DISTRICT_CODE = re.compile(r"^[0-9]{6}$")
DURATION = re.compile(r"^\s*([0-9]{1,6})\s*([dh])\s*$")
UNITS = {"d": timedelta(days=1), "h": timedelta(hours=1)}
MAX_LIFETIME = timedelta(days=3650)
TOUCH_EVERY = "1 minute"
"""A key's last-used time is written at most this often."""

KEY_CREATE = "key.create"
KEY_REVOKE = "key.revoke"
KEY_ROTATE = "key.rotate"
TOKEN_ISSUE = "token.issue"
KEY_ACTIONS = (KEY_CREATE, KEY_REVOKE, KEY_ROTATE, TOKEN_ISSUE)
"""The audit actions of key operations."""


@dataclass(frozen=True)
class KeyRecord:
    """What a valid key grants: its role, the inspector it speaks for, if any, and its scope;
    with its expiry and the start of its digest (tokens made from it carry that)."""

    id: int
    name: str | None
    role: str
    inspector_id: int | None
    scope: Scope = UNLIMITED
    expires_at: datetime | None = None
    digest_start: str = ""


@dataclass(frozen=True)
class KeyInfo:
    """A stored key as admins list it: never its secret (the prefix only names it)."""

    id: int
    name: str | None
    prefix: str
    role: str
    inspector_id: int | None
    scope: Scope
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    rotated_at: datetime | None

    def state(self, now: datetime) -> str:
        """active, expired or revoked (at ``now``)."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


@dataclass(frozen=True)
class Operator:
    """Who changes keys, as the audit chain names them: a caller of the API or a command."""

    actor: str
    role: str = "admin"
    key_id: int | None = None
    client: str | None = None


def digest(token: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(token.encode()).hexdigest()


DIGEST_START = 16
"""How many hex digits of a key's digest its tokens carry (a rotated key's tokens fail)."""


def new_token() -> str:
    """A fresh random key."""
    return PREFIX + secrets.token_urlsafe(32)


def parse_lifetime(value: str) -> timedelta:
    """A key lifetime such as ``90d`` or ``12h`` (days or hours, at most 10 years)."""
    m = DURATION.match(value or "")
    if m is None or int(m[1]) == 0:
        raise BadRequest(
            f"expires={value!r}: give a number of days or hours, such as 90d or 12h",
            code="invalid_expiry",
        )
    lifetime = int(m[1]) * UNITS[m[2]]
    if lifetime > MAX_LIFETIME:
        raise BadRequest(f"expires={value!r} is past 3650 days", code="invalid_expiry")
    return lifetime


def audit_entry(by: Operator, action: str, key_id: int | None, **detail: Any) -> str:
    """The JSON array ``audit_append`` takes for one operation on key ``key_id`` (None: a
    token made from an identity-provider token)."""
    return orjson.dumps(
        [
            {
                "action": action,
                "actor": by.actor,
                "role": by.role,
                "key_id": by.key_id,
                "target": {"key": str(key_id)} if key_id is not None else None,
                "client": by.client,
                "detail": detail or None,
            }
        ]
    ).decode()


def _record(conn, by: Operator, action: str, key_id: int, **detail: Any) -> None:
    """Append the audit entry of a key operation in ``conn``'s transaction (psycopg)."""
    conn.execute("SELECT audit_append(%s::jsonb)", (audit_entry(by, action, key_id, **detail),))


def _unknown(conn, table: str, codes: Iterable[str]) -> list[str]:
    """The codes of ``codes`` that no row of ``table`` (districts, departments) has."""
    rows = conn.execute(
        f"SELECT c FROM unnest(%s::text[]) AS c WHERE NOT EXISTS "
        f"(SELECT 1 FROM {table} t WHERE t.code = c) ORDER BY c",
        (list(codes),),
    ).fetchall()
    return [r[0] for r in rows]


def check_scope(conn, role: str, scope: Scope) -> None:
    """BadRequest unless ``scope`` fits ``role`` and names districts and departments that
    exist (checked over a psycopg connection). Layer ids are checked against the catalog by
    the caller: storage does not know the catalog."""
    if scope.limited and role == "admin":
        raise BadRequest("an admin key cannot be scoped", code="invalid_scope")
    if scope.districts is not None:
        malformed = sorted(d for d in scope.districts if not DISTRICT_CODE.match(d))
        if malformed:
            raise BadRequest(
                f"districts are 6-digit division codes, not {', '.join(malformed)}",
                code="invalid_scope",
            )
    for table, codes in (("districts", scope.districts), ("departments", scope.departments)):
        unknown = _unknown(conn, table, codes) if codes else []
        if unknown:
            raise BadRequest(
                f"no {table} with the codes {', '.join(unknown)}", code="invalid_scope"
            )


def _array(names: frozenset[str] | None) -> list[str] | None:
    return None if names is None else sorted(names)


INFO_COLUMNS = (
    "id, name, prefix, role, inspector_id, districts, departments, layers, created_at,"
    " expires_at, last_used_at, revoked_at, rotated_at"
)


def _info(row: Any) -> KeyInfo:
    (kid, name, prefix, role, inspector, districts, departments, layers, *times) = row
    return KeyInfo(
        kid, name, prefix, role, inspector, Scope.of(districts, departments, layers), *times
    )


INSERT_KEY = (
    "INSERT INTO api_keys (name, prefix, key_hash, role, inspector_id, districts, departments,"
    " layers, expires_at) VALUES (%(name)s, %(prefix)s, %(hash)s, %(role)s, %(inspector)s,"
    " %(districts)s, %(departments)s, %(layers)s, now() + %(lifetime)s) "
    f"RETURNING {INFO_COLUMNS}"
)


def check_inspector(conn, inspector_id: int | None) -> None:
    """BadRequest unless ``inspector_id`` is None or a user that exists."""
    if inspector_id is None:
        return
    found = None
    if 1 <= inspector_id <= 2**31 - 1:
        found = conn.execute("SELECT 1 FROM users WHERE id = %s", (inspector_id,)).fetchone()
    if found is None:
        raise BadRequest(f"no user with the id {inspector_id}", code="unknown_user")


def issue_key(
    conn,
    role: str,
    name: str | None = None,
    inspector_id: int | None = None,
    scope: Scope = UNLIMITED,
    lifetime: timedelta | None = None,
    by: Operator | None = None,
) -> tuple[KeyInfo, str]:
    """Store a new key for ``role`` (limited to ``scope``, ending after ``lifetime``) over a
    psycopg connection, recorded in the audit chain as made ``by`` that operator; the key as
    listed and its token (shown once)."""
    if role not in ROLES:
        raise BadRequest(f"unknown role {role!r}; one of {', '.join(ROLES)}", code="unknown_role")
    check_scope(conn, role, scope)
    check_inspector(conn, inspector_id)
    token = new_token()
    row = conn.execute(
        INSERT_KEY,
        {
            "name": name,
            "prefix": token[:10],
            "hash": digest(token),
            "role": role,
            "inspector": inspector_id,
            "districts": _array(scope.districts),
            "departments": _array(scope.departments),
            "layers": _array(scope.layers),
            "lifetime": lifetime,
        },
    ).fetchone()
    info = _info(row)
    _record(conn, by or Operator("system"), KEY_CREATE, info.id, role=role, **scope.as_dict())
    return info, token


def create_key(
    conn,
    role: str,
    name: str | None = None,
    inspector_id: int | None = None,
    scope: Scope = UNLIMITED,
) -> str:
    """Store a new key for ``role`` (limited to ``scope``) over a psycopg connection and
    return the token (once)."""
    return issue_key(conn, role, name, inspector_id, scope)[1]


def list_keys(conn) -> list[KeyInfo]:
    """Every stored key, newest first (psycopg)."""
    rows = conn.execute(f"SELECT {INFO_COLUMNS} FROM api_keys ORDER BY id DESC").fetchall()
    return [_info(r) for r in rows]


def find_key(conn, key_id: int | None = None, name: str | None = None) -> KeyInfo:
    """The key with this id, or the one key that is not revoked with this name; NotFound,
    or BadRequest when the name is ambiguous or neither is given."""
    if (key_id is None) == (name is None):
        raise BadRequest("name a key by its id or by --name, not both", code="which_key")
    if key_id is not None:
        row = conn.execute(
            f"SELECT {INFO_COLUMNS} FROM api_keys WHERE id = %s",
            (key_id if 1 <= key_id <= 2**31 - 1 else 0,),
        ).fetchone()
        if row is None:
            raise NotFound(f"no key with the id {key_id}", code="key_not_found")
        return _info(row)
    rows = conn.execute(
        f"SELECT {INFO_COLUMNS} FROM api_keys WHERE name = %s AND revoked_at IS NULL ORDER BY id",
        (name,),
    ).fetchall()
    if not rows:
        raise NotFound(f"no key named {name!r} that is not revoked", code="key_not_found")
    if len(rows) > 1:
        ids = ", ".join(str(r[0]) for r in rows)
        raise BadRequest(
            f"{len(rows)} keys are named {name!r} (ids {ids}); give the id", code="which_key"
        )
    return _info(rows[0])


def revoke_key(conn, key_id: int, by: Operator) -> KeyInfo:
    """Revoke key ``key_id`` (psycopg), recorded in the audit chain; the key as it is now.
    Revoking a revoked key changes nothing and records nothing."""
    found = find_key(conn, key_id)
    if found.revoked_at is not None:
        return found
    row = conn.execute(
        f"UPDATE api_keys SET revoked_at = now() WHERE id = %s RETURNING {INFO_COLUMNS}",
        (key_id,),
    ).fetchone()
    _record(conn, by, KEY_REVOKE, key_id)
    return _info(row)


def rotate_key(conn, key_id: int, by: Operator) -> tuple[KeyInfo, str]:
    """Give key ``key_id`` a new secret (same id, role, scope and expiry) over psycopg,
    recorded in the audit chain: the old secret, and tokens made from it, are refused from
    now on. Conflict for a revoked or expired key. The key and its new token (shown once)."""
    found = find_key(conn, key_id)
    now = conn.execute("SELECT now()").fetchone()[0]
    if found.state(now) != "active":
        raise Conflict(f"key {key_id} is {found.state(now)}: make a new one", code="key_ended")
    token = new_token()
    row = conn.execute(
        f"UPDATE api_keys SET key_hash = %s, prefix = %s, rotated_at = now() WHERE id = %s "
        f"RETURNING {INFO_COLUMNS}",
        (digest(token), token[:10], key_id),
    ).fetchone()
    _record(conn, by, KEY_ROTATE, key_id)
    return _info(row), token


LIVE = "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())"
RECORD_COLUMNS = "id, name, role, inspector_id, districts, departments, layers, expires_at"


def _lookup_sql(where: str) -> str:
    """The live key matching ``where``, its last use written (at most once a minute)."""
    return (
        f"WITH k AS (SELECT {RECORD_COLUMNS}, key_hash FROM api_keys WHERE {where} AND {LIVE}),"
        " touched AS (UPDATE api_keys a SET last_used_at = now() FROM k WHERE a.id = k.id"
        f" AND (a.last_used_at IS NULL OR a.last_used_at < now() - interval '{TOUCH_EVERY}'))"
        f" SELECT {RECORD_COLUMNS}, key_hash FROM k"
    )


def _record_of(row: Any) -> KeyRecord | None:
    if row is None:
        return None
    return KeyRecord(
        *row[:4], scope=Scope.of(*row[4:7]), expires_at=row[7], digest_start=row[8][:DIGEST_START]
    )


async def lookup_key(conn: AsyncConnection, token: str) -> KeyRecord | None:
    """The live (not revoked, not expired) key with this token, or None; its last use is
    recorded (``conn`` must be in a transaction that commits)."""
    row = (await conn.execute(text(_lookup_sql("key_hash = :h")), {"h": digest(token)})).first()
    return _record_of(row)


async def live_key(conn: AsyncConnection, key_id: int) -> KeyRecord | None:
    """The live key with this id (for a token made from it), or None; its last use is
    recorded as by ``lookup_key``."""
    if not 1 <= key_id <= 2**31 - 1:
        return None
    row = (await conn.execute(text(_lookup_sql("id = :id")), {"id": key_id})).first()
    return _record_of(row)
