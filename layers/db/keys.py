"""API keys: made once, stored as a SHA-256 digest, looked up by that digest.

Keys are 256-bit random tokens, so a plain (unsalted) digest is safe to store and lets a
request's key be found with one indexed lookup.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gis.errors import BadRequest
from layers.db.models import ROLES

PREFIX = "chx_"


@dataclass(frozen=True)
class KeyRecord:
    """What a valid key grants: its role, and the inspector it speaks for, if any."""

    id: int
    name: str | None
    role: str
    inspector_id: int | None


def digest(token: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh random key."""
    return PREFIX + secrets.token_urlsafe(32)


INSERT_KEY = (
    "INSERT INTO api_keys (name, prefix, key_hash, role, inspector_id) "
    "VALUES (%(name)s, %(prefix)s, %(hash)s, %(role)s, %(inspector)s) RETURNING id"
)


def create_key(conn, role: str, name: str | None = None, inspector_id: int | None = None) -> str:
    """Store a new key for ``role`` over a psycopg connection and return the token (once)."""
    if role not in ROLES:
        raise BadRequest(f"unknown role {role!r}; one of {', '.join(ROLES)}", code="unknown_role")
    token = new_token()
    params = {"name": name, "prefix": token[:10], "hash": digest(token), "role": role}
    conn.execute(INSERT_KEY, {**params, "inspector": inspector_id})
    return token


async def lookup_key(conn: AsyncConnection, token: str) -> KeyRecord | None:
    """The live key with this token, or None."""
    row = (
        await conn.execute(
            text(
                "SELECT id, name, role, inspector_id FROM api_keys "
                "WHERE key_hash = :h AND revoked_at IS NULL"
            ),
            {"h": digest(token)},
        )
    ).first()
    return KeyRecord(*row) if row else None
