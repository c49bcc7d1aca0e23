"""Every aggregate counts a point in the cell that contains it at the resolution asked.

The points lie one to four metres either side of the edges of H3 cells at res 5–11, where
the cell that contains a point and the ancestor of its finer cell disagree. They go in
through the import pipeline (a layer created from a GeoJSON file), and every expectation
is computed here from the points themselves: with ``h3.latlng_to_cell``, with shapely on
``h3.cell_to_boundary``, and with numpy for Gi*.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import asyncpg
import h3
import mapbox_vector_tile
import numpy as np
import psycopg
import pytest
import shapely
from fastapi.testclient import TestClient

from etl.imports.options import ImportOptions
from etl.imports.vector import import_file
from layers.analytics.aggregations import Filters, cell_counts
from layers.catalog.registry import load_catalog
from layers.db.engine import create_async_engine
from layers.db.settings import storage_settings
from tests.helpers import edge_points, tile_of, two_sided, write_file
from tiles.filters import TileFilters
from tiles.service import SESSION_SETTINGS, build_tile
from tiles.sources import Source

CENTRE = (114.06, 22.55)
LAYER = "exact_edges"
START = datetime(2026, 1, 1, tzinfo=UTC)
DAYS = 60
GRID_PARENT = h3.latlng_to_cell(CENTRE[1], CENTRE[0], 7)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A catalog.d of this module's own, so no other module sees the layer made here."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CITYHEX_HOME", str(tmp_path_factory.mktemp("home")))
        storage_settings.cache_clear()
        yield
    storage_settings.cache_clear()


@pytest.fixture(scope="module")
def points(new_database, home, tmp_path_factory) -> tuple[str, np.ndarray, list[datetime]]:
    """The database, the points (lon, lat) and their times, imported as layer LAYER, and a
    unit grid of the 343 res-10 cells under GRID_PARENT."""
    url = new_database("cityhex_exact_cells")
    rng = np.random.default_rng(17)
    pts = edge_points(rng, CENTRE)
    seen = [START + timedelta(seconds=int(s)) for s in rng.integers(0, DAYS * 86400, len(pts))]
    path = write_file(
        tmp_path_factory.mktemp("src") / "edges.geojson",
        shapely.points(pts),
        {"seen": np.array([t.isoformat() for t in seen], dtype=object)},
    )
    report = import_file(url, path, ImportOptions(layer=LAYER, create=True, public=True,
                                                  time_field="seen"))  # fmt: skip
    assert report.written == len(pts)
    with psycopg.connect(url) as conn:
        for c in h3.cell_to_children(GRID_PARENT, 10):
            conn.execute(
                "INSERT INTO grid_cells (h3, res, area_m2, geom) VALUES (%s, 10, 1,"
                " ST_GeomFromText(%s, 4326))",
                (h3.str_to_int(c), cell_polygon(c).wkt),
            )
    return url, pts, seen


@pytest.fixture(scope="module")
def http(points) -> Iterator[TestClient]:
    """The app on the module's database."""
    from spatial_api.app import create_app

    with TestClient(create_app(points[0])) as client:
        yield client


def cell_polygon(cell: str) -> shapely.Polygon:
    """The lon/lat polygon of ``cell``'s boundary."""
    return shapely.Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(cell)])


def exact(pts: np.ndarray, res: int) -> Counter:
    """Points per cell, each in the cell that contains it."""
    return Counter(h3.latlng_to_cell(lat, lon, res) for lon, lat in pts.tolist())


def rolled_up(pts: np.ndarray, res: int) -> Counter:
    """Points per cell by the old rule: the ancestor of the point's res-10 cell."""
    return Counter(
        h3.cell_to_parent(h3.latlng_to_cell(lat, lon, 10), res) for lon, lat in pts.tolist()
    )


@pytest.mark.parametrize("res", [5, 6, 7, 8, 9, 10, 11])
def test_counts_per_cell_are_the_points_each_cell_contains(http, points, res: int) -> None:
    _, pts, _ = points
    resp = http.get("/analytics/h3", params={"layer": LAYER, "res": res})
    assert resp.status_code == 200, resp.text
    got = {row["cell"]: row["count"] for row in resp.json()["cells"]}
    assert got == exact(pts, res)
    if res < 10:  # the points tell the two rules apart: the old one would fail here
        assert rolled_up(pts, res) != exact(pts, res)


def test_period_comparison_counts_exact_cells(http, points) -> None:
    _, pts, seen = points
    mid, end = START + timedelta(days=25), START + timedelta(days=DAYS)
    params = {"layer": LAYER, "res": 8, "a_from": START.isoformat(), "a_to": mid.isoformat(),
              "b_from": mid.isoformat(), "b_to": end.isoformat()}  # fmt: skip
    resp = http.get("/analytics/timeseries/compare", params=params)
    assert resp.status_code == 200, resp.text
    when = np.array(seen)
    count_a = exact(pts[when < mid], 8)
    count_b = exact(pts[when >= mid], 8)
    got = {r["cell"]: (r["count_a"], r["count_b"]) for r in resp.json()["cells"]}
    assert got == {c: (count_a[c], count_b[c]) for c in set(count_a) | set(count_b)}


def test_time_series_of_a_cell_counts_its_points(http, points) -> None:
    _, pts, seen = points
    cells = exact(pts, 7)
    cell = max(cells, key=cells.get)
    params = {"layer": LAYER, "interval": "week", "cell": cell, "from": START.isoformat(),
              "to": (START + timedelta(weeks=9)).isoformat()}  # fmt: skip
    resp = http.get("/analytics/timeseries", params=params)
    assert resp.status_code == 200, resp.text
    inside = [t for (lon, lat), t in zip(pts.tolist(), seen, strict=True)
              if h3.latlng_to_cell(lat, lon, 7) == cell]  # fmt: skip
    monday = START - timedelta(days=START.weekday())  # weeks start on Monday (ISO)
    expected = Counter((t - monday) // timedelta(weeks=1) for t in inside)
    got = [b["count"] for b in resp.json()["buckets"]]
    assert got == [expected[i] for i in range(len(got))] and len(got) == 10
    assert sum(expected.values()) == cells[cell] > 0


def gi_star_numpy(cells: list[str], x: np.ndarray, k: int) -> np.ndarray:
    """Getis-Ord Gi* (binary k-ring weights, self included) in matrix form:
    z_i = (W x − X̄ W1)_i / (S sqrt((n (W1)_i − (W1)_i²) / (n − 1))), S² = mean(x²) − X̄²."""
    n = len(cells)
    w = np.array([[h3.grid_distance(a, b) <= k for b in cells] for a in cells], dtype=float)
    mean = x.mean()
    s = math.sqrt((x**2).mean() - mean**2)
    wsum = w.sum(axis=1)
    return (w @ x - mean * wsum) / (s * np.sqrt((n * wsum - wsum**2) / (n - 1)))


@pytest.mark.parametrize("res", [8, 9])
def test_gi_star_is_the_formula_on_exact_counts(http, points, res: int) -> None:
    _, pts, _ = points
    grid = h3.cell_to_children(GRID_PARENT, 10)
    counts = exact(pts, res)
    study = {h3.latlng_to_cell(*h3.cell_to_latlng(u), res) for u in grid} | set(counts)
    cells = sorted(study, key=h3.str_to_int)
    x = np.array([counts.get(c, 0) for c in cells], dtype=float)
    z = dict(zip(cells, gi_star_numpy(cells, x, 1), strict=True))
    resp = http.get("/analytics/hotspots", params={"layer": LAYER, "res": res, "k": 1})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["study_area"] == "grid" and body["n_cells"] == len(cells)
    for row in body["cells"]:
        assert row["count"] == counts.get(row["cell"], 0)
        assert row["z"] == pytest.approx(z[row["cell"]], rel=1e-9, abs=1e-12)
        assert row["p"] == pytest.approx(two_sided(z[row["cell"]]), rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("z", [10, 11, 12, 14, 15])
def test_hex_tile_counts_are_the_points_inside_each_hexagon(http, points, z: int) -> None:
    _, pts, _ = points
    x, y = tile_of(*CENTRE, z)[1:]
    resp = http.get(f"/tiles/{LAYER}_hex/{z}/{x}/{y}.mvt")
    assert resp.status_code == 200, resp.text
    features = mapbox_vector_tile.decode(resp.content)[f"{LAYER}_hex"]["features"]
    assert features
    counts = exact(pts, h3.get_resolution(features[0]["properties"]["cell"]))
    for f in features:
        cell = f["properties"]["cell"]
        inside = int(shapely.contains_xy(cell_polygon(cell), pts[:, 0], pts[:, 1]).sum())
        assert f["properties"]["count"] == inside == counts[cell], cell


@pytest.mark.parametrize("res", [6, 8, 9])
def test_a_layer_storing_no_level_cells_counts_the_same(points, res: int) -> None:
    """Without ``h3_levels`` counts come from the points and ``_hex`` cells from polygons."""
    url, pts, _ = points
    bare = load_catalog().get(LAYER).model_copy(update={"h3_levels": []})
    assert res not in bare.cell_columns
    z = {6: 10, 8: 12, 9: 14}[res]
    tile = tile_of(*CENTRE, z)

    async def run() -> tuple[dict, bytes]:
        engine = create_async_engine(url)
        async with engine.connect() as conn:
            cells, counts = await cell_counts(conn, Filters(bare), res)
        await engine.dispose()
        raw = await asyncpg.connect(url, server_settings=SESSION_SETTINGS)
        try:
            body, _ = await build_tile(raw, [Source(f"{LAYER}_hex", bare, hex=True)], *tile,
                                       TileFilters())  # fmt: skip
        finally:
            await raw.close()
        return {h3.int_to_str(int(c)): int(n) for c, n in zip(cells, counts, strict=True)}, body

    got, body = asyncio.run(run())
    expected = exact(pts, res)
    assert got == expected
    features = mapbox_vector_tile.decode(body)[f"{LAYER}_hex"]["features"]
    assert features
    for f in features:
        assert f["properties"]["count"] == expected[f["properties"]["cell"]]
