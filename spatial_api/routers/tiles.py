"""Vector tiles over HTTP: XYZ and OGC paths, TileJSON, ETag revalidation, cache status."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import Response
from starlette.datastructures import Headers

from gis.errors import Forbidden, Unauthorized
from gis.tilemath import check_tile
from layers.catalog.registry import load_catalog
from layers.db.engine import database_url
from spatial_api.auth import ANONYMOUS, CallerLookup, Principal
from spatial_api.compression import MINIMUM_SIZE, compress, negotiate, variant_etag
from spatial_api.deps import LazyCaller, Tiles
from spatial_api.proxies import public_base_url
from spatial_api.schemas.system import TileJSON
from tiles.filters import TileFilters, parse_filters
from tiles.service import Tile, TileService
from tiles.settings import tile_settings
from tiles.sources import Source, parse_sources, same_for_everyone
from tiles.tilejson import tilejson

MVT = "application/vnd.mapbox-vector-tile"

TILE_RESPONSES: dict[int | str, dict] = {
    200: {"content": {MVT: {}}, "description": "The tile (Mapbox Vector Tile 2.1)."},
    204: {"description": "The tile has no features."},
    304: {"description": "The tile still has the ETag given in If-None-Match."},
}


@asynccontextmanager
async def tile_service(app: FastAPI) -> AsyncIterator[None]:
    """The tile service of this process, on the application's database (and its read
    replicas), for the life of the process."""
    app.state.tiles = await TileService.open(
        app.state.database_url or database_url(), replicas=app.state.replicas
    )
    try:
        yield
    finally:
        await app.state.tiles.close()


router = APIRouter(tags=["tiles"], lifespan=tile_service)


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


async def caller_sources(caller: CallerLookup, layers: str) -> tuple[Principal, list[Source]]:
    """The caller, and the sources of ``layers`` as it sees them (without the properties its
    role may not read); 401/403 unless it may read every one."""
    principal = await caller()
    sources = parse_sources(load_catalog().for_role(principal.role), layers)
    denied = [s.name for s in sources if not s.layer.can_read(principal.role)]
    if not denied:
        return principal, sources
    if principal.role == ANONYMOUS:
        raise Unauthorized(
            f"layers {', '.join(denied)} need an API key", headers={"WWW-Authenticate": "Bearer"}
        )
    raise Forbidden(f"role {principal.role!r} may not read layers {', '.join(denied)}")


def tile_answer(
    service: TileService, tile: Tile, public: bool, request: Headers
) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body for a tile: 304 when the client holds it, 204 when empty,
    else 200, in the coding the client accepts (compressed once while the tile is cached);
    ``public`` when the tile is the same for every caller."""
    headers = {
        "ETag": tile.etag,
        "Cache-Control": f"{'public' if public else 'private'}, "
        f"max-age={tile_settings().max_age}, must-revalidate",
        "X-Cache": "hit" if tile.hit else "miss",
    }
    if_none_match = request.get("if-none-match")
    if if_none_match and (
        if_none_match.strip() == "*" or tile.etag in (m.strip() for m in if_none_match.split(","))
    ):
        return 304, headers, b""
    if not tile.body:
        return 204, headers, b""
    coding = negotiate(request.get("accept-encoding"))
    if coding is None or len(tile.body) < MINIMUM_SIZE:
        return 200, {**headers, "Content-Type": MVT}, tile.body
    body = service.variant(tile, coding, partial(compress, coding=coding))
    encoded = {
        "ETag": variant_etag(tile.etag, coding),
        "Content-Type": MVT,
        "Content-Encoding": coding,
        "Vary": "Accept-Encoding",
    }
    return 200, {**headers, **encoded}, body


def tile_response(request: Request, service: TileService, tile: Tile, public: bool) -> Response:
    """The tile as a response."""
    status, headers, body = tile_answer(service, tile, public, request.headers)
    return Response(body, status_code=status, headers=headers)


async def serve_tile(
    request: Request,
    caller: CallerLookup,
    service: TileService,
    layers: str,
    z: int,
    x: int,
    y: int,
    filters: dict[str, str | None],
) -> Response:
    """Check the request, then answer with the tile (of the rows the caller's scope lets it
    read, on a layer with a read scope)."""
    principal, sources = await caller_sources(caller, layers)
    check_tile(z, x, y)
    checked: TileFilters = parse_filters(sources, **filters)
    if any(s.layer.read_scope for s in sources):
        checked = replace(checked, visible=principal.visibility)
    tile = await service.tile(sources, z, x, y, checked)
    return tile_response(request, service, tile, same_for_everyone(sources))


@router.get(
    "/tiles/{layers}/{z}/{x}/{y}.mvt",
    response_class=Response,
    responses=TILE_RESPONSES,
    summary="A vector tile of one layer or several",
)
async def xyz_tile(
    request: Request,
    caller: LazyCaller,
    service: Tiles,
    layers: str,
    z: int,
    x: int,
    y: int,
    filters: FilterQuery,
) -> Response:
    """Tile ``z/x/y`` (WebMercatorQuad) holding one MVT layer per name in ``layers``
    (a comma list; ``<layer>_hex`` is a point layer's H3 aggregate)."""
    return await serve_tile(request, caller, service, layers, z, x, y, filters)


@router.get(
    "/collections/{layer}/tiles/WebMercatorQuad/{z}/{x}/{y}",
    response_class=Response,
    responses=TILE_RESPONSES,
    summary="A vector tile of a collection (OGC API Tiles)",
)
async def ogc_tile(
    request: Request,
    caller: LazyCaller,
    service: Tiles,
    layer: str,
    z: int,
    x: int,
    y: int,
    filters: FilterQuery,
) -> Response:
    """The same tile as ``/tiles/{layer}/{z}/{x}/{y}.mvt``."""
    return await serve_tile(request, caller, service, layer, z, x, y, filters)


@router.get(
    "/tiles/{layers}/tilejson.json",
    summary="TileJSON 3.0.0 of one layer or several",
    response_model=TileJSON,
)
async def tilejson_document(
    request: Request,
    caller: LazyCaller,
    service: Tiles,
    layers: str,
    filters: FilterQuery,
) -> dict[str, Any]:
    """The TileJSON of ``layers``: tile URL (carrying the same filters), layers and fields,
    bounds, center, zoom range."""
    _, sources = await caller_sources(caller, layers)
    checked = parse_filters(sources, **filters)
    return await tilejson(service.pool, sources, public_base_url(request), checked)
