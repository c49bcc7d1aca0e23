"""Tile sets over HTTP: ``GET /tiles/export/area.pmtiles``, the served tiles of an area as
one PMTiles file, for the web app's offline map (the same file as ``cityhex export
pmtiles``; the logic, whose area it is included, is in ``tiles.export``).

The file is written in a temporary folder and streamed; the folder is removed when the
response ends however it ends (sent, the client gone, sending failed, cancelled), not by a
background task, which Starlette skips when sending fails. Its ETag names the tiles it
holds, so a client that kept the file sends ``If-None-Match`` and gets a 304 without the
body (and nothing is written).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response
from starlette.types import Receive, Scope, Send

from gis.errors import Unauthorized
from gis.tilemath import MAX_ZOOM
from spatial_api.auth import ANONYMOUS
from spatial_api.deps import Caller, ReadEngine, Tiles
from spatial_api.openapi import errors
from tiles.export import (
    area_of,
    area_tile_set,
    readable_sources,
    remove_area_file,
    write_area_pmtiles,
)

router = APIRouter(tags=["tiles"])
PMTILES = "application/vnd.pmtiles"
DEFAULT_LAYERS = "districts,grid,assets,sensors"
"""The layers of the city style's base source (its case layers are live data, not kept)."""

Zoom = Annotated[int, Query(ge=0, le=MAX_ZOOM)]


class AreaFileResponse(FileResponse):
    """An area file, removed with its temporary folder once the response ends, whether it
    was sent or not."""

    def __init__(self, path: Path, headers: dict[str, str]) -> None:
        super().__init__(path, media_type=PMTILES, filename=path.name, headers=headers)
        self.area_file = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            remove_area_file(self.area_file)


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
    ``cells`` or ``bbox``. At most 5,000 tiles, in a bounding box of at most 50,000 (413)."""
    if caller.role == ANONYMOUS:
        raise Unauthorized("an area file needs an API key", headers={"WWW-Authenticate": "Bearer"})
    sources = readable_sources(layers, caller.role)
    area = await area_of(engine, caller.role, caller.inspector_id, bbox, cells)
    tile_set = await area_tile_set(service, sources, area, minzoom, maxzoom, caller.visibility)
    headers = {"ETag": tile_set.etag, "Cache-Control": "private, no-cache"}
    if tile_set.etag in (request.headers.get("if-none-match") or "").split(", "):
        return Response(status_code=304, headers=headers)
    return AreaFileResponse(await write_area_pmtiles(tile_set), headers)
