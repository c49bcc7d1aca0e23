"""The request dependencies routers take: who is calling, the database, the services of the
process, and the layer a request addresses.

Routers declare these as parameters (``caller: Caller``, ``engine: Engine``, ...) and never
reach into ``request.app.state`` nor read the Authorization header themselves; every route
that depends on the caller thereby declares the bearer security scheme in OpenAPI.

A handler that only reads takes ``ReadEngine`` or ``ReadConnection``: a read replica's when
one may answer (``layers.db.replicas``: healthy, and it has replayed every change notice
this process has heard), else the primary's. A handler that writes, or reads to decide a
write, takes ``Engine`` or ``Connection``: always the primary.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import asyncpg
from fastapi import Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gis.errors import Forbidden, Unauthorized
from layers.catalog.metadata import with_hidden_extras
from layers.catalog.registry import Layer, load_catalog
from layers.db.outage import outage
from layers.db.replicas import ReplicaSet
from layers.features.scope import check_layer
from layers.grid.lookup import open_lookup_pool
from layers.incidents.events import EventHub
from spatial_api.auth import (
    ANONYMOUS,
    CallerLookup,
    Principal,
    caller_lookup,
    current_principal,
    require_role,
)
from spatial_api.rate_limit import RateLimiter, public_report_limiter
from tiles.service import TileService

STAFF = ("app", "inspector", "editor", "dispatcher")
"""The roles that read the grid and cases (admin always may)."""

Caller = Annotated[Principal, Depends(current_principal)]
"""Whoever calls, anonymous included; 401 for a malformed header or an unknown key."""
LazyCaller = Annotated[CallerLookup, Depends(caller_lookup)]
"""The caller, looked up only when the route asks (public layers need no key)."""
Reader = Annotated[Principal, Depends(require_role(*STAFF))]
"""An app, inspector, editor, dispatcher or admin key."""
HistoryReader = Annotated[Principal, Depends(require_role("inspector", "editor", "dispatcher"))]
"""An inspector, editor, dispatcher or admin key."""
Dispatcher = Annotated[Principal, Depends(require_role("dispatcher"))]
"""A dispatcher or admin key."""
App = Annotated[Principal, Depends(require_role("app"))]
"""An app or admin key."""
Admin = Annotated[Principal, Depends(require_role())]
"""An admin key."""
PatrolReader = Annotated[Principal, Depends(require_role("inspector", "dispatcher"))]
"""An inspector, dispatcher or admin key: who may read patrol data (positions)."""
FixSender = Annotated[Principal, Depends(require_role("inspector"))]
"""An inspector or admin key: who may send GPS fixes."""


def may_read_cases(caller: Principal) -> bool:
    """Whether the caller may read cases (as a Reader may)."""
    return caller.role in STAFF or caller.role == "admin"


async def get_engine(request: Request) -> AsyncEngine:
    """The process's async engine."""
    return request.app.state.engine


async def get_connection(request: Request) -> AsyncIterator[AsyncConnection]:
    """A pooled connection for the handler, in a transaction committed before it answers."""
    async with request.app.state.engine.begin() as conn:
        yield conn


async def get_read_engine(request: Request) -> AsyncEngine:
    """The engine of a read replica that may answer a read now and accepts a connection,
    else the primary's (a replica that refuses is skipped until its health check passes)."""
    replicas: ReplicaSet = request.app.state.replicas
    replica = await replicas.choose()
    if replica is None:
        return request.app.state.engine
    try:
        async with replica.engine.connect():
            pass
    except Exception as exc:
        if outage(exc) is None:
            raise
        replicas.failed(replica)
        return request.app.state.engine
    return replica.engine


async def get_read_connection(request: Request) -> AsyncIterator[AsyncConnection]:
    """A pooled connection of ``get_read_engine``'s engine, in a transaction, for a handler
    that only reads."""
    async with (await get_read_engine(request)).begin() as conn:
        yield conn


async def get_tile_service(request: Request) -> TileService:
    """The process's tile service."""
    return request.app.state.tiles


async def get_grid_lookup_pool(
    request: Request,
) -> AsyncIterator[asyncpg.Pool | asyncpg.Connection]:
    """What serves /grid/lookup: a connection of a read replica's own lookup pool (opened on
    first use) when one may answer and accepts it, else the primary's lookup pool (a replica
    that refuses is skipped until its health check passes)."""
    replicas: ReplicaSet = request.app.state.replicas
    replica = await replicas.choose()
    if replica is None:
        yield request.app.state.grid_lookup_pool
        return
    pool = await replicas.pool(replica, "grid_lookup", open_lookup_pool)
    try:
        conn = await pool.acquire()
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        replicas.failed(replica)
        yield request.app.state.grid_lookup_pool
        return
    try:
        yield conn
    finally:
        await pool.release(conn)


async def get_report_limiter(request: Request) -> RateLimiter:
    """The process's limiter of anonymous incident reports (made on first use)."""
    state = request.app.state
    if not hasattr(state, "public_report_limiter"):
        state.public_report_limiter = public_report_limiter()
    return state.public_report_limiter


async def get_incident_events(request: Request) -> EventHub:
    """The process's hub of incident events (made on first use)."""
    state = request.app.state
    if not hasattr(state, "incident_events"):
        state.incident_events = EventHub(state.engine)
    return state.incident_events


async def get_database_url(request: Request) -> str | None:
    """The database URL the application was made for (None: the configured one)."""
    return request.app.state.database_url


Engine = Annotated[AsyncEngine, Depends(get_engine)]
Connection = Annotated[AsyncConnection, Depends(get_connection, scope="function")]
ReadEngine = Annotated[AsyncEngine, Depends(get_read_engine)]
"""A replica's engine when one may answer, else the primary's: for handlers that only read."""
ReadConnection = Annotated[AsyncConnection, Depends(get_read_connection, scope="function")]
"""A connection of ``ReadEngine``, in a transaction: for handlers that only read."""
Tiles = Annotated[TileService, Depends(get_tile_service)]
GridLookupPool = Annotated[
    asyncpg.Pool | asyncpg.Connection, Depends(get_grid_lookup_pool, scope="function")
]
ReportLimiter = Annotated[RateLimiter, Depends(get_report_limiter)]
IncidentEvents = Annotated[EventHub, Depends(get_incident_events)]
DatabaseUrl = Annotated[str | None, Depends(get_database_url)]


def readable(layer: Layer, caller: Principal) -> Layer:
    """``layer`` as the caller may see it (without the properties its role may not read,
    and, on a layer with a read scope, only the rows its scope lets it read); 401
    (anonymous) or 403 when it may not read the layer."""
    if not layer.can_read(caller.role):
        if caller.role == ANONYMOUS:
            raise Unauthorized(
                f"layer {layer.id} needs an API key", headers={"WWW-Authenticate": "Bearer"}
            )
        raise Forbidden(f"role {caller.role!r} may not read layer {layer.id}")
    return layer.for_caller(caller.role, caller.visibility)


async def path_layer(layer_id: str) -> Layer:
    """The catalog layer of the path's ``layer_id``; 404 when there is none."""
    return load_catalog().get(layer_id)


async def queried_layer(layer: Annotated[str, Query(description="The layer id")]) -> Layer:
    """The catalog layer of the ``layer`` query parameter; 404 when there is none."""
    return load_catalog().get(layer)


async def readable_path_layer(
    layer: Annotated[Layer, Depends(path_layer)], caller: Caller, engine: Engine
) -> Layer:
    """The path's layer, checked readable by the caller (404 before 401/403), hiding the
    free-form keys the caller's view may not show even to filters."""
    return await with_hidden_extras(engine, readable(layer, caller))


async def readable_queried_layer(
    layer: Annotated[Layer, Depends(queried_layer)], caller: Caller, engine: Engine
) -> Layer:
    """The ``layer`` parameter's layer, checked readable by the caller (as
    ``readable_path_layer``)."""
    return await with_hidden_extras(engine, readable(layer, caller))


ReadableLayer = Annotated[Layer, Depends(readable_path_layer)]
"""The layer of the path's ``layer_id``, checked readable by the caller."""
QueriedLayer = Annotated[Layer, Depends(readable_queried_layer)]
"""The layer of the ``layer`` query parameter, checked readable by the caller."""


async def editable_layer(layer: Annotated[Layer, Depends(path_layer)], caller: Caller) -> Layer:
    """The path's whole layer (a write keeps every property) if the caller may read it and
    its role and scope let it write its features; 401/403 otherwise (which features of the
    layer the scope allows, the write itself checks)."""
    readable(layer, caller)
    if layer.can_edit(caller.role):
        check_layer(layer, caller.scope)
        return layer
    if not layer.editable:
        raise Forbidden(
            f"layer {layer.id} is not editable through the Features API", code="layer_not_editable"
        )
    allowed = ", ".join(["admin", *layer.editable_by])
    if caller.role == ANONYMOUS:
        raise Unauthorized(
            f"editing {layer.id} needs an API key with one of the roles {allowed}",
            headers={"WWW-Authenticate": "Bearer"},
        )
    raise Forbidden(f"role {caller.role!r} may not edit layer {layer.id}; allowed: {allowed}")


async def history_layer(layer: ReadableLayer, caller: Caller) -> Layer:
    """The path's layer when the caller has a key: feature history names who edited."""
    if caller.role == ANONYMOUS:
        raise Unauthorized(
            "feature history needs an API key", headers={"WWW-Authenticate": "Bearer"}
        )
    return layer


EditableLayer = Annotated[Layer, Depends(editable_layer)]
"""The layer of the path's ``layer_id``, checked writable by the caller."""
HistoryLayer = Annotated[Layer, Depends(history_layer)]
"""The layer of the path's ``layer_id``, readable by the caller, who has a key."""
