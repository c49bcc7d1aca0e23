"""Authentication by API key, by a CityHex token (``POST /auth/token``) or by a token of
the city's identity provider (``Authorization: Bearer KEY-OR-TOKEN``), and role checks.

No header means the anonymous role. A bearer value shaped like a JWT is a CityHex token
when its header names CityHex's key id (``layers.db.tokens``), else an OIDC token
(``spatial_api.oidc``); anything else is an API key. A key that is not known, revoked or
expired, or a token that is not valid, is 401 with ``WWW-Authenticate: Bearer
error="invalid_token"``; a known caller whose role is not allowed is 403. The admin role is
allowed everywhere. A key or token may carry a scope (``layers.db.scope``) that the domains
check beside the role.

Browsers cannot put headers on ``EventSource`` or on the tile requests of a map library, so
a CityHex token (never a key) is also accepted as ``?access_token=`` on ``GET /events`` and on
tile, TileJSON and style URLs (``QUERY_TOKEN_PATHS``); everywhere else the parameter is
ignored. Keys are read through a per-process cache (``CITYHEX_KEY_CACHE_SECONDS``), and a
token made from a key is accepted only while that key, read through the same cache, is live
and has not been rotated.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPBearer
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import HTTPConnection

from gis.errors import BadRequest, Forbidden, Unauthorized
from layers.catalog.registry import load_catalog
from layers.db import tokens
from layers.db.keys import KeyRecord, live_key, lookup_key
from layers.db.scope import UNLIMITED, Scope, Visibility
from spatial_api.oidc import IdentityProvider, InvalidToken, looks_like_jwt
from spatial_api.settings import api_settings

ANONYMOUS = "anonymous"
QUERY_TOKEN_PATHS = re.compile(
    r"^/events$"
    r"|^/tiles/[^/]+/(tilejson\.json|[0-9]+/[0-9]+/[0-9]+\.mvt)$"
    r"|^/collections/[^/]+/tiles/WebMercatorQuad/[0-9]+/[0-9]+/[0-9]+$"
    r"|^/styles(/[^/]+\.json)?$"
)
"""The paths that take a token as ``?access_token=`` (GET and HEAD only)."""
KEY_CREDENTIAL, TOKEN_CREDENTIAL, OIDC_CREDENTIAL = "key", "token", "oidc"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a role, the key (or token subject) and inspector behind it, and the
    scope the caller is limited to."""

    role: str
    key_id: int | None = None
    name: str | None = None
    inspector_id: int | None = None
    scope: Scope = UNLIMITED
    credential: str | None = None
    """key, token (a CityHex token) or oidc (an identity-provider token); None: anonymous."""
    expires_at: float | None = None
    """When the credential ends (Unix time; None: when revoked)."""
    digest_start: str | None = None
    """The start of the key's digest (a key's caller): tokens made from it carry it."""

    @property
    def visibility(self) -> Visibility:
        """Whose rows of a layer with a read scope (incidents) the caller reads."""
        return Visibility.of(self.role, self.inspector_id, self.scope)

    @property
    def actor(self) -> str:
        """How the caller is named in history records."""
        if self.role == ANONYMOUS:
            return ANONYMOUS
        return f"{self.role}:{self.name or self.key_id}"


CacheEntry = str | tuple[str, int]
"""What the key cache is keyed by: a key as sent, or ``("id", ID)`` (never equal to a key)."""


class KeyCache:
    """Looked-up keys, trusted for a few seconds so hot calls skip the key query."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[CacheEntry, tuple[float, KeyRecord | None]] = {}

    def get(self, token: CacheEntry) -> tuple[bool, KeyRecord | None]:
        """(hit, record) for ``token`` (a key, or ``("id", ID)`` for a key by its id)."""
        entry = self._entries.get(token)
        if entry and entry[0] > time.monotonic():
            return True, entry[1]
        return False, None

    def put(self, token: CacheEntry, record: KeyRecord | None) -> None:
        """Remember a lookup's result."""
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[token] = (time.monotonic() + self.ttl, record)

    def forget(self, key_id: int) -> None:
        """Drop what is remembered of key ``key_id`` (this process revoked or rotated it)."""
        stale = [t for t, (_, r) in self._entries.items() if r is not None and r.id == key_id]
        for token in stale:
            del self._entries[token]


class TokenVerifier:
    """Checks CityHex tokens: the database's signing secret, read again after ``ttl``
    seconds (so a replaced secret voids old tokens in every process within that time), and
    the tokens verified with it, trusted as long (never past their expiry), so a hot
    caller's token is verified once and then costs a dictionary lookup."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._secret: bytes | None = None
        self._until = -float("inf")
        self._verified: dict[str, tuple[float, tokens.TokenClaims]] = {}

    async def secret(self, request: HTTPConnection) -> bytes:
        """The secret (read from the database when the kept one is old)."""
        if self._secret is None or time.monotonic() >= self._until:
            async with request.app.state.engine.connect() as conn:
                self._secret = await tokens.signing_secret(conn)
            self._until = time.monotonic() + self.ttl
        return self._secret

    def knows(self, token: str) -> bool:
        """Whether ``token`` was verified as a CityHex token (and is still trusted)."""
        entry = self._verified.get(token)
        return entry is not None and entry[0] > time.monotonic()

    async def claims(self, request: HTTPConnection, token: str) -> tokens.TokenClaims:
        """The claims of a valid token; jwt.ExpiredSignatureError once it has expired,
        another jwt.PyJWTError or ValueError when it is not a valid token."""
        entry = self._verified.get(token)
        if entry is not None and entry[0] > time.monotonic():
            if entry[1].expires_at <= time.time():
                raise jwt.ExpiredSignatureError("the token has expired")
            return entry[1]
        claims = tokens.verify(await self.secret(request), token)
        if len(self._verified) > 10_000:
            self._verified.clear()
        self._verified[token] = (time.monotonic() + self.ttl, claims)
        return claims


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
    description="An API key (`cityhex keys create --role ROLE`), a short-lived token of "
    "`POST /auth/token`, or a token of the city's identity provider (OIDC); without one the "
    "caller is anonymous.",
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


def query_token(request: HTTPConnection) -> str | None:
    """The ``access_token`` query parameter, on the paths and methods that take it."""
    if request.scope.get("method") not in ("GET", "HEAD"):
        return None
    if not QUERY_TOKEN_PATHS.match(request.url.path):
        return None
    return request.query_params.get("access_token") or None


async def principal_from(request: HTTPConnection, authorization: str | None) -> Principal:
    """The caller an Authorization header (or, where taken, ``?access_token=``) names
    (anonymous without either); 401 for a malformed header, an unknown key or an invalid
    token."""
    token = bearer_token(authorization)
    if token is None:
        token = query_token(request)
        if token is None:
            return Principal(role=ANONYMOUS)
        if not looks_like_jwt(token) or not tokens.is_own_token(token):
            raise InvalidToken(
                "?access_token= takes a token from POST /auth/token, never a key or another "
                "issuer's token"
            )
    if looks_like_jwt(token):
        verifier: TokenVerifier = request.app.state.token_verifier
        if verifier.knows(token) or tokens.is_own_token(token):
            return await own_token_principal(request, token)
        return await token_principal(request.app.state.oidc, token)
    return await key_principal(request, token)


async def cached_key(
    request: HTTPConnection,
    entry: CacheEntry,
    lookup: Callable[[AsyncConnection], Awaitable[KeyRecord | None]],
) -> KeyRecord | None:
    """A live key through the application's key cache: the entry ``entry`` (a key, or
    ``("id", ID)``), else ``lookup(conn)``, which records the key's last use."""
    cache: KeyCache = request.app.state.key_cache
    hit, record = cache.get(entry)
    if not hit:
        async with request.app.state.engine.begin() as conn:
            record = await lookup(conn)
        cache.put(entry, record)
    return None if record is None or ended(record) else record


def ended(record: KeyRecord) -> bool:
    """Whether a key has expired (a cached one may have since it was read)."""
    return record.expires_at is not None and record.expires_at.timestamp() <= time.time()


async def own_token_principal(request: HTTPConnection, token: str) -> Principal:
    """The caller a CityHex token names; 401 when it is not valid, has expired, or the key
    it was made from is revoked, expired or rotated."""
    verifier: TokenVerifier = request.app.state.token_verifier
    try:
        claims = await verifier.claims(request, token)
    except jwt.ExpiredSignatureError:
        raise InvalidToken("the token has expired; get a new one from POST /auth/token") from None
    except (jwt.PyJWTError, ValueError):
        raise InvalidToken("the token is not a valid CityHex token") from None
    if claims.key_id is not None:
        key_id = claims.key_id
        record = await cached_key(request, ("id", key_id), lambda c: live_key(c, key_id))
        if record is None or record.digest_start != claims.digest_start:
            raise InvalidToken("the key this token was made from is revoked, expired or rotated")
    return Principal(
        role=claims.role,
        key_id=claims.key_id,
        name=claims.name,
        inspector_id=claims.inspector_id,
        scope=claims.scope,
        credential=TOKEN_CREDENTIAL,
        expires_at=claims.expires_at,
    )


async def token_principal(provider: IdentityProvider | None, token: str) -> Principal:
    """The caller an identity provider's token names; 401 when no provider is configured or
    the token is not valid, 503 when the issuer cannot be reached."""
    if provider is None:
        raise InvalidToken("this server accepts no tokens (no identity provider); use an API key")
    grant = await provider.authenticate(token)
    expires = jwt.decode(token, options={"verify_signature": False}).get("exp")
    return Principal(
        role=grant.role,
        name=grant.name,
        inspector_id=grant.user_id,
        scope=grant.scope,
        credential=OIDC_CREDENTIAL,
        expires_at=float(expires) if isinstance(expires, int | float) else None,
    )


async def key_principal(request: HTTPConnection, token: str) -> Principal:
    """The caller an API key names; 401 for an unknown, revoked or expired key. Keys are
    read through the application's key cache."""
    record = await cached_key(request, token, lambda c: lookup_key(c, token))
    if record is None:
        raise InvalidToken("unknown, revoked or expired API key")
    return Principal(
        role=record.role,
        key_id=record.id,
        name=record.name,
        inspector_id=record.inspector_id,
        scope=record.scope,
        credential=KEY_CREDENTIAL,
        expires_at=record.expires_at.timestamp() if record.expires_at else None,
        digest_start=record.digest_start,
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


def token_claims(principal: Principal) -> tokens.TokenClaims:
    """What a token made for ``principal`` carries; 401 for the anonymous caller, 403 for
    a caller that holds a token already (a token never makes a token: it would never end)."""
    if principal.role == ANONYMOUS:
        raise Unauthorized(
            "POST /auth/token needs an API key (or an identity-provider token)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if principal.credential == TOKEN_CREDENTIAL:
        raise Forbidden(
            "a token cannot make another token: send the key itself", code="token_from_token"
        )
    return tokens.TokenClaims(
        role=principal.role,
        name=principal.name,
        inspector_id=principal.inspector_id,
        scope=principal.scope,
        key_id=principal.key_id,
        digest_start=principal.digest_start,
        expires_at=principal.expires_at if principal.expires_at is not None else math.inf,
    )


def key_scope(
    districts: list[str] | None, departments: list[str] | None, layers: list[str] | None
) -> Scope:
    """The scope of a key to make; BadRequest for a layer the catalog does not have
    (districts and departments are checked by ``layers.db.keys``)."""
    catalog = load_catalog()
    unknown = sorted(set(layers or ()) - {layer.id for layer in catalog})
    if unknown:
        raise BadRequest(f"no layers with the ids {', '.join(unknown)}", code="unknown_layer")
    return Scope.of(districts, departments, layers)


def new_key_cache() -> KeyCache:
    """A key cache with the configured lifetime."""
    return KeyCache(api_settings().key_cache_seconds)


def new_token_verifier() -> TokenVerifier:
    """The checker of CityHex tokens, trusting what it read as long as keys are trusted."""
    return TokenVerifier(api_settings().key_cache_seconds)
