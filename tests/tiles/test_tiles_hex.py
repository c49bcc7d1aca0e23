"""H3 aggregate layers and point clusters, checked against the h3 package and plain SQL."""

from __future__ import annotations

import asyncio
import math
from collections import Counter

import asyncpg
import h3
import mapbox_vector_tile
import numpy as np
import psycopg
import pytest
import shapely
from fastapi.testclient import TestClient

from layers.catalog.registry import load_catalog
from layers.db.keys import create_key
from layers.db.scope import Scope
from layers.incidents.workflow import CLOCK_STOPPED, STATES
from tests.helpers import CENTER, TO_3857, make_key, tile_box, tile_of
from tiles.derived import ENDED, overdue
from tiles.filters import TileFilters
from tiles.service import build_tile
from tiles.sources import Source

MARGIN = 64 / 4096


def decode(body: bytes) -> dict:
    return mapbox_vector_tile.decode(body, default_options={"y_coord_down": True})


def tile_at(x: float, y: float, z: int) -> tuple[int, int]:
    """The column and row of the zoom-``z`` tile holding EPSG:3857 point ``x, y``."""
    half = math.pi * 6378137
    size = 2 * half / 2**z
    return math.floor((x + half) / size), math.floor((half - y) / size)


def ring_3857(cell: str) -> shapely.Polygon:
    ring = [TO_3857.transform(lng, lat) for lat, lng in h3.cell_to_boundary(cell)]
    return shapely.Polygon(ring)


def edge_res(z: int) -> int:
    """The resolution whose hexagons are closest to 40 pixels of a 256-pixel tile."""
    target = 40 * 2 * math.pi * 6378137 / 2**z / 256
    return min(
        range(16),
        key=lambda r: abs(math.log(2 * h3.average_hexagon_edge_length(r) * 1000 / target)),
    )


def test_hex_polygons_are_the_h3_boundaries_within_a_pixel(web: TestClient, city: str) -> None:
    t = tile_of(*CENTER, 13)
    minx, _, maxx, maxy = tile_box(*t)
    unit = (maxx - minx) / 4096
    body = web.get(f"/tiles/assets_hex/{t[0]}/{t[1]}/{t[2]}.mvt").content
    inner = shapely.box(*tile_box(*t))
    whole = 0
    for f in decode(body)["assets_hex"]["features"]:
        truth = ring_3857(f["properties"]["cell"])
        if not inner.contains(truth):
            continue
        whole += 1
        pts = np.array(f["geometry"]["coordinates"][0], dtype=float)
        got = shapely.Polygon(np.column_stack([minx + pts[:, 0] * unit, maxy - pts[:, 1] * unit]))
        assert got.hausdorff_distance(truth) <= unit
    assert whole > 3


def test_hex_layer_follows_filters_and_zoom_range(web: TestClient, city: str) -> None:
    key = make_key(city, "app")
    t = tile_of(*CENTER, 12)
    path = f"/tiles/incidents_hex/{t[0]}/{t[1]}/{t[2]}.mvt"
    every = decode(web.get(path, headers=key).content)["incidents_hex"]["features"]
    some = decode(web.get(path + "?category=0101&from=2026-01-01", headers=key).content)
    shown = {f["properties"]["cell"] for f in every}
    with psycopg.connect(city) as conn:
        rows = conn.execute(
            "SELECT ST_X(geom), ST_Y(geom), category_code = '0101' AND reported_at >= "
            "'2026-01-01' FROM incidents"
        ).fetchall()
    inside = [p for lon, lat, p in rows if h3.latlng_to_cell(lat, lon, edge_res(12)) in shown]
    total, picked = len(inside), sum(inside)
    assert sum(f["properties"]["count"] for f in every) == total
    assert sum(f["properties"]["count"] for f in some["incidents_hex"]["features"]) == picked
    assert 0 < picked < total
    assert web.get("/tiles/incidents_hex/18/1/1.mvt", headers=key).status_code == 204


@pytest.mark.parametrize("keyed", [True, False], ids=["tile-key", "spatial-index"])
def test_clusters_count_every_point_of_the_tile_once(city: str, keyed: bool) -> None:
    layer = load_catalog().get("incidents")
    layer = layer.model_copy(update={"cluster_below": 14, "tile_key": keyed})
    source = Source("incidents", layer)

    async def build(z: int, x: int, y: int) -> bytes:
        conn = await asyncpg.connect(city)
        try:
            return (await build_tile(conn, [source], z, x, y, TileFilters()))[0]
        finally:
            await conn.close()

    for z in (11, 13):
        t = tile_of(*CENTER, z)
        feats = decode(asyncio.run(build(*t)))["incidents"]["features"]
        minx, miny, maxx, maxy = tile_box(*t)
        with psycopg.connect(city) as conn:
            pts = np.array(
                conn.execute(
                    "SELECT ST_X(geom_3857), ST_Y(geom_3857) FROM incidents WHERE ST_X(geom_3857)"
                    " >= %s AND ST_X(geom_3857) < %s AND ST_Y(geom_3857) > %s AND "
                    "ST_Y(geom_3857) <= %s",
                    (minx, maxx, miny, maxy),
                ).fetchall()
            )
        assert sum(f["properties"]["count"] for f in feats) == len(pts) > len(feats)
        assert all(f["geometry"]["type"] == "Point" and not f.get("id") for f in feats)
        # one cluster per 16-pixel cell (256 tile units), at its members' mean, kept more than
        # the buffer (64 units) inside the tile
        unit = (maxx - minx) / 4096
        # columns from the left, rows from the top (a point on the top edge is in row 0)
        cells = np.floor(np.column_stack([pts[:, 0] - minx, maxy - pts[:, 1]]) / (256 * unit))
        cells = cells.astype(int)
        want = {}
        for cell in {tuple(c) for c in cells}:
            members = pts[(cells == cell).all(axis=1)]
            mx, my = members.mean(axis=0)
            mx = min(max(mx, minx + 65 * unit), maxx - 65 * unit)
            my = min(max(my, miny + 65 * unit), maxy - 65 * unit)
            want[((mx - minx) / unit, (maxy - my) / unit)] = len(members)
        assert len(feats) == len(want)
        for f in feats:
            gx, gy = f["geometry"]["coordinates"]
            near = [n for (wx, wy), n in want.items() if abs(wx - gx) <= 1 and abs(wy - gy) <= 1]
            assert near == [f["properties"]["count"]], (gx, gy)


@pytest.mark.parametrize("keyed", [True, False], ids=["tile-key", "spatial-index"])
def test_a_cell_denser_than_cluster_cell_max_shows_as_a_cluster(city: str, keyed: bool) -> None:
    layer = load_catalog().get("incidents")
    layer = layer.model_copy(update={"cluster_cell_max": 5, "tile_key": keyed})
    source = Source("incidents", layer)

    async def build(z: int, x: int, y: int) -> bytes:
        conn = await asyncpg.connect(city)
        try:
            return (await build_tile(conn, [source], z, x, y, TileFilters()))[0]
        finally:
            await conn.close()

    def cells(z: int) -> dict[int, tuple[int, int]]:
        """Each incident's 16-pixel cell at zoom ``z`` (a tile of zoom z + 4), by id."""
        with psycopg.connect(city) as conn:
            found = conn.execute("SELECT id, ST_X(geom_3857), ST_Y(geom_3857) FROM incidents")
            return {i: tile_at(x, y, z + 4) for i, x, y in found.fetchall()}

    for z, x, y in (tile_of(*CENTER, 15), tile_of(CENTER[0] + 0.02, CENTER[1], 17)):
        cell_of = cells(z)
        counts = Counter(cell_of.values())
        mine = {i for i, c in cell_of.items() if (c[0] >> 4, c[1] >> 4) == (x, y)}
        assert mine
        feats = decode(asyncio.run(build(z, x, y)))["incidents"]["features"]
        clusters = [f for f in feats if not f.get("id")]
        raw = {f["id"] for f in feats if f.get("id")}
        assert all(set(f["properties"]) == {"count"} for f in clusters)
        assert all(counts[cell_of[i]] <= 5 for i in raw)
        dense = {i for i in mine if counts[cell_of[i]] > 5}
        assert sum(f["properties"]["count"] for f in clusters) == len(dense)
        assert len(clusters) == len({cell_of[i] for i in dense})
        assert mine - dense <= raw
        assert bool(dense) == (z == 15)  # the city centre is dense, the z17 tile beside it not


OPEN = "status NOT IN ('closed','cancelled')"
EVERY = [(None, lambda s: True)]
BY_STATUS = [
    (OPEN, lambda s: s not in ("closed", "cancelled")),
    ("status IN ('closed','cancelled')", lambda s: s in ("closed", "cancelled")),
    ("status = 'reported' OR status LIKE 'in%'", lambda s: s == "reported" or s[:2] == "in"),
]


@pytest.mark.parametrize(
    "z, cql, keep",
    [(z, *f) for z in (10, 12, 13, 14, 15) for f in EVERY]
    + [(z, *f) for z in (10, 13) for f in BY_STATUS],
    ids=lambda v: v if isinstance(v, int | str) else "",
)
def test_hex_cells_and_counts_match_the_h3_package(
    web: TestClient, city: str, z: int, cql: str | None, keep
) -> None:
    """Unfiltered or filtered by status alone (both from the stored counts by status), each
    cell's count, overdue count and count per status equal those of the cases the filter
    keeps, counted with h3."""
    with psycopg.connect(city) as conn:
        data = conn.execute(
            "SELECT ST_X(geom), ST_Y(geom), status, deadline < now() AND status NOT IN "
            "('closed', 'cancelled', 'parked') FROM incidents"
        ).fetchall()
    res = edge_res(z)
    count, overdue, by_status = Counter(), Counter(), Counter()
    for lon, lat, status, late in data:
        if keep(status):
            cell = h3.latlng_to_cell(lat, lon, res)
            count[cell] += 1
            overdue[cell] += bool(late)
            by_status[(cell, status)] += 1
    t = tile_of(*CENTER, z)
    area = shapely.box(*tile_box(*t, MARGIN))
    expected = {c for c in count if ring_3857(c).intersects(area)}
    body = web.get(
        f"/tiles/incidents_hex/{t[0]}/{t[1]}/{t[2]}.mvt",
        params={"filter": cql} if cql else {},
        headers=make_key(city, "app"),
    ).content
    feats = decode(body)["incidents_hex"]["features"]
    got = {f["properties"]["cell"]: f for f in feats}
    assert set(got) == expected and len(expected) > 3
    for cell, f in got.items():
        p = f["properties"]
        assert f["id"] == h3.str_to_int(cell) and h3.get_resolution(cell) == res
        assert (p["count"], p["overdue"]) == (count[cell], overdue[cell])
        statuses = {k.removeprefix("status_"): v for k, v in p.items() if k.startswith("status_")}
        assert statuses == {s: n for (c, s), n in by_status.items() if c == cell}


def test_hex_reads_stored_counts_only_for_filters_on_status_alone(tiles_city) -> None:
    """A count added to the stored table shows in unfiltered and status-filtered hexagons,
    not in hexagons filtered by anything else (those count the cases)."""
    from spatial_api.app import create_app

    url = tiles_city("hex_stored_counts")
    t = tile_of(*CENTER, 12)
    path = f"/tiles/incidents_hex/{t[0]}/{t[1]}/{t[2]}.mvt"
    asks = {
        "none": {},
        "open": {"filter": OPEN},
        "mixed": {"filter": f"{OPEN} AND category_code <> 'x'"},
        "time": {"filter": OPEN, "from": "2000-01-01T00:00:00Z"},
    }
    key = make_key(url, "app")
    with psycopg.connect(url, autocommit=True) as conn:  # one district holding every case
        district, code = conn.execute("SELECT id, code FROM districts ORDER BY id").fetchone()
        conn.execute("UPDATE incidents SET district_id = %s", (district,))
        scope = Scope.of(districts=[code])
        scoped = create_key(conn, "dispatcher", "one-district", None, scope)
    scoped_key = {"Authorization": f"Bearer {scoped}"}

    def total(client: TestClient, params: dict, headers: dict) -> int:
        body = client.get(path, params=params, headers=headers).content
        return sum(
            f["properties"]["count"]
            for f in decode(body).get("incidents_hex", {}).get("features", [])
        )

    def totals() -> dict[str, int]:
        """The count over the tile's hexagons for each ask (a new app: no cached tile)."""
        with TestClient(create_app(url)) as client:
            counts = {name: total(client, q, key) for name, q in asks.items()}
            counts["scoped"] = total(client, asks["open"], scoped_key)
            return counts

    before = totals()
    assert before["open"] == before["mixed"] == before["time"] == before["scoped"]
    assert before["open"] < before["none"]
    res = edge_res(12)
    near = [h3.str_to_int(c) for c in h3.grid_disk(h3.latlng_to_cell(CENTER[1], CENTER[0], res), 1)]
    with psycopg.connect(url, autocommit=True) as conn:
        changed = conn.execute(
            "UPDATE incident_cell_counts SET n = n + 1000 WHERE (res, cell, status) = "
            "(SELECT res, cell, status FROM incident_cell_counts WHERE res = %s AND"
            " cell = ANY(%s) AND status = 'reported' AND n > 0 LIMIT 1)",
            (res, near),
        ).rowcount
    assert changed == 1
    after = totals()
    # a caller with a read scope counts the cases it may read, never the stored counts
    assert after == {**before, "none": before["none"] + 1000, "open": before["open"] + 1000}


def test_the_open_case_index_holds_what_overdue_reads(city: str) -> None:
    """``overdue`` is counted through ix_incidents_open_geom: its predicate is the condition
    the tile writes (Derived.live), so the planner can use it, and only ended states are out."""
    with psycopg.connect(city) as conn:
        indexdef = conn.execute(
            "SELECT pg_get_indexdef('ix_incidents_open_geom'::regclass)"
        ).fetchone()[0]
    live = overdue().live.removeprefix('f."status"')
    assert indexdef.endswith(f"WHERE ((status){live})"), indexdef
    assert {"closed", "cancelled"} == ENDED and not ENDED & (set(STATES) - CLOCK_STOPPED)
