"""Authentication by API key or by a token of the city's identity provider
(``Authorization: Bearer KEY-OR-TOKEN``), and role checks.

No header means the anonymous role. A bearer value shaped like a JWT is checked as an OIDC
token (``spatial_api.oidc``), anything else as an API key. A key that is not known, or a
token that is not valid, is 401 with ``WWW-Authenticate: Bearer error="invalid_token"``; a
known caller whose role is not allowed is 403. The admin role is allowed everywhere. A key or
token may carry a scope (``layers.db.scope``) that the domains check beside the role.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from gis.errors import Forbidden, Unauthorized
from layers.db.keys import KeyRecord, lookup_key
from layers.db.scope import UNLIMITED, Scope
from spatial_api.oidc import IdentityProvider, InvalidToken, looks_like_jwt
from spatial_api.settings import api_settings

ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a role, the key (or token subject) and inspector behind it, and the
    scope the caller is limited to."""

    role: str
    key_id: int | None = None
    name: str | None = None
    inspector_id: int | None = None
    scope: Scope = UNLIMITED

    @property
    def actor(self) -> str:
        """How the caller is named in history records."""
        if self.role == ANONYMOUS:
            return ANONYMOUS
        return f"{self.role}:{self.name or self.key_id}"


class KeyCache:
    """Looked-up keys, trusted for a few seconds so hot calls skip the key query."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[float, KeyRecord | None]] = {}

    def get(self, token: str) -> tuple[bool, KeyRecord | None]:
        """(hit, record) for ``token``."""
        entry = self._entries.get(token)
        if entry and entry[0] > time.monotonic():
            return True, entry[1]
        return False, None

    def put(self, token: str, record: KeyRecord | None) -> None:
        """Remember a lookup's result."""
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[token] = (time.monotonic() + self.ttl, record)


class BearerKey(HTTPBearer):
    """``Authorization: Bearer <key>``, the security scheme OpenAPI declares for every route
    that depends on the caller. Resolves to the header as sent (None without one): the
    caller is looked up only when a route needs it, and a malformed header is refused
    there, with the same 401 as an unknown key."""

    async def __call__(self, request: Request) -> str | None:  # type: ignore[override]
        return request.headers.get("authorization")


BEARER = BearerKey(
    auto_error=False,
    scheme_name="bearer",
    description="An API key (`cityhex keys create --role ROLE`) or a token of the city's "
    "identity provider (OIDC); without one the caller is anonymous.",
)
Authorization = Annotated[str | None, Depends(BEARER)]
"""The request's Authorization header, declared as the bearer security scheme."""


def bearer_token(authorization: str | None) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header (None without a header); 401
    when the header is not of that form."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "the Authorization header must be 'Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return token.strip()


async def principal_from(request: Request, authorization: str | None) -> Principal:
    """The caller an Authorization header names (anonymous without one); 401 for a
    malformed header, an unknown key or an invalid token."""
    token = bearer_token(authorization)
    if token is None:
        return Principal(role=ANONYMOUS)
    if looks_like_jwt(token):
        return await token_principal(request.app.state.oidc, token)
    return await key_principal(request, token)


async def token_principal(provider: IdentityProvider | None, token: str) -> Principal:
    """The caller an identity provider's token names; 401 when no provider is configured or
    the token is not valid, 503 when the issuer cannot be reached."""
    if provider is None:
        raise InvalidToken("this server accepts no tokens (no identity provider); use an API key")
    grant = await provider.authenticate(token)
    return Principal(
        role=grant.role, name=grant.name, inspector_id=grant.user_id, scope=grant.scope
    )


async def key_principal(request: Request, token: str) -> Principal:
    """The caller an API key names; 401 for an unknown or revoked key. Keys are read through
    the application's key cache."""
    cache: KeyCache = request.app.state.key_cache
    hit, record = cache.get(token)
    if not hit:
        async with request.app.state.engine.connect() as conn:
            record = await lookup_key(conn, token)
        cache.put(token, record)
    if record is None:
        raise InvalidToken("unknown or revoked API key")
    return Principal(
        role=record.role,
        key_id=record.id,
        name=record.name,
        inspector_id=record.inspector_id,
        scope=record.scope,
    )


async def current_principal(request: Request, authorization: Authorization) -> Principal:
    """The caller, from the Bearer key (anonymous without one)."""
    return await principal_from(request, authorization)


@dataclass(frozen=True)
class CallerLookup:
    """The caller, looked up only when asked: for routes that need no key for public
    layers, so a request for those never meets the key check."""

    request: Request
    authorization: str | None

    async def __call__(self) -> Principal:
        """The caller (see principal_from)."""
        return await principal_from(self.request, self.authorization)


async def caller_lookup(request: Request, authorization: Authorization) -> CallerLookup:
    """The request's caller, to be looked up when needed."""
    return CallerLookup(request, authorization)


def require_role(*roles: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that lets through only the given roles (and admin)."""
    allowed = frozenset(roles) | {"admin"}

    async def check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if principal.role in allowed or ANONYMOUS in allowed:
            return principal
        if principal.role == ANONYMOUS:
            raise Unauthorized(
                f"this needs an API key with one of the roles: {', '.join(sorted(allowed))}",
                headers={"WWW-Authenticate": "Bearer"},
            )
        raise Forbidden(
            f"role {principal.role!r} may not do this; allowed: {', '.join(sorted(allowed))}"
        )

    return check


def new_key_cache() -> KeyCache:
    """A key cache with the configured lifetime."""
    return KeyCache(api_settings().key_cache_seconds)
