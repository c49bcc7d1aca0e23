"""The incidents' cluster cells (migration 0022): equal to the cases counted in Python after
writes through the real paths (reports and transitions over HTTP, COPY, a move, a delete),
and incident tiles built from them equal to tiles built from the cases themselves."""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime

import asyncpg
import mapbox_vector_tile
import psycopg
import pytest
from fastapi.testclient import TestClient

from gis.tilemath import ORIGIN, interleave, tiles_covering
from layers.catalog.registry import load_catalog
from tests.helpers import copy_incidents, make_key
from tiles.filters import TileFilters
from tiles.service import build_tile
from tiles.sources import Source

ZOOM = 17
EXTENT = (113.98, 22.50, 114.12, 22.60)


@pytest.fixture(scope="module")
def url(tiles_city) -> str:
    """A copy of the tile city."""
    return tiles_city("cityhex_cluster_cells")


@pytest.fixture(scope="module")
def http(url: str) -> Iterator[TestClient]:
    """The app on this module's database."""
    from spatial_api.app import create_app

    with TestClient(create_app(url)) as client:
        yield client


def expected_cells(url: str) -> dict[tuple[int, str], tuple[int, float, float]]:
    """Count and 3857 coordinate sums per zoom-17 tile and status, from the cases' points in
    Python (the tile's Morton number from its column and row)."""
    with psycopg.connect(url) as conn:
        points = conn.execute(
            "SELECT ST_X(geom_3857), ST_Y(geom_3857), status FROM incidents"
        ).fetchall()
    sums: dict[tuple[int, str], list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    n = 1 << ZOOM
    for x, y, status in points:
        col = math.floor((x + ORIGIN) / (2 * ORIGIN) * n)
        row = math.floor((ORIGIN - y) / (2 * ORIGIN) * n)
        s = sums[(interleave(col, row), status)]
        s[0] += 1
        s[1] += x
        s[2] += y
    return {cell: (int(c), sx, sy) for cell, (c, sx, sy) in sums.items()}


def stored_cells(url: str) -> dict[tuple[int, str], tuple[int, float, float]]:
    """The table's cells and statuses that hold a case."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT cell, status, n, sx::float8, sy::float8 FROM incident_cluster_cells WHERE n > 0"
        ).fetchall()
    return {(cell, status): (n, sx, sy) for cell, status, n, sx, sy in rows}


def assert_cells_match(url: str) -> None:
    """The table equals the Python count (sums within a micrometre)."""
    expected, stored = expected_cells(url), stored_cells(url)
    assert stored.keys() == expected.keys()
    for cell, (n, sx, sy) in expected.items():
        assert stored[cell][0] == n
        assert stored[cell][1] == pytest.approx(sx, abs=1e-6)
        assert stored[cell][2] == pytest.approx(sy, abs=1e-6)


def test_cells_follow_every_write(url: str, http: TestClient) -> None:
    assert_cells_match(url)  # filled by the migration
    app, dispatcher = make_key(url, "app"), make_key(url, "dispatcher")
    ids = []
    for i in range(5):
        lon, lat = 114.05 + i * 1e-4, 22.55  # several in one zoom-17 cell, in the grid
        r = http.post("/incidents", json={"category": "0107", "lon": lon, "lat": lat}, headers=app)
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    assert_cells_match(url)
    r = http.post(
        f"/incidents/{ids[0]}/transitions",
        json={"action": "register"},
        headers={**dispatcher, "If-Match": '"1"'},
    )
    assert r.status_code == 200, r.text
    before = stored_cells(url)
    assert_cells_match(url)
    copy_incidents(url, [("0101", datetime(2026, 5, 1, tzinfo=UTC), 114.06, 22.57)] * 40)
    assert_cells_match(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "UPDATE incidents SET geom = ST_SetSRID(ST_MakePoint(114.06, 22.56), 4326)"
            " WHERE id = %s",
            (ids[1],),
        )
        assert_cells_match(url)
        conn.execute("DELETE FROM incidents WHERE id = ANY(%s)", (ids[2:],))
    assert_cells_match(url)
    assert stored_cells(url) != before


async def both_tiles(url: str, z: int, x: int, y: int) -> tuple[bytes, bytes]:
    """The incidents tile z/x/y from the cluster cells and from the cases alone."""
    layer = load_catalog().get("incidents")
    plain = layer.model_copy(update={"cluster_cells": None})
    db = await asyncpg.connect(url)
    try:
        with_cells = await build_tile(db, [Source("incidents", layer)], z, x, y, TileFilters())
        without = await build_tile(db, [Source("incidents", plain)], z, x, y, TileFilters())
        return with_cells[0], without[0]
    finally:
        await db.close()


def test_tiles_from_the_cells_equal_tiles_from_the_cases(url: str) -> None:
    shown = 0
    for z in (10, 11, 12, 13):
        for _, x, y in sorted(tiles_covering(EXTENT, z))[:12]:
            fast, slow = asyncio.run(both_tiles(url, z, x, y))
            a = mapbox_vector_tile.decode(fast).get("incidents", {}).get("features", [])
            b = mapbox_vector_tile.decode(slow).get("incidents", {}).get("features", [])
            assert sorted(a, key=str) == sorted(b, key=str), (z, x, y)
            shown += sum(f["properties"].get("count", 1) for f in a)
    assert shown > 0
