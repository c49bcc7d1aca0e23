"""Tokens and API keys over HTTP: ``POST /auth/token`` for any caller with a key (or an
identity-provider token), and the keys' lifecycle for admins (``/auth/keys``).

The logic lives in ``layers.db.keys`` and ``layers.db.tokens``, which ``cityhex keys`` calls
too; each operation appends its audit entry in its own transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import psycopg
from fastapi import APIRouter, Path, Request
from starlette.concurrency import run_in_threadpool

from layers.db.engine import connect_sync, database_url
from layers.db.keys import (
    KeyInfo,
    Operator,
    issue_key,
    list_keys,
    parse_lifetime,
    revoke_key,
    rotate_key,
)
from layers.db.tokens import issue_token
from spatial_api.auth import KeyCache, Principal, key_scope, token_claims
from spatial_api.deps import Admin, Caller, Connection, DatabaseUrl
from spatial_api.openapi import errors
from spatial_api.schemas.auth import KeyList, KeyListed, KeyMade, NewKey, TokenAnswer
from spatial_api.settings import api_settings

router = APIRouter(tags=["auth"])
T = TypeVar("T")

KeyId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The key's id")]


def operator(request: Request, caller: Principal) -> Operator:
    """The caller as the audit chain names who changed a key."""
    return Operator(
        caller.actor, caller.role, caller.key_id, request.client.host if request.client else None
    )


def listed(info: KeyInfo, now: datetime | None = None) -> dict[str, Any]:
    """A key as listed (never its secret)."""
    return {
        "id": info.id,
        "name": info.name,
        "prefix": info.prefix,
        "role": info.role,
        "inspector_id": info.inspector_id,
        "scope": info.scope.as_dict(),
        "state": info.state(now or datetime.now(UTC)),
        "created_at": info.created_at,
        "expires_at": info.expires_at,
        "last_used_at": info.last_used_at,
        "revoked_at": info.revoked_at,
        "rotated_at": info.rotated_at,
    }


def on_database(url: str | None, work: Callable[[psycopg.Connection], T]) -> T:
    """Run ``work(conn)`` in one transaction on a psycopg connection, committed when it
    returns (rolled back when it raises)."""
    with connect_sync(url or database_url()) as conn:
        return work(conn)


@router.post(
    "/auth/token",
    summary="A short-lived token for the caller's key (or identity-provider token)",
    response_model=TokenAnswer,
)
async def make_token(request: Request, caller: Caller, conn: Connection) -> dict[str, Any]:
    """A signed token carrying the caller's role, inspector and scope, valid for
    ``CITYHEX_TOKEN_MINUTES`` (less when the key or the identity-provider token ends
    sooner), and only while the key it was made from is neither revoked nor rotated."""
    claims = token_claims(caller)
    token, lifetime = await issue_token(
        conn, claims, operator(request, caller), api_settings().token_minutes
    )
    return {"access_token": token, "token_type": "Bearer", "expires_in": lifetime}


@router.get("/auth/keys", summary="Every API key, never its secret (admin)", response_model=KeyList)
async def keys_list(_: Admin, url: DatabaseUrl) -> dict[str, Any]:
    """Every stored key, newest first, with its state, expiry and last use."""
    now = datetime.now(UTC)
    return {"keys": [listed(k, now) for k in await run_in_threadpool(on_database, url, list_keys)]}


@router.post(
    "/auth/keys", summary="Make an API key (admin)", response_model=KeyMade, status_code=201
)
async def keys_create(
    body: NewKey, request: Request, caller: Admin, url: DatabaseUrl
) -> dict[str, Any]:
    """A new key, its secret shown in this answer only."""
    scope = key_scope(body.districts, body.departments, body.layers)
    lifetime = parse_lifetime(body.expires) if body.expires is not None else None
    info, token = await run_in_threadpool(
        on_database,
        url,
        lambda conn: issue_key(
            conn,
            body.role,
            body.name,
            body.inspector_id,
            scope,
            lifetime,
            operator(request, caller),
        ),
    )
    return {**listed(info), "key": token}


@router.delete("/auth/keys/{key_id}", summary="Revoke an API key (admin)", response_model=KeyListed)
async def keys_revoke(
    key_id: KeyId, request: Request, caller: Admin, url: DatabaseUrl
) -> dict[str, Any]:
    """Revoke the key: every worker refuses it, and the tokens made from it, within
    ``CITYHEX_KEY_CACHE_SECONDS`` (this one at once)."""
    info = await run_in_threadpool(
        on_database, url, lambda conn: revoke_key(conn, key_id, operator(request, caller))
    )
    cache: KeyCache = request.app.state.key_cache
    cache.forget(key_id)
    return listed(info)


@router.post(
    "/auth/keys/{key_id}/rotate",
    summary="Give an API key a new secret (admin)",
    response_model=KeyMade,
    responses=errors(404, 409),
)
async def keys_rotate(
    key_id: KeyId, request: Request, caller: Admin, url: DatabaseUrl
) -> dict[str, Any]:
    """The same key (id, role, scope, expiry) with a new secret, shown in this answer only;
    the old secret and its tokens are refused as a revoked key's are."""
    info, token = await run_in_threadpool(
        on_database, url, lambda conn: rotate_key(conn, key_id, operator(request, caller))
    )
    cache: KeyCache = request.app.state.key_cache
    cache.forget(key_id)
    return {**listed(info), "key": token}
