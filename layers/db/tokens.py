"""Short-lived signed tokens (``POST /auth/token``): a JWT signed with HMAC-SHA256 by the
secret every server process on the database shares (table ``token_secret``, migration 0014),
carrying the role, name, inspector and scope of the key (or identity-provider token) it was
made from.

A token made from a key names the key's id and the first digits of its digest: it is
accepted only while that key is live and has not been rotated (checked through the key
cache by the server). Each issue appends ``token.issue`` to the audit chain.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, replace
from typing import Any

import jwt
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gis.errors import ServiceUnavailable
from layers.db.keys import TOKEN_ISSUE, Operator, audit_entry
from layers.db.scope import Scope

ISSUER = "cityhex"
KEY_ID = "cityhex-token"
"""The ``kid`` header of CityHex's own tokens (identity-provider tokens carry their own)."""
ALGORITHM = "HS256"


@dataclass(frozen=True)
class TokenClaims:
    """What a token grants: the role, the name in history records, the inspector, the scope,
    and the key it was made from (None: from an identity-provider token)."""

    role: str
    name: str | None
    inspector_id: int | None
    scope: Scope
    key_id: int | None
    digest_start: str | None
    expires_at: float


def is_own_token(token: str) -> bool:
    """Whether a JWT's header names CityHex's token key (its signature is not checked)."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        return False
    return header.get("kid") == KEY_ID


async def signing_secret(conn: AsyncConnection) -> bytes:
    """The database's token-signing secret; 503 when the database has none (migrate)."""
    secret = (await conn.execute(text("SELECT secret FROM token_secret"))).scalar()
    if secret is None:
        raise ServiceUnavailable(
            "the database has no token secret: run cityhex migrate", code="no_token_secret"
        )
    return bytes(secret)


def sign(secret: bytes, claims: TokenClaims, now: float) -> str:
    """The token of ``claims`` (issued at ``now``)."""
    payload: dict[str, Any] = {
        "iss": ISSUER,
        "sub": f"key:{claims.key_id}" if claims.key_id is not None else f"oidc:{claims.name}",
        "iat": int(now),
        "exp": int(claims.expires_at),
        "jti": secrets.token_urlsafe(8),
        "role": claims.role,
        "name": claims.name,
        "inspector_id": claims.inspector_id,
        "scope": claims.scope.as_dict(),
    }
    if claims.key_id is not None:
        payload["key_id"] = claims.key_id
        payload["key_digest"] = claims.digest_start
    return jwt.encode(payload, secret, algorithm=ALGORITHM, headers={"kid": KEY_ID})


def verify(secret: bytes, token: str) -> TokenClaims:
    """The claims of a valid, unexpired token signed with ``secret``; jwt.PyJWTError (or
    ValueError for claims of the wrong shape) otherwise."""
    data = jwt.decode(
        token,
        secret,
        algorithms=[ALGORITHM],
        issuer=ISSUER,
        options={"require": ["exp", "iat", "iss", "role"]},
    )
    scope = data.get("scope") or {}
    key_id = data.get("key_id")
    inspector = data.get("inspector_id")
    if (
        not isinstance(data["role"], str)
        or not isinstance(scope, dict)
        or not (key_id is None or isinstance(key_id, int))
        or not (inspector is None or isinstance(inspector, int))
    ):
        raise ValueError("token claims of the wrong type")
    return TokenClaims(
        role=data["role"],
        name=data.get("name"),
        inspector_id=inspector,
        scope=Scope.of(scope.get("districts"), scope.get("departments"), scope.get("layers")),
        key_id=key_id,
        digest_start=data.get("key_digest"),
        expires_at=float(data["exp"]),
    )


async def issue_token(
    conn: AsyncConnection, claims: TokenClaims, by: Operator, minutes: float
) -> tuple[str, int]:
    """A new token for ``claims`` lasting ``minutes`` (less when ``claims`` ends sooner),
    recorded in the audit chain in ``conn``'s transaction; the token and its lifetime in
    seconds."""
    now = time.time()
    ends = min(claims.expires_at, now + minutes * 60)
    made = replace(claims, expires_at=ends)
    token = sign(await signing_secret(conn), made, now)
    lifetime = max(0, int(ends) - int(now))
    entry = audit_entry(by, TOKEN_ISSUE, claims.key_id, expires_in=lifetime, role=claims.role)
    await conn.execute(text("SELECT audit_append(CAST(:e AS jsonb))"), {"e": entry})
    return token, lifetime
