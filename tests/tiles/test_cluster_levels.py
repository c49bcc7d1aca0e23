"""The incidents' cluster cells of zooms 18–20 (migration 0024): equal to the cases counted in
Python after writes through the real paths (reports and a transition over HTTP, COPY, a
move, a delete); incident tiles of zooms 13–16 built from the stored cells equal tiles built
from the cases, and both show what the cluster rule, applied in Python to every case,
says they show."""

from __future__ import annotations

import asyncio
import math
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime

import asyncpg
import mapbox_vector_tile
import psycopg
import pytest
from fastapi.testclient import TestClient

from gis.tilemath import (
    ORIGIN,
    buffer_margin,
    interleave,
    lonlat_to_mercator,
    mercator_to_lonlat,
    tile_bounds,
    tile_size,
)
from layers.catalog.registry import load_catalog
from tests.helpers import CENTER, copy_incidents, make_key
from tiles.clusters import STRIPS_MAX
from tiles.filters import TileFilters
from tiles.service import build_tile
from tiles.sources import Source

LEVELS = (18, 19, 20)
CELL_DEEPER = 4
"""A cluster cell is a tile four zooms deeper than the tile."""
WHEN = datetime(2026, 5, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def url(tiles_city) -> str:
    """A copy of the tile city."""
    return tiles_city("cityhex_cluster_levels")


@pytest.fixture(scope="module")
def http(url: str) -> Iterator[TestClient]:
    """The app on this module's database."""
    from spatial_api.app import create_app

    with TestClient(create_app(url)) as client:
        yield client


def cases(url: str) -> list[tuple[int, float, float, str]]:
    """Every case's id, EPSG:3857 point and status."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT id, ST_X(geom_3857), ST_Y(geom_3857), status FROM incidents"
        ).fetchall()


def cell_of(x: float, y: float, zoom: int) -> tuple[int, int]:
    """Column and row of the zoom-``zoom`` tile holding the EPSG:3857 point ``x, y``."""
    n = 1 << zoom
    return math.floor((x + ORIGIN) / (2 * ORIGIN) * n), math.floor((ORIGIN - y) / (2 * ORIGIN) * n)


def expected_levels(url: str) -> dict[tuple[int, int, str], tuple[int, float, float]]:
    """Count and coordinate sums per (zoom, Morton number of the cell, status), zooms 18–20,
    from the cases' points in Python."""
    sums: dict[tuple[int, int, str], list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    for _, x, y, status in cases(url):
        for zoom in LEVELS:
            s = sums[(zoom, interleave(*cell_of(x, y, zoom)), status)]
            s[0] += 1
            s[1] += x
            s[2] += y
    return {key: (int(n), sx, sy) for key, (n, sx, sy) in sums.items()}


def stored_levels(url: str) -> dict[tuple[int, int, str], tuple[int, float, float]]:
    """The table's cells and statuses that hold a case."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT z, cell, status, n, sx::float8, sy::float8 FROM incident_cluster_levels"
            " WHERE n > 0"
        ).fetchall()
    return {(z, cell, status): (n, sx, sy) for z, cell, status, n, sx, sy in rows}


def assert_levels_match(url: str) -> None:
    """The table equals the Python count (sums within a micrometre)."""
    expected, stored = expected_levels(url), stored_levels(url)
    assert stored.keys() == expected.keys()
    for key, (n, sx, sy) in expected.items():
        assert stored[key][0] == n, key
        assert stored[key][1] == pytest.approx(sx, abs=1e-6)
        assert stored[key][2] == pytest.approx(sy, abs=1e-6)


def test_levels_follow_every_write(url: str, http: TestClient) -> None:
    assert_levels_match(url)  # filled by the migration
    app, dispatcher = make_key(url, "app"), make_key(url, "dispatcher")
    ids = []
    for i in range(5):
        lon, lat = 114.05 + i * 2e-5, 22.55  # several in one zoom-18 cell, in the grid
        r = http.post("/incidents", json={"category": "0107", "lon": lon, "lat": lat}, headers=app)
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    assert_levels_match(url)
    before = stored_levels(url)
    r = http.post(
        f"/incidents/{ids[0]}/transitions",
        json={"action": "register"},
        headers={**dispatcher, "If-Match": '"1"'},
    )
    assert r.status_code == 200, r.text
    assert stored_levels(url) != before  # a status change moves a case to its status' row
    assert_levels_match(url)
    copy_incidents(url, [("0101", WHEN, 114.06, 22.57)] * 40)
    assert_levels_match(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "UPDATE incidents SET geom = ST_SetSRID(ST_MakePoint(114.06, 22.56), 4326)"
            " WHERE id = %s",
            (ids[1],),
        )
        assert_levels_match(url)
        conn.execute("DELETE FROM incidents WHERE id = ANY(%s)", (ids[2:],))
    assert_levels_match(url)
    assert stored_levels(url) != before


def blob(x: float, y: float, n: int) -> list[tuple[str, datetime, float, float]]:
    """``n`` cases within a metre of the EPSG:3857 point ``x, y``."""
    return [
        ("0101", WHEN, *mercator_to_lonlat(x + (i % 5) * 0.2, y + (i // 5) * 0.2)) for i in range(n)
    ]


def place_cases_on_a_seam(url: str) -> tuple[int, int, int]:
    """Put cases on the seams of the zoom-16 tile at the city centre: a dense cell inside it,
    a dense cell of its right neighbour and a sparse cell of its left one, both within the
    buffer's width of its edge; and enough in another cell of it that it and the tiles
    holding it hold more than STRIPS_MAX. The tile."""
    x, y = lonlat_to_mercator(*CENTER)
    tx, ty = cell_of(x, y, 16)
    minx, _, maxx, maxy = tile_bounds(16, tx, ty)
    cell = tile_size(16 + CELL_DEEPER)
    buffer = buffer_margin() * tile_size(16)
    copy_incidents(
        url,
        blob(minx + 5.5 * cell, maxy - 5.5 * cell, 30)
        + blob(maxx + buffer / 2, maxy - 2.5 * cell, 30)
        + blob(minx - buffer / 2, maxy - 9.5 * cell, 5)
        + blob(minx + 10.5 * cell, maxy - 10.5 * cell, STRIPS_MAX),
    )
    return 16, tx, ty


async def both_tiles(url: str, z: int, x: int, y: int) -> tuple[bytes, bytes]:
    """The incidents tile z/x/y from the stored cells and from the cases alone."""
    layer = load_catalog().get("incidents")
    plain = layer.model_copy(update={"cluster_cells": None, "cluster_levels": None})
    db = await asyncpg.connect(url)
    try:
        stored = await build_tile(db, [Source("incidents", layer)], z, x, y, TileFilters())
        counted = await build_tile(db, [Source("incidents", plain)], z, x, y, TileFilters())
        return stored[0], counted[0]
    finally:
        await db.close()


def rule(
    points: list[tuple[int, float, float]], z: int, x: int, y: int, limit: int
) -> tuple[set[int], list[int], int]:
    """What tile z/x/y shows by the cluster rule, from every case: the ids shown as
    themselves (in the tile and its buffer, their cell holding at most ``limit``), the
    counts of its clusters (its cells holding more) and how many cases of its buffer a
    dense cell outside it hides, and how many it holds."""
    counts = Counter(cell_of(px, py, z + CELL_DEEPER) for _, px, py in points)
    minx, miny, maxx, maxy = tile_bounds(z, x, y, buffer_margin())
    n = 1 << CELL_DEEPER
    shown, hidden = set(), 0
    for i, px, py in points:
        if not (minx <= px <= maxx and miny <= py <= maxy):
            continue
        col, row = cell_of(px, py, z + CELL_DEEPER)
        if counts[(col, row)] <= limit:
            shown.add(i)
        elif not (x * n <= col < x * n + n and y * n <= row < y * n + n):
            hidden += 1
    clusters = sorted(
        c
        for (col, row), c in counts.items()
        if c > limit and x * n <= col < x * n + n and y * n <= row < y * n + n
    )
    total = sum(
        c
        for (col, row), c in counts.items()
        if x * n <= col < x * n + n and y * n <= row < y * n + n
    )
    return shown, clusters, hidden, total


def test_tiles_from_the_levels_follow_the_rule_and_equal_tiles_from_the_cases(url: str) -> None:
    z16, x16, y16 = place_cases_on_a_seam(url)
    points = [(i, px, py) for i, px, py, _ in cases(url)]
    limit = load_catalog().get("incidents").cluster_cell_max
    tiles = []
    for z in (13, 14, 15, 16):
        k = 1 << (16 - z)
        cx, cy = x16 // k, y16 // k
        tiles += [(z, cx + dx, cy + dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]
    clusters_seen = shown_seen = hidden_seen = 0
    ways = set()  # (zoom, whether the tile holds more than STRIPS_MAX): both ways, every zoom
    for z, x, y in tiles:
        fast, slow = asyncio.run(both_tiles(url, z, x, y))
        a = mapbox_vector_tile.decode(fast).get("incidents", {}).get("features", [])
        b = mapbox_vector_tile.decode(slow).get("incidents", {}).get("features", [])
        assert sorted(a, key=str) == sorted(b, key=str), (z, x, y)
        shown, clusters, hidden, total = rule(points, z, x, y, limit)
        ways.add((z, total > STRIPS_MAX))
        assert {f["id"] for f in a if "count" not in f["properties"]} == shown, (z, x, y)
        assert sorted(f["properties"]["count"] for f in a if "count" in f["properties"]) == clusters
        clusters_seen += len(clusters)
        shown_seen += len(shown)
        hidden_seen += hidden
    assert clusters_seen and shown_seen and hidden_seen
    assert ways == {(z, more) for z in (13, 14, 15, 16) for more in (False, True)}
    shown, clusters, hidden, _ = rule(points, z16, x16, y16, limit)
    assert max(clusters) >= 30 and hidden >= 30
