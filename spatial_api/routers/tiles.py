"""Vector tiles over HTTP: XYZ and OGC paths, TileJSON, ETag revalidation, cache status."""

from __future__ import annotations

import re
import time
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gis.errors import CityHexError, Forbidden, Unauthorized
from gis.tilemath import check_tile
from layers.catalog.registry import load_catalog
from layers.db.engine import database_url
from spatial_api.auth import ANONYMOUS, current_principal
from spatial_api.errors import error_response, http_status
from spatial_api.metrics import LATENCY, REQUESTS
from tiles.filters import TileFilters, parse_filters
from tiles.service import Tile, TileService
from tiles.settings import tile_settings
from tiles.sources import Source, parse_sources
from tiles.tilejson import tilejson

MVT = "application/vnd.mapbox-vector-tile"
router = APIRouter(tags=["tiles"])

TILE_RESPONSES: dict[int | str, dict] = {
    200: {"content": {MVT: {}}, "description": "The tile (Mapbox Vector Tile 2.1)."},
    204: {"description": "The tile has no features."},
    304: {"description": "The tile still has the ETag given in If-None-Match."},
}


def filter_query(
    start: str | None = Query(
        None, alias="from", description="Only rows at or after this time (ISO 8601)."
    ),
    to: str | None = Query(None, description="Only rows before this time (ISO 8601)."),
    category: str | None = Query(
        None, description="Class codes (comma list; two digits = a major class)."
    ),
    filter: str | None = Query(None, description="A CQL2 filter applied to every layer."),
    filter_lang: str | None = Query(
        None, alias="filter-lang", description="cql2-text (default) or cql2-json."
    ),
    properties: str | None = Query(None, description="Attributes to keep (comma list)."),
) -> dict[str, str | None]:
    """The row filters that every tile route takes, named as tiles.filters.parse_filters
    names them."""
    return dict(
        start=start,
        end=to,
        category=category,
        cql=filter,
        cql_lang=filter_lang,
        properties=properties,
    )


FilterQuery = Annotated[dict[str, str | None], Depends(filter_query)]


async def open_tile_service(app: FastAPI) -> TileService:
    """The tile service of this process, on the application's database."""
    return await TileService.open(app.state.database_url or database_url())


async def authorize(request: Request, sources: list[Source]) -> None:
    """401/403 unless the caller may read every layer of the tile."""
    if all(s.layer.public for s in sources):
        return
    principal = await current_principal(request)
    denied = [s.name for s in sources if not s.layer.can_read(principal.role)]
    if not denied:
        return
    if principal.role == ANONYMOUS:
        raise Unauthorized(
            f"layers {', '.join(denied)} need an API key", headers={"WWW-Authenticate": "Bearer"}
        )
    raise Forbidden(f"role {principal.role!r} may not read layers {', '.join(denied)}")


def tile_answer(
    tile: Tile, public: bool, if_none_match: str | None
) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body for a tile: 304 when the client holds it, 204 when empty,
    else 200."""
    headers = {
        "ETag": tile.etag,
        "Cache-Control": f"{'public' if public else 'private'}, "
        f"max-age={tile_settings().max_age}, must-revalidate",
        "X-Cache": "hit" if tile.hit else "miss",
    }
    if if_none_match and (
        if_none_match.strip() == "*" or tile.etag in (m.strip() for m in if_none_match.split(","))
    ):
        return 304, headers, b""
    if not tile.body:
        return 204, headers, b""
    return 200, {**headers, "Content-Type": MVT}, tile.body


def tile_response(request: Request, tile: Tile, public: bool) -> Response:
    """The tile as a response."""
    status, headers, body = tile_answer(tile, public, request.headers.get("if-none-match"))
    return Response(body, status_code=status, headers=headers)


async def serve_tile(
    request: Request, layers: str, z: int, x: int, y: int, filters: dict[str, str | None]
) -> Response:
    """Check the request, then answer with the tile."""
    sources = parse_sources(load_catalog(), layers)
    await authorize(request, sources)
    check_tile(z, x, y)
    checked: TileFilters = parse_filters(sources, **filters)
    service: TileService = request.app.state.tiles
    tile = await service.tile(sources, z, x, y, checked)
    return tile_response(request, tile, all(s.layer.public for s in sources))


@router.get(
    "/tiles/{layers}/{z}/{x}/{y}.mvt",
    response_class=Response,
    responses=TILE_RESPONSES,
    summary="A vector tile of one layer or several",
)
async def xyz_tile(
    request: Request, layers: str, z: int, x: int, y: int, filters: FilterQuery
) -> Response:
    """Tile ``z/x/y`` (WebMercatorQuad) holding one MVT layer per name in ``layers``
    (a comma list; ``<layer>_hex`` is a point layer's H3 aggregate)."""
    return await serve_tile(request, layers, z, x, y, filters)


@router.get(
    "/collections/{layer}/tiles/WebMercatorQuad/{z}/{x}/{y}",
    response_class=Response,
    responses=TILE_RESPONSES,
    summary="A vector tile of a collection (OGC API Tiles)",
)
async def ogc_tile(
    request: Request, layer: str, z: int, x: int, y: int, filters: FilterQuery
) -> Response:
    """The same tile as ``/tiles/{layer}/{z}/{x}/{y}.mvt``."""
    return await serve_tile(request, layer, z, x, y, filters)


def public_base(request: Request) -> str:
    """This server's base URL as the client sees it (X-Forwarded-Proto/Host honoured)."""
    proto = request.headers.get("x-forwarded-proto", request.url.scheme).split(",")[0].strip()
    host = request.headers.get("x-forwarded-host") or request.headers.get("host")
    host = (host or request.url.netloc).split(",")[0].strip()
    return f"{proto}://{host}{request.scope.get('root_path', '')}"


@router.get("/tiles/{layers}/tilejson.json", summary="TileJSON 3.0.0 of one layer or several")
async def tilejson_document(
    request: Request,
    layers: str,
    filters: FilterQuery,
) -> JSONResponse:
    """The TileJSON of ``layers``: tile URL (carrying the same filters), layers and fields,
    bounds, center, zoom range."""
    sources = parse_sources(load_catalog(), layers)
    await authorize(request, sources)
    checked = parse_filters(sources, **filters)
    service: TileService = request.app.state.tiles
    doc = await tilejson(service.pool, sources, public_base(request), checked)
    return JSONResponse(doc)


TILE_PATHS = (
    (
        re.compile(r"^/tiles/([^/]+)/([0-9]{1,2})/([0-9]{1,8})/([0-9]{1,8})\.mvt$"),
        "/tiles/{layers}/{z}/{x}/{y}.mvt",
    ),
    (
        re.compile(
            r"^/collections/([^/,]+)/tiles/WebMercatorQuad/([0-9]{1,2})/([0-9]{1,8})/([0-9]{1,8})$"
        ),
        "/collections/{layer}/tiles/WebMercatorQuad/{z}/{x}/{y}",
    ),
)


def readable(scope: Scope, sources: list[Source]) -> bool:
    """Whether the request may read every source, knowing its key from the key cache only."""
    if all(s.layer.public for s in sources):
        return True
    token = next((v for k, v in scope["headers"] if k == b"authorization"), b"").decode()
    scheme, _, key = token.partition(" ")
    if scheme.lower() != "bearer":
        return False
    hit, record = scope["app"].state.key_cache.get(key.strip())
    return bool(hit and record) and all(s.layer.can_read(record.role) for s in sources)


class TileFastPath:
    """Answers plain tile requests (GET, no query string, a caller allowed to read them)
    straight from ASGI: cache hits and misses alike skip routing and validation. Anything
    else, and any request whose path does not check out, goes on to the API's routes,
    which answer it or say what is wrong."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = self.match(scope)
        if found is None:
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        sources, z, x, y, route = found
        service: TileService = scope["app"].state.tiles
        try:
            tile = await service.tile(sources, z, x, y, TileFilters())
        except CityHexError as exc:
            status = http_status(exc)
            headers = {"Content-Type": "application/json"}
            body = error_response(status, exc.code, exc.message).body
        else:
            inm = next((v for k, v in scope["headers"] if k == b"if-none-match"), None)
            public = all(s.layer.public for s in sources)
            status, headers, body = tile_answer(tile, public, inm.decode() if inm else None)
        raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        raw.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})
        REQUESTS.labels("GET", route, str(status)).inc()
        LATENCY.labels("GET", route).observe(time.perf_counter() - start)

    @staticmethod
    def match(scope: Scope) -> tuple[list[Source], int, int, int, str] | None:
        """The sources and tile of a plain tile request this path may answer, or None."""
        if scope["type"] != "http" or scope["method"] != "GET" or scope["query_string"]:
            return None
        for pattern, route in TILE_PATHS:
            m = pattern.match(scope["path"])
            if m is None:
                continue
            z, x, y = int(m[2]), int(m[3]), int(m[4])
            try:
                sources = parse_sources(load_catalog(), m[1])
                check_tile(z, x, y)
            except CityHexError:
                return None
            return (sources, z, x, y, route) if readable(scope, sources) else None
        return None


def install(app: FastAPI) -> None:
    """Serve tiles from ``app``: the routes, and the fast path in front of them."""
    app.include_router(router)
    app.add_middleware(TileFastPath)
