"""The tile cache is never stale: a committed change drops exactly the tiles it touches, at
every zoom, in every worker; untouched tiles stay cached; the cache stays within its bound."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import h3
import httpx
import mapbox_vector_tile
import psycopg
import pytest
import shapely

from layers.catalog.changes import publish_change_sync
from layers.catalog.registry import load_catalog
from tests.helpers import cell, make_key, running_server, tile_box, tile_of

MARGIN = 64 / 4096
CLUSTER_BELOW = load_catalog().get("assets").cluster_below
NOTICE_SETTLE = 0.3
"""Seconds allowed for a committed change's notice to reach the workers."""


pytestmark = pytest.mark.subprocess


@pytest.fixture(scope="module")
def server(city: str) -> Iterator[str]:
    """A real ``cityhex serve`` with two worker processes on the test city."""
    with running_server(city, workers=2) as base:
        yield base


def fetch(base: str, path: str, headers: dict | None = None) -> httpx.Response:
    """One request on a fresh connection (so both workers get requests)."""
    with httpx.Client(base_url=base, headers=headers or {}) as client:
        return client.get(path)


def warm(base: str, path: str, headers: dict | None = None) -> None:
    """Request ``path`` until both workers have built it (two misses), then check it is a hit."""
    misses = 0
    for _ in range(400):
        r = fetch(base, path, headers)
        assert r.status_code in (200, 204), r.text
        misses += r.headers["x-cache"] == "miss"
        if misses == 2:
            break
    assert misses == 2, f"{path} was built {misses} times"


def asset_ids(body: bytes) -> set[int]:
    tile = mapbox_vector_tile.decode(body) if body else {}
    return {f["id"] for f in tile.get("assets", {"features": []})["features"]}


def move_asset(city: str, asset: int, lon: float, lat: float) -> tuple:
    """Move an asset by SQL (its cells at res 5–11 with it) and announce it as every writer
    must; (old box, new box)."""
    with psycopg.connect(city) as conn:
        old = conn.execute(
            "SELECT ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom) FROM assets "
            "WHERE id = %s",
            (asset,),
        ).fetchone()
        levels = {f"h3_{r}": cell(lon, lat, r) for r in (5, 6, 7, 8, 9, 11)}
        conn.execute(
            "UPDATE assets SET geom = ST_SetSRID(ST_MakePoint(%s, %s), 4326), h3 = %s, "
            + ", ".join(f"{c} = %s" for c in levels)
            + " WHERE id = %s",
            (lon, lat, cell(lon, lat), *levels.values(), asset),
        )
        new = (lon, lat, lon, lat)
        publish_change_sync(conn, "assets", [old, new])
    return old, new


def test_a_write_reaches_every_zoom_in_both_workers_and_spares_the_rest(
    server: str, city: str
) -> None:
    with psycopg.connect(city) as conn:
        asset, lon, lat = conn.execute(
            "SELECT id, ST_X(geom), ST_Y(geom) FROM assets WHERE GeometryType(geom) = 'POINT' "
            "ORDER BY id LIMIT 1"
        ).fetchone()
    dest = (lon + 0.004, lat + 0.003)
    paths = {}
    for z in range(10, 23):
        for where in ((lon, lat), dest):
            t = tile_of(*where, z)
            paths[f"/tiles/assets/{t[0]}/{t[1]}/{t[2]}.mvt"] = t
    hex_paths = [
        f"/tiles/assets_hex/{z}/{x}/{y}.mvt"
        for z, x, y in (tile_of(lon, lat, z) for z in range(10, 17))
    ]
    far = tile_of(lon - 0.05, lat - 0.05, 15)
    far_path = f"/tiles/assets/{far[0]}/{far[1]}/{far[2]}.mvt"
    for path in [*paths, *hex_paths, far_path]:
        warm(server, path)
    before = {p: fetch(server, p) for p in paths}
    old, _ = move_asset(city, asset, *dest)
    time.sleep(NOTICE_SETTLE)
    for path, t in paths.items():
        area = shapely.box(*_lonlat_box(*t))
        touched = area.contains(shapely.Point(dest)) or area.contains(shapely.Point(old[:2]))
        for _ in range(6):
            r = fetch(server, path)
            if t[0] < CLUSTER_BELOW:
                assert cluster_total(r.content) == assets_inside(city, t), path
                continue
            assert (asset in asset_ids(r.content)) == area.contains(shapely.Point(dest)), path
            assert (r.content != before[path].content) == touched, path
    for path in hex_paths:
        truth = true_counts(city, path)
        for _ in range(6):
            got = hex_counts(fetch(server, path).content)
            assert got and all(truth[c] == n for c, n in got.items()), path
    for _ in range(10):
        assert fetch(server, far_path).headers["x-cache"] == "hit"


def cluster_total(body: bytes) -> int:
    """The assets a clustered tile counts."""
    layer = mapbox_vector_tile.decode(body)["assets"]
    return sum(f["properties"]["count"] for f in layer["features"])


def assets_inside(city: str, t: tuple[int, int, int]) -> int:
    """Assets whose box centre lies in the tile, by SQL."""
    minx, miny, maxx, maxy = tile_box(*t)
    centre = "(ST_XMin(geom_3857) + ST_XMax(geom_3857)) / 2"
    middle = "(ST_YMin(geom_3857) + ST_YMax(geom_3857)) / 2"
    with psycopg.connect(city) as conn:
        return conn.execute(
            f"SELECT count(*) FROM assets WHERE {centre} >= %s AND {centre} < %s "
            f"AND {middle} > %s AND {middle} <= %s",
            (minx, maxx, miny, maxy),
        ).fetchone()[0]


def hex_counts(body: bytes) -> dict[int, int]:
    """Cell → count of an aggregate tile."""
    layer = mapbox_vector_tile.decode(body)["assets_hex"]
    return {f["id"]: f["properties"]["count"] for f in layer["features"]}


def true_counts(city: str, path: str) -> dict[int, int]:
    """Cell → count of assets, each in the cell holding its point on surface (h3)."""
    z = int(path.split("/")[3])
    res = {10: 6, 11: 7, 12: 8, 13: 8, 14: 9, 15: 10, 16: 10}[z]
    with psycopg.connect(city) as conn:
        geoms = [
            shapely.from_wkb(g) for (g,) in conn.execute("SELECT ST_AsBinary(geom) FROM assets")
        ]
    points = [shapely.point_on_surface(g) for g in geoms]
    return Counter(h3.str_to_int(h3.latlng_to_cell(p.y, p.x, res)) for p in points)


def _lonlat_box(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    from pyproj import Transformer

    t = Transformer.from_crs(3857, 4326, always_xy=True)
    minx, miny, maxx, maxy = tile_box(z, x, y, MARGIN)
    return (*t.transform(minx, miny), *t.transform(maxx, maxy))


def test_an_incident_transition_refreshes_its_tiles_and_hex_counts(server: str, city: str) -> None:
    key = make_key(city, "app")
    with psycopg.connect(city) as conn:
        incident, lon, lat = conn.execute(
            "SELECT id, ST_X(geom), ST_Y(geom) FROM incidents WHERE status = 'reported' "
            "ORDER BY id LIMIT 1"
        ).fetchone()
    z, x, y = tile_of(lon, lat, 16)
    point_path = f"/tiles/incidents/{z}/{x}/{y}.mvt"
    hz, hx, hy = tile_of(lon, lat, 12)
    hex_path = f"/tiles/incidents_hex/{hz}/{hx}/{hy}.mvt"
    for path in (point_path, hex_path):
        warm(server, path, key)
    with psycopg.connect(city) as conn:
        conn.execute("UPDATE incidents SET status = 'registered' WHERE id = %s", (incident,))
        publish_change_sync(conn, "incidents", [(lon, lat, lon, lat)])
    time.sleep(NOTICE_SETTLE)
    mine = h3.str_to_int(h3.latlng_to_cell(lat, lon, 8))
    with psycopg.connect(city) as conn:
        rows = conn.execute(
            "SELECT ST_X(geom), ST_Y(geom) FROM incidents WHERE status = 'registered'"
        ).fetchall()
    registered = sum(h3.str_to_int(h3.latlng_to_cell(y_, x_, 8)) == mine for x_, y_ in rows)
    for _ in range(6):
        tile = mapbox_vector_tile.decode(fetch(server, point_path, key).content)
        status = {f["id"]: f["properties"]["status"] for f in tile["incidents"]["features"]}
        assert status[incident] == "registered"
        cells = mapbox_vector_tile.decode(fetch(server, hex_path, key).content)["incidents_hex"]
        counts = {f["id"]: f["properties"].get("status_registered", 0) for f in cells["features"]}
        assert counts[mine] == registered


def test_a_rolled_back_write_changes_nothing(server: str, city: str) -> None:
    z, x, y = tile_of(114.05, 22.55, 14)
    path = f"/tiles/assets/{z}/{x}/{y}.mvt"
    warm(server, path)
    with psycopg.connect(city) as conn:
        conn.execute("UPDATE assets SET state = 'lost'")
        publish_change_sync(conn, "assets", None)
        conn.rollback()
    time.sleep(NOTICE_SETTLE)
    assert all(fetch(server, path).headers["x-cache"] == "hit" for _ in range(6))
