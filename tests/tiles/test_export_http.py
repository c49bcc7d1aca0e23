"""``GET /tiles/export/area.pmtiles``: an inspector's own area as one PMTiles file over HTTP.
The file is read back with the python ``pmtiles`` reader; its tile list is checked against
the tiles that meet the inspector's cells (cells from SQL, outlines from the h3 package,
tile bounds from the slippy-map formula, intersection by shapely) and its tiles, byte for
byte, against the tile route's answers."""

from __future__ import annotations

import asyncio
import gzip
import math
import random
import tempfile
import time
from pathlib import Path

import h3
import pytest
import shapely
from fastapi.testclient import TestClient
from pmtiles.reader import MemorySource, Reader, all_tiles

from layers.db.scope import UNLIMITED, Visibility
from tests.helpers import CENTER, make_key, scalar
from tiles.export import readable_sources
from tiles.filters import TileFilters
from tiles.service import build_tile, open_tile_pool
from tiles.settings import tile_settings

LAYERS = "districts,grid,assets,sensors"
INSPECTOR = 1
URL = "/tiles/export/area.pmtiles"


def lonlat_box(z: int, x: int, y: int) -> shapely.Polygon:
    """A tile's bounds in degrees (inverse slippy-map formula)."""
    n = 2**z

    def lat(row: int) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * row / n))))

    return shapely.box(x / n * 360 - 180, lat(y + 1), (x + 1) / n * 360 - 180, lat(y))


def meeting(cells: list[int], minzoom: int, maxzoom: int) -> set[tuple[int, int, int]]:
    """Every tile of the zooms that meets the cells (their lon/lat outlines)."""
    area = shapely.union_all(
        [
            shapely.Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(h3.int_to_str(c))])
            for c in cells
        ]
    )
    w, s, e, n = area.bounds
    found = set()
    for z in range(minzoom, maxzoom + 1):
        count = 2**z
        x0, x1 = int((w + 180) / 360 * count), int((e + 180) / 360 * count)
        y0 = int((1 - math.asinh(math.tan(math.radians(n))) / math.pi) / 2 * count)
        y1 = int((1 - math.asinh(math.tan(math.radians(s))) / math.pi) / 2 * count)
        for x in range(x0, x1 + 1):
            for y in range(y0, y1 + 1):
                if area.intersects(lonlat_box(z, x, y)):
                    found.add((z, x, y))
    return found


def read(data: bytes) -> dict[tuple[int, int, int], bytes]:
    """The tiles of a PMTiles file, decompressed."""
    return {zxy: gzip.decompress(d) for zxy, d in all_tiles(Reader(MemorySource(data)).get_bytes)}


async def build_directly(url: str, wanted: list[tuple[int, int, int]]) -> dict:
    """The tiles ``wanted`` of LAYERS as build_tile makes them for inspector INSPECTOR."""
    pool = await open_tile_pool(url, tile_settings())
    sources = readable_sources(LAYERS, "inspector")
    filters = TileFilters(visible=Visibility.of("inspector", INSPECTOR, UNLIMITED))
    try:
        return {t: (await build_tile(pool, sources, *t, filters))[0] for t in wanted}
    finally:
        await pool.close()


def left_over() -> list[Path]:
    """Temporary folders of area files still on disk."""
    return list(Path(tempfile.gettempdir()).glob("cityhex-area-*"))


def test_my_area_file_holds_the_served_tiles_of_my_cells(city: str, web: TestClient) -> None:
    key = make_key(city, "inspector", INSPECTOR)
    r = web.get(URL, params={"minzoom": 12, "maxzoom": 15}, headers=key)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/vnd.pmtiles"
    assert r.headers["etag"].startswith('"') and left_over() == []
    tiles = read(r.content)
    header = Reader(MemorySource(r.content)).header()
    assert (header["min_zoom"], header["max_zoom"]) == (12, 15)
    cells = scalar(
        city, "SELECT json_agg(h3) FROM grid_cells WHERE inspector_id = %s", (INSPECTOR,)
    )
    expected = meeting(cells, 12, 15)
    assert set(tiles) <= expected and len(tiles) > 10, (len(tiles), len(expected))
    # a sample of the area's tiles (with and without features): the file holds exactly the
    # tiles the route serves with features, byte for byte
    sample = random.Random(15).sample(sorted(expected), min(60, len(expected)))
    for z, x, y in sample:
        served = web.get(f"/tiles/{LAYERS}/{z}/{x}/{y}.mvt", headers=key)
        assert served.status_code in (200, 204)
        if served.status_code == 204:
            assert (z, x, y) not in tiles
        else:
            assert tiles[(z, x, y)] == served.content
    # and each is what tiles.service's build_tile makes of those rows now for this inspector
    # (their read scope applied; no cache between)
    built = asyncio.run(build_directly(city, sample))
    assert {t: b for t, b in built.items() if b} == {t: tiles[t] for t in sample if t in tiles}
    # a re-download with the ETag is skipped; the same request again gives the same file
    again = web.get(
        URL,
        params={"minzoom": 12, "maxzoom": 15},
        headers={**key, "If-None-Match": r.headers["etag"]},
    )
    assert again.status_code == 304 and again.content == b"" and left_over() == []
    same = web.get(URL, params={"minzoom": 12, "maxzoom": 15}, headers=key)
    assert same.headers["etag"] == r.headers["etag"] and read(same.content) == tiles


def test_a_key_speaking_for_a_user_gets_their_cells(city: str, web: TestClient) -> None:
    params = {"minzoom": 12, "maxzoom": 13}
    mine = web.get(URL, params=params, headers=make_key(city, "inspector", INSPECTOR))
    admin = web.get(URL, params=params, headers=make_key(city, "admin", INSPECTOR))
    assert mine.status_code == admin.status_code == 200
    # the same tiles (each as the caller's role is served it: an admin reads more fields)
    assert set(read(admin.content)) == set(read(mine.content))


def test_other_roles_name_the_area(city: str, web: TestClient) -> None:
    lon, lat = CENTER
    cell = h3.latlng_to_cell(lat, lon, 9)
    r = web.get(
        URL,
        params={"cells": cell, "minzoom": 14, "maxzoom": 16, "layers": "grid"},
        headers=make_key(city, "dispatcher"),
    )
    assert r.status_code == 200, r.text
    expected = meeting([h3.str_to_int(cell)], 14, 16)
    tiles = read(r.content)
    assert set(tiles) == expected  # the grid covers the centre: every tile has cells


@pytest.mark.parametrize(
    "role,params,status,code",
    [
        (None, {}, 401, None),
        ("dispatcher", {}, 400, "invalid_area"),
        ("dispatcher", {"bbox": "113,21,115,23"}, 413, "too_many_tiles"),
        ("dispatcher", {"bbox": "10,10,10.01,10.01"}, 400, "empty_export"),
        ("dispatcher", {"cells": "notacell"}, 400, None),
        ("dispatcher", {"bbox": "114,22.5,114.1"}, 400, "invalid_bbox"),
        ("inspector", {"bbox": "114,22.5,114.1,22.6"}, 400, "invalid_area"),
        ("inspector", {"minzoom": 17, "maxzoom": 12}, 400, "invalid_zoom"),
        ("inspector", {"maxzoom": 40}, 400, "invalid_parameter"),
        ("inspector", {"layers": "nosuchlayer"}, 404, None),
    ],
)
def test_bad_requests_say_why_and_leave_nothing(
    city: str, web: TestClient, role: str | None, params: dict, status: int, code: str | None
) -> None:
    headers = (
        {} if role is None else make_key(city, role, INSPECTOR if role == "inspector" else None)
    )
    r = web.get(URL, params=params, headers=headers)
    assert r.status_code == status, r.text
    assert r.json()["status"] == status
    if code:
        assert r.json()["code"] == code
    assert left_over() == []


def test_an_inspector_may_not_take_cells_that_are_not_theirs(city: str, web: TestClient) -> None:
    theirs = scalar(
        city, "SELECT h3 FROM grid_cells WHERE inspector_id <> %s LIMIT 1", (INSPECTOR,)
    )
    r = web.get(
        URL, params={"cells": h3.int_to_str(theirs)}, headers=make_key(city, "inspector", INSPECTOR)
    )
    assert r.status_code == 403 and r.json()["code"] == "not_your_cells"


def test_cells_far_apart_are_refused_before_their_tiles_are_listed(
    city: str, web: TestClient
) -> None:
    # two tiny cells 20 degrees apart meet a few tiles, but their bounding box spans some
    # 290 million at zooms 12-17: it is refused from the box's size, not by testing each
    lon, lat = CENTER
    near = h3.latlng_to_cell(lat, lon, 9)
    far = h3.latlng_to_cell(lat + 20, lon + 20, 9)
    start = time.monotonic()
    r = web.get(
        URL,
        params={"cells": f"{near},{far}", "layers": "grid"},
        headers=make_key(city, "dispatcher"),
    )
    assert time.monotonic() - start < 10
    assert r.status_code == 413, r.text
    assert r.json()["code"] == "too_many_tiles" and "extent" in r.json()["message"]
    assert left_over() == []


def test_the_folder_goes_when_sending_the_file_fails(city: str, web: TestClient) -> None:
    # the app called as a server calls it, whose send fails once the body starts (the
    # client went away): the file's folder is removed all the same
    key = make_key(city, "inspector", INSPECTOR)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": URL,
        "raw_path": URL.encode(),
        "root_path": "",
        "query_string": b"minzoom=12&maxzoom=13",
        "headers": [(b"host", b"testserver")]
        + [(k.lower().encode(), v.encode()) for k, v in key.items()],
        "client": ("testclient", 50000),
        "server": ("testserver", 80),
        "state": web.app_state.copy(),
        "extensions": {},
    }
    sent: list[dict] = []
    requests = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict:
        return requests.pop() if requests else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)
        if message["type"] == "http.response.body":
            raise OSError("the client went away")

    async def serve() -> Exception | None:
        try:
            await web.app(scope, receive, send)
        except Exception as exc:  # the failed send, as the server sees it
            return exc
        return None

    failed = web.portal.call(serve)
    assert failed is not None
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    assert sent[1]["type"] == "http.response.body" and sent[1]["body"]
    assert left_over() == []
