"""Offline tile sets: the served tiles of an area (a box, or an inspector's cells) for a zoom
range, written as MBTiles (SQLite) or PMTiles (one file, HTTP range readable).

Tiles are built by the same statement as the server's, on connections with the same
settings, so a file holds exactly the bytes the server sends (gzip-compressed, as both
formats expect for vector tiles).

Over HTTP the area is bounded twice before any tile is built: its bounding box may span at
most AREA_MAX_EXTENT tiles over the zooms (so listing the tiles meeting it stays short), and
at most AREA_MAX_TILES of them may meet the area.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import shapely
from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import Writer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gis.errors import BadRequest, Forbidden, PayloadTooLarge, ServiceUnavailable
from gis.hexgrid import cell_polygon, parse_cell
from gis.tilemath import MAX_ZOOM, mercator_bbox, tile_bounds_lonlat, tile_range, tiles_covering
from layers.catalog.registry import load_catalog
from layers.db.engine import create_pool, statement_timeout_ms
from layers.db.scope import Visibility
from tiles.filters import TileFilters
from tiles.service import SESSION_SETTINGS, TileConnection, TileService, build_tile
from tiles.sources import Source, parse_sources
from tiles.tilejson import vector_layer

Format = Literal["mbtiles", "pmtiles"]
MAX_TILES = 200_000
CONNECTIONS = 2
AREA_MAX_TILES = 5_000
"""The most tiles one area file served over HTTP may cover (all zooms together)."""
AREA_MAX_EXTENT = 50_000
"""The most tiles the bounding box of one area file served over HTTP may span (all zooms
together): listing the tiles that meet the area tests each of them, so two small cells far
apart must not make it test millions."""
AREA_SECONDS = 120.0
"""How long building the tiles of one area file over HTTP may take (each tile statement is
also bounded by the request statement timeout of the tile pool). Listing the tiles before is
bounded by AREA_MAX_EXTENT, writing the file after by AREA_MAX_TILES."""
Tile = tuple[int, int, int, bytes]


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote."""

    path: Path
    tiles: int
    empty: int
    bytes: int
    seconds: float


def parse_bbox(text: str) -> shapely.Polygon:
    """A ``W,S,E,N`` lon/lat box (the CLI's ``--bbox``, the HTTP ``bbox``)."""
    try:
        w, s, e, n = (float(v) for v in text.split(","))
    except ValueError:
        raise BadRequest(
            f"bbox {text!r} must be minlon,minlat,maxlon,maxlat in degrees", code="invalid_bbox"
        ) from None
    if not (-180 <= w < e <= 180 and -85.06 <= s < n <= 85.06):
        raise BadRequest(
            f"bbox {text!r} must be minlon,minlat,maxlon,maxlat with -180 <= minlon < maxlon"
            " <= 180 and -85 <= minlat < maxlat <= 85",
            code="invalid_bbox",
        )
    return shapely.box(w, s, e, n)


def parse_cells(text: str) -> shapely.Geometry:
    """The area of a comma list of H3 cells (hex strings)."""
    cells = [parse_cell(c) for c in text.split(",") if c.strip()]
    if not cells:
        raise BadRequest("cells needs at least one H3 cell", code="invalid_cell")
    return shapely.union_all([cell_polygon(c) for c in cells])


def named_area(bbox: str | None, cells: str | None) -> shapely.Geometry:
    """The area named by exactly one of ``bbox`` (``W,S,E,N``) or ``cells`` (a comma list of
    H3 cells); 400 otherwise."""
    if (bbox is None) == (cells is None):
        raise BadRequest("give the area as exactly one of bbox or cells", code="invalid_area")
    return parse_bbox(bbox) if bbox is not None else parse_cells(cells or "")


def extent_tiles(area: shapely.Geometry, minzoom: int, maxzoom: int) -> int:
    """How many tiles the bounding box of ``area`` spans from ``minzoom`` to ``maxzoom``
    (the tiles ``area_tiles`` tests), counted without listing them."""
    box = mercator_bbox(area.bounds)
    total = 0
    for z in range(minzoom, maxzoom + 1):
        x0, y0, x1, y1 = tile_range(box, z)
        total += (x1 - x0 + 1) * (y1 - y0 + 1)
    return total


def area_tiles(
    area: shapely.Geometry,
    minzoom: int,
    maxzoom: int,
    limit: int = MAX_TILES,
    extent: int | None = None,
) -> list[tuple[int, int, int]]:
    """Every tile from ``minzoom`` to ``maxzoom`` that meets the lon/lat ``area``; 400
    ``too_many_tiles`` past ``limit`` tiles, or, before any is listed, when the area's
    bounding box spans more than ``extent`` tiles (when given)."""
    if not 0 <= minzoom <= maxzoom <= MAX_ZOOM:
        raise BadRequest(
            f"zooms {minzoom}–{maxzoom}: need 0 <= minzoom <= maxzoom <= {MAX_ZOOM}",
            code="invalid_zoom",
        )
    if extent is not None:
        spanned = extent_tiles(area, minzoom, maxzoom)
        if spanned > extent:
            raise BadRequest(
                f"the area's extent is too large: its bounding box spans {spanned} tiles at "
                f"zooms {minzoom}–{maxzoom}, more than {extent}: narrow the area or the zooms",
                code="too_many_tiles",
            )
    shapely.prepare(area)
    found = []
    for z in range(minzoom, maxzoom + 1):
        for t in tiles_covering(area.bounds, z):
            if area.intersects(shapely.box(*tile_bounds_lonlat(*t))):
                found.append(t)
            if len(found) > limit:
                raise BadRequest(
                    f"more than {limit} tiles: narrow the area or the zooms",
                    code="too_many_tiles",
                )
    return found


async def render(url: str, sources: list[Source], tiles: list[tuple[int, int, int]]) -> list[Tile]:
    """The served bytes of every tile that has features."""
    pool = await create_pool(
        url,
        statement_timeout_ms(job=True),
        checked=False,
        min_size=1,
        max_size=CONNECTIONS,
        connection_class=TileConnection,
        server_settings=SESSION_SETTINGS,
    )
    gate = asyncio.Semaphore(CONNECTIONS)

    async def one(z: int, x: int, y: int) -> Tile:
        async with gate:
            body, _ = await build_tile(pool, sources, z, x, y, TileFilters())
        return z, x, y, body

    try:
        built = await asyncio.gather(*(one(*t) for t in tiles))
    finally:
        await pool.close()
    return [t for t in built if t[3]]


def metadata(
    sources: list[Source], area: shapely.Geometry, minzoom: int, maxzoom: int
) -> dict[str, object]:
    """The tile set's description: layers and their fields, bounds, center, zooms."""
    w, s, e, n = area.bounds
    return {
        "name": ",".join(src.name for src in sources),
        "description": "CityHex offline tiles: " + "; ".join(src.layer.title for src in sources),
        "format": "pbf",
        "type": "overlay",
        "version": "1",
        "minzoom": minzoom,
        "maxzoom": maxzoom,
        "bounds": [w, s, e, n],
        "center": [(w + e) / 2, (s + n) / 2, minzoom],
        "vector_layers": [vector_layer(src) for src in sources],
    }


def write_mbtiles(path: Path, tiles: list[Tile], meta: dict[str, object]) -> None:
    """An MBTiles 1.3 file: gzip-compressed MVT, rows counted from the bottom (TMS)."""
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE metadata (name text, value text)")
        db.execute(
            "CREATE TABLE tiles (zoom_level integer, tile_column integer, "
            "tile_row integer, tile_data blob)"
        )
        db.execute("CREATE UNIQUE INDEX tile_index ON tiles (zoom_level, tile_column, tile_row)")
        rows = []
        for key, value in meta.items():
            if key == "vector_layers":
                rows.append(("json", json.dumps({"vector_layers": value})))
            elif isinstance(value, list):
                rows.append((key, ",".join(str(v) for v in value)))
            else:
                rows.append((key, str(value)))
        db.executemany("INSERT INTO metadata VALUES (?, ?)", rows)
        db.executemany(
            "INSERT INTO tiles VALUES (?, ?, ?, ?)",
            ((z, x, (1 << z) - 1 - y, gzip.compress(body, mtime=0)) for z, x, y, body in tiles),
        )


def write_pmtiles(path: Path, tiles: list[Tile], meta: dict[str, object]) -> None:
    """A PMTiles v3 file: gzip-compressed MVT in tile-id order."""
    w, s, e, n = meta["bounds"]  # type: ignore[misc]
    ordered = sorted(tiles, key=lambda t: zxy_to_tileid(t[0], t[1], t[2]))
    with open(path, "wb") as f:
        writer = Writer(f)
        for z, x, y, body in ordered:
            writer.write_tile(zxy_to_tileid(z, x, y), gzip.compress(body, mtime=0))
        writer.finalize(
            {
                "tile_type": TileType.MVT,
                "tile_compression": Compression.GZIP,
                "min_lon_e7": int(w * 1e7),
                "min_lat_e7": int(s * 1e7),
                "max_lon_e7": int(e * 1e7),
                "max_lat_e7": int(n * 1e7),
                "center_zoom": int(meta["minzoom"]),  # type: ignore[call-overload]
            },
            meta,
        )


def readable_sources(layers: str, role: str) -> list[Source]:
    """The sources of ``layers`` as ``role`` sees them; Forbidden when it may not read one."""
    sources = parse_sources(load_catalog().for_role(role), layers)
    denied = [s.name for s in sources if not s.layer.can_read(role)]
    if denied:
        raise Forbidden(f"role {role!r} may not read layers {', '.join(denied)}")
    return sources


def export_tiles(
    url: str,
    layers: str,
    area: shapely.Geometry,
    minzoom: int,
    maxzoom: int,
    path: Path,
    fmt: Format,
    role: str = "inspector",
) -> ExportReport:
    """Write the tiles of ``layers`` over ``area`` at zooms ``minzoom``–``maxzoom`` to
    ``path`` in ``fmt``, as a caller with ``role`` is served them (a file leaves the server:
    it holds no property that role may not read); Forbidden when it may not read a layer."""
    start = time.monotonic()
    sources = readable_sources(layers, role)
    wanted = area_tiles(area, minzoom, maxzoom)
    tiles = asyncio.run(render(url, sources, wanted))
    if not tiles:
        raise BadRequest(
            "no tile of this area and these zooms has features; nothing written",
            code="empty_export",
        )
    meta = metadata(sources, area, minzoom, maxzoom)
    (write_mbtiles if fmt == "mbtiles" else write_pmtiles)(path, tiles, meta)
    return ExportReport(
        path, len(tiles), len(wanted) - len(tiles), path.stat().st_size, time.monotonic() - start
    )


# --- an area file over HTTP (GET /tiles/export/area.pmtiles) --------------------------------

INSPECTOR_CELLS = text("SELECT h3 FROM grid_cells WHERE inspector_id = :inspector ORDER BY h3")


@dataclass(frozen=True)
class AreaTileSet:
    """The served tiles of an area, ready to be written: the tiles with features, the
    description, and an ETag naming exactly these tiles."""

    tiles: list[Tile]
    meta: dict[str, object]
    etag: str


async def inspector_area(
    engine: AsyncEngine, inspector_id: int, cells: str | None
) -> shapely.Geometry:
    """The area of an inspector's own cells, or of ``cells`` (a comma list) when given,
    which must all be theirs (Forbidden otherwise); 400 when they hold none. The connection
    is held only for the cells' query, not while the tiles are built."""
    async with engine.connect() as conn:
        rows = await conn.execute(INSPECTOR_CELLS, {"inspector": inspector_id})
        own = {row[0] for row in rows}
    chosen = own
    if cells is not None:
        chosen = {parse_cell(c) for c in cells.split(",") if c.strip()}
        if not chosen:
            raise BadRequest("cells needs at least one H3 cell", code="invalid_cell")
        if chosen - own:
            raise Forbidden(
                f"{len(chosen - own)} of the cells are not inspector {inspector_id}'s",
                code="not_your_cells",
            )
    if not chosen:
        raise BadRequest(f"inspector {inspector_id} holds no cell", code="no_cells")
    return shapely.union_all([cell_polygon(c) for c in sorted(chosen)])


async def area_of(
    engine: AsyncEngine,
    role: str,
    inspector_id: int | None,
    bbox: str | None,
    cells: str | None,
) -> shapely.Geometry:
    """The area of an area file for a caller with ``role`` speaking for ``inspector_id``
    (or for no user): an inspector's own cells (or some of them, ``cells``; never a
    ``bbox``), as for any caller speaking for a user that names no area; otherwise the area
    named by exactly one of ``bbox`` or ``cells``. 400 or 403 when it may not be."""
    own = role == "inspector" or (bbox is None and cells is None)
    if inspector_id is not None and own:
        if bbox is not None:
            raise BadRequest("an inspector's area is their cells: no bbox", code="invalid_area")
        return await inspector_area(engine, inspector_id, cells)
    return named_area(bbox, cells)


async def area_tile_set(
    service: TileService,
    sources: list[Source],
    area: shapely.Geometry,
    minzoom: int,
    maxzoom: int,
    visible: Visibility,
) -> AreaTileSet:
    """The tiles of ``sources`` over ``area`` at ``minzoom``–``maxzoom`` exactly as the tile
    routes serve them to a caller who sees ``visible`` (same statement, same cache); 413 when
    the area's bounding box spans more than AREA_MAX_EXTENT tiles or it meets more than
    AREA_MAX_TILES, 400 when none has features, 503 after AREA_SECONDS. The tiles are listed
    in a worker thread, off the event loop."""
    try:
        wanted = await asyncio.to_thread(
            area_tiles, area, minzoom, maxzoom, AREA_MAX_TILES, AREA_MAX_EXTENT
        )
    except BadRequest as exc:
        if exc.code != "too_many_tiles":
            raise
        raise PayloadTooLarge(str(exc), code="too_many_tiles") from None
    filters = TileFilters()
    if any(s.layer.read_scope for s in sources):
        filters = replace(filters, visible=visible)
    gate = asyncio.Semaphore(CONNECTIONS)

    async def one(z: int, x: int, y: int) -> tuple[Tile, str]:
        async with gate:
            tile = await service.tile(sources, z, x, y, filters)
        return (z, x, y, tile.body), tile.etag

    try:
        async with asyncio.timeout(AREA_SECONDS):
            built = await asyncio.gather(*(one(*t) for t in wanted))
    except TimeoutError:
        raise ServiceUnavailable(
            f"the area's {len(wanted)} tiles took more than {AREA_SECONDS:.0f} s: "
            "narrow the area or the zooms",
            code="export_timeout",
        ) from None
    tiles = [t for t, _ in built if t[3]]
    if not tiles:
        raise BadRequest("no tile of this area and these zooms has features", code="empty_export")
    meta = metadata(sources, area, minzoom, maxzoom)
    digest = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    for (z, x, y, _), etag in built:
        digest.update(f"{z}/{x}/{y}={etag};".encode())
    return AreaTileSet(tiles, meta, f'"{digest.hexdigest()[:32]}"')


async def write_area_pmtiles(tile_set: AreaTileSet) -> Path:
    """Write an area's tile set as ``area.pmtiles`` in a new temporary folder (in a worker
    thread); the file's path. The folder is removed if writing fails; otherwise removing it
    is the caller's (``remove_area_file``)."""
    folder = Path(tempfile.mkdtemp(prefix="cityhex-area-"))
    path = folder / "area.pmtiles"
    try:
        await asyncio.to_thread(write_pmtiles, path, tile_set.tiles, tile_set.meta)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return path


def remove_area_file(path: Path) -> None:
    """Remove an area file written by ``write_area_pmtiles`` and its temporary folder."""
    if path.parent.name.startswith("cityhex-area-"):
        shutil.rmtree(path.parent, ignore_errors=True)
