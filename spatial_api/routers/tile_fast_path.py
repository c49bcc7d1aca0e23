"""The tile fast path: plain tile requests answered straight from ASGI.

A plain tile request is a GET of ``/tiles/{layers}/{z}/{x}/{y}.mvt`` or of the OGC alias,
with no query string, from a caller whose role is known without a query (no key, or a key in
the key cache) and who may read its layers; the tile shows the layers as that role sees
them. Such a request, cache hit or miss, skips FastAPI's dependency solving and
validation; it is still counted under its route template by the metrics middleware.
Anything else, and any request whose path does not check out, goes on to the tile routes
(``spatial_api.routers.tiles``), which answer it or say what is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fastapi import APIRouter
from starlette.datastructures import Headers
from starlette.routing import Match
from starlette.types import Receive, Scope, Send

from gis.errors import CityHexError
from gis.tilemath import check_tile
from layers.catalog.registry import load_catalog
from spatial_api.auth import ANONYMOUS, ended
from spatial_api.errors import error_response, http_status
from spatial_api.routers.tiles import tile_answer
from tiles.filters import TileFilters
from tiles.service import TileService
from tiles.sources import Source, parse_sources, same_for_everyone


@dataclass(frozen=True)
class TileRoute:
    """One tile URL form: its pattern, and its template as the metrics name the route."""

    pattern: re.Pattern[str]
    path: str


TILE_ROUTES = (
    TileRoute(
        re.compile(r"^/tiles/([^/]+)/([0-9]{1,2})/([0-9]{1,8})/([0-9]{1,8})\.mvt$"),
        "/tiles/{layers}/{z}/{x}/{y}.mvt",
    ),
    TileRoute(
        re.compile(
            r"^/collections/([^/,]+)/tiles/WebMercatorQuad/([0-9]{1,2})/([0-9]{1,8})/([0-9]{1,8})$"
        ),
        "/collections/{layer}/tiles/WebMercatorQuad/{z}/{x}/{y}",
    ),
)


PLAIN_TILE = "cityhex.plain_tile"
"""The scope key under which matches() leaves the plain tile request for handle()."""


@dataclass(frozen=True)
class PlainTile:
    """A plain tile request: its sources, its tile and the route form it came by."""

    sources: list[Source]
    z: int
    x: int
    y: int
    route: TileRoute


def cached_role(scope: Scope) -> str | None:
    """The caller's role as known without a query: anonymous without an Authorization
    header, the role of an unscoped live key in the key cache; None otherwise (the route
    looks it up)."""
    token = next((v for k, v in scope["headers"] if k == b"authorization"), None)
    if token is None:
        return ANONYMOUS
    scheme, _, key = token.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer":
        return None
    hit, record = scope["app"].state.key_cache.get(key.strip())
    if not hit or record is None or ended(record):
        return None
    # a scoped key, or one speaking for an inspector, sees fewer cases: the routes narrow
    return None if record.scope.limited or record.inspector_id is not None else record.role


def plain_tile(scope: Scope) -> PlainTile | None:
    """The plain tile request ``scope`` is, or None when the tile routes must answer it."""
    if scope["type"] != "http" or scope["method"] != "GET" or scope["query_string"]:
        return None
    for route in TILE_ROUTES:
        m = route.pattern.match(scope["path"])
        if m is None:
            continue
        z, x, y = int(m[2]), int(m[3]), int(m[4])
        role = cached_role(scope)
        if role is None:
            return None
        try:
            sources = parse_sources(load_catalog().for_role(role), m[1])
            check_tile(z, x, y)
        except CityHexError:
            return None
        readable = all(s.layer.can_read(role) for s in sources)
        return PlainTile(sources, z, x, y, route) if readable else None
    return None


class TileFastPath(APIRouter):
    """A router without path operations that claims plain tile requests and answers them
    itself. Listed first among the routers, so it is tried before any route."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        """FULL for a plain tile request (kept in the scope for handle), NONE for anything
        else."""
        found = plain_tile(scope)
        if found is None:
            return Match.NONE, {}
        scope[PLAIN_TILE] = found
        return Match.FULL, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer the plain tile request: the tile, 304, 204, or the error as JSON."""
        found: PlainTile = scope[PLAIN_TILE]
        scope["route"] = found.route
        service: TileService = scope["app"].state.tiles
        try:
            tile = await service.tile(found.sources, found.z, found.x, found.y, TileFilters())
        except CityHexError as exc:
            status = http_status(exc)
            headers = {"Content-Type": "application/json"}
            body = error_response(status, exc.code, exc.message).body
        else:
            public = same_for_everyone(found.sources)
            status, headers, body = tile_answer(service, tile, public, Headers(scope=scope))
        raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        raw.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})


router = TileFastPath()
