"""API keys: made once, stored as a SHA-256 digest, looked up by that digest.

Keys are 256-bit random tokens, so a plain (unsalted) digest is safe to store and lets a
request's key be found with one indexed lookup. A key may carry a scope (``layers.db.scope``):
the districts, departments and layers it is limited to.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gis.errors import BadRequest
from layers.db.models import ROLES
from layers.db.scope import UNLIMITED, Scope

PREFIX = "chx_"
DISTRICT_CODE = re.compile(r"^[0-9]{6}$")


@dataclass(frozen=True)
class KeyRecord:
    """What a valid key grants: its role, the inspector it speaks for, if any, and its scope."""

    id: int
    name: str | None
    role: str
    inspector_id: int | None
    scope: Scope = UNLIMITED


def digest(token: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh random key."""
    return PREFIX + secrets.token_urlsafe(32)


INSERT_KEY = (
    "INSERT INTO api_keys (name, prefix, key_hash, role, inspector_id, districts, departments,"
    " layers) VALUES (%(name)s, %(prefix)s, %(hash)s, %(role)s, %(inspector)s, %(districts)s,"
    " %(departments)s, %(layers)s) RETURNING id"
)


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


def create_key(
    conn,
    role: str,
    name: str | None = None,
    inspector_id: int | None = None,
    scope: Scope = UNLIMITED,
) -> str:
    """Store a new key for ``role`` (limited to ``scope``) over a psycopg connection and
    return the token (once)."""
    if role not in ROLES:
        raise BadRequest(f"unknown role {role!r}; one of {', '.join(ROLES)}", code="unknown_role")
    check_scope(conn, role, scope)
    token = new_token()
    params = {"name": name, "prefix": token[:10], "hash": digest(token), "role": role}
    conn.execute(
        INSERT_KEY,
        {
            **params,
            "inspector": inspector_id,
            "districts": _array(scope.districts),
            "departments": _array(scope.departments),
            "layers": _array(scope.layers),
        },
    )
    return token


async def lookup_key(conn: AsyncConnection, token: str) -> KeyRecord | None:
    """The live key with this token, or None."""
    row = (
        await conn.execute(
            text(
                "SELECT id, name, role, inspector_id, districts, departments, layers "
                "FROM api_keys WHERE key_hash = :h AND revoked_at IS NULL"
            ),
            {"h": digest(token)},
        )
    ).first()
    if row is None:
        return None
    return KeyRecord(*row[:4], scope=Scope.of(*row[4:]))
