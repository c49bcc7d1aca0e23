"""Tile sets over HTTP: ``GET /tiles/export/area.pmtiles``, the served tiles of an area as
one PMTiles file, for the web app's offline map (the same file as ``cityhex export
pmtiles``; the logic is in ``tiles.export``).

The file is written in a temporary folder, streamed, and the folder removed once sent. Its
ETag names the tiles it holds, so a client that kept the file sends ``If-None-Match`` and
gets a 304 without the body.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response
from starlette.background import BackgroundTask

from gis.errors import BadRequest, Unauthorized
from gis.tilemath import MAX_ZOOM
from spatial_api.auth import ANONYMOUS
from spatial_api.deps import Caller, ReadEngine, Tiles
from spatial_api.openapi import errors
from tiles.export import (
    area_tile_set,
    inspector_area,
    parse_bbox,
    parse_cells,
    readable_sources,
    write_area_pmtiles,
)

router = APIRouter(tags=["tiles"])
PMTILES = "application/vnd.pmtiles"
DEFAULT_LAYERS = "districts,grid,assets,sensors"
"""The layers of the city style's base source (its case layers are live data, not kept)."""

Zoom = Annotated[int, Query(ge=0, le=MAX_ZOOM)]


@router.get(
    "/tiles/export/area.pmtiles",
    response_class=Response,
    responses={
        200: {"content": {PMTILES: {}}, "description": "The PMTiles v3 file of the area."},
        304: {"description": "The file still has the ETag given in If-None-Match."},
        **errors(400, 401, 403, 404, 413, 503),
    },
    summary="The served tiles of my area (or of some cells or a box) as one PMTiles file",
)
async def area_pmtiles(
    request: Request,
    caller: Caller,
    service: Tiles,
    engine: ReadEngine,
    layers: Annotated[str, Query(description="Tile layers, comma separated.")] = DEFAULT_LAYERS,
    cells: Annotated[
        str | None, Query(description="H3 cells (hex, comma list); an inspector's own only.")
    ] = None,
    bbox: Annotated[
        str | None, Query(description="W,S,E,N in degrees (not for inspectors).")
    ] = None,
    minzoom: Zoom = 12,
    maxzoom: Zoom = 17,
) -> Response:
    """The tiles of ``layers`` at ``minzoom``–``maxzoom`` over the caller's area, as the tile
    routes serve them to the caller: an inspector's own cells (or some of them, ``cells``),
    as for any key speaking for a user that names no area; otherwise exactly one of
    ``cells`` or ``bbox``. At most 5,000 tiles (413)."""
    if caller.role == ANONYMOUS:
        raise Unauthorized("an area file needs an API key", headers={"WWW-Authenticate": "Bearer"})
    sources = readable_sources(layers, caller.role)
    own = caller.role == "inspector" or (bbox is None and cells is None)
    if caller.inspector_id is not None and own:  # a key speaking for a user: their cells
        if bbox is not None:
            raise BadRequest("an inspector's area is their cells: no bbox", code="invalid_area")
        area = await inspector_area(engine, caller.inspector_id, cells)
    elif (bbox is None) == (cells is None):
        raise BadRequest("give the area as exactly one of bbox or cells", code="invalid_area")
    else:
        area = parse_bbox(bbox) if bbox is not None else parse_cells(cells or "")
    tile_set = await area_tile_set(service, sources, area, minzoom, maxzoom, caller.visibility)
    headers = {"ETag": tile_set.etag, "Cache-Control": "private, no-cache"}
    if tile_set.etag in (request.headers.get("if-none-match") or "").split(", "):
        return Response(status_code=304, headers=headers)
    folder = Path(tempfile.mkdtemp(prefix="cityhex-area-"))
    try:
        path = folder / "area.pmtiles"
        await asyncio.to_thread(write_area_pmtiles, tile_set, path)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return FileResponse(
        path,
        media_type=PMTILES,
        filename="area.pmtiles",
        headers=headers,
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )
