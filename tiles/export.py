"""Offline tile sets: the served tiles of an area (a box, or an inspector's cells) for a zoom
range, written as MBTiles (SQLite) or PMTiles (one file, HTTP range readable).

Tiles are built by the same statement as the server's, on connections with the same
settings, so a file holds exactly the bytes the server sends (gzip-compressed, as both
formats expect for vector tiles).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import shapely
from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import Writer

from gis.errors import BadRequest, Forbidden
from gis.hexgrid import cell_polygon, parse_cell
from gis.tilemath import MAX_ZOOM, tile_bounds_lonlat, tiles_covering
from layers.catalog.registry import load_catalog
from layers.db.engine import create_pool, statement_timeout_ms
from tiles.filters import TileFilters
from tiles.service import SESSION_SETTINGS, TileConnection, build_tile
from tiles.sources import Source, parse_sources
from tiles.tilejson import vector_layer

Format = Literal["mbtiles", "pmtiles"]
MAX_TILES = 200_000
CONNECTIONS = 2
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
    """A ``W,S,E,N`` lon/lat box."""
    try:
        w, s, e, n = (float(v) for v in text.split(","))
    except ValueError:
        raise BadRequest(
            f"--bbox {text!r} must be W,S,E,N in degrees", code="invalid_bbox"
        ) from None
    if not (-180 <= w < e <= 180 and -85.06 <= s < n <= 85.06):
        raise BadRequest(
            f"--bbox {text!r}: need -180 <= W < E <= 180 and -85 <= S < N <= 85",
            code="invalid_bbox",
        )
    return shapely.box(w, s, e, n)


def parse_cells(text: str) -> shapely.Geometry:
    """The area of a comma list of H3 cells (hex strings)."""
    cells = [parse_cell(c) for c in text.split(",") if c.strip()]
    if not cells:
        raise BadRequest("--cells needs at least one H3 cell", code="invalid_cell")
    return shapely.union_all([cell_polygon(c) for c in cells])


def area_tiles(area: shapely.Geometry, minzoom: int, maxzoom: int) -> list[tuple[int, int, int]]:
    """Every tile from ``minzoom`` to ``maxzoom`` that meets the lon/lat ``area``."""
    if not 0 <= minzoom <= maxzoom <= MAX_ZOOM:
        raise BadRequest(
            f"zooms {minzoom}–{maxzoom}: need 0 <= minzoom <= maxzoom <= {MAX_ZOOM}",
            code="invalid_zoom",
        )
    shapely.prepare(area)
    found = []
    for z in range(minzoom, maxzoom + 1):
        for t in tiles_covering(area.bounds, z):
            if area.intersects(shapely.box(*tile_bounds_lonlat(*t))):
                found.append(t)
            if len(found) > MAX_TILES:
                raise BadRequest(
                    f"more than {MAX_TILES} tiles: narrow the area or the zooms",
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
    sources = parse_sources(load_catalog().for_role(role), layers)
    denied = [s.name for s in sources if not s.layer.can_read(role)]
    if denied:
        raise Forbidden(f"role {role!r} may not read layers {', '.join(denied)}")
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
