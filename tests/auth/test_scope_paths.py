"""The caller's scope narrows the analytics of cases, the case metrics and the grid, as it
narrows /incidents (issue 19: dispatchers to their districts, inspectors to their own cells
and cases).

The incident city (two districts split at 114.05, four inspectors owning a quarter each) gets
40 cases at the centres of cells drawn with a fixed seed, in two categories handled by two
departments, reported over the last ten days. What each path answers a key limited to the
west district (or an inspector key, or a department) is compared with what SQL finds for that
district, inspector or department, rolled up with the h3 package; the same request by an
unscoped key must give every case, so the narrowing is what removes the others.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import h3
import mapbox_vector_tile
import psycopg
import pytest
from fastapi.testclient import TestClient

from layers.db.keys import create_key
from layers.db.scope import Scope
from tests.helpers import RING, City, centre_cell, tile_of
from tests.incidents.conftest import build_city

WEST, EAST = "440301", "440302"
CASES = 40
NOW = datetime.now(UTC)
WHOLE = (113.9, 22.4, 114.2, 22.7)
"""A bbox holding the whole city."""


@pytest.fixture(scope="module")
def city(new_database) -> Iterator[City]:
    """The incident city with 40 cases over ten days, served in process."""
    from spatial_api.app import create_app

    url = new_database("cityhex_scope_paths")
    build_city(url)
    cells = sorted(h3.grid_disk(centre_cell(), RING - 1))
    picked = random.Random(19).choices(cells, k=CASES)
    with TestClient(create_app(url)) as client:
        town = City(url, client)
        app = town.key("app")
        for n, cell in enumerate(picked):
            lat, lon = h3.cell_to_latlng(cell)
            body = {"category": ("0101", "0102")[n % 2], "lon": lon, "lat": lat}
            assert client.post("/incidents", json=body, headers=app).status_code == 201
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "UPDATE incidents SET reported_at = %s - (id %% 10) * interval '1 day'"
                " - interval '1 hour'",
                (NOW,),
            )
        yield town


def header(city: City, role: str, user: int | None = None, **scope: list[str]) -> dict:
    """The Authorization header of a new key with this role, user and scope."""
    with psycopg.connect(city.url, autocommit=True) as conn:
        key = create_key(conn, role, f"paths-{role}", user, Scope.of(**scope))
    return {"Authorization": f"Bearer {key}"}


IN_WEST = "i.district_id = (SELECT id FROM districts WHERE code = '440301')"


def cells_of(city: City, where: str, res: int, params: tuple = ()) -> dict[str, int]:
    """Cases per res-``res`` cell (hex) where ``where`` holds: SQL counts per stored cell,
    rolled up with the h3 package."""
    rows = city.rows(f"SELECT i.h3, count(*) FROM incidents i WHERE {where} GROUP BY 1", params)
    counts: Counter[str] = Counter()
    for cell, n in rows:
        counts[h3.cell_to_parent(h3.int_to_str(cell), res)] += n
    return dict(counts)


def h3_counts(city: City, headers: dict, res: int, **params: object) -> dict[str, int]:
    r = city.client.get(
        "/analytics/h3", params={"layer": "incidents", "res": res, **params}, headers=headers
    )
    assert r.status_code == 200, r.text
    return {c["cell"]: c["count"] for c in r.json()["cells"]}


def test_h3_counts_keep_to_the_callers_districts_departments_and_cases(city: City) -> None:
    west = header(city, "dispatcher", districts=[WEST])
    for res in (8, 10):
        expected = cells_of(city, IN_WEST, res)
        assert expected and expected != cells_of(city, "true", res)
        assert h3_counts(city, west, res) == expected
        assert h3_counts(city, city.key("dispatcher"), res) == cells_of(city, "true", res)
    # res 11 is counted from the points, not the stored cells: the same cases
    assert sum(h3_counts(city, west, 11).values()) == sum(cells_of(city, IN_WEST, 8).values())
    dept = city.value(
        "SELECT code FROM departments WHERE id = (SELECT min(department_id) FROM incidents)"
    )
    in_dept = "i.department_id = (SELECT id FROM departments WHERE code = %s)"
    by_dept = header(city, "editor", departments=[dept])
    assert h3_counts(city, by_dept, 9) == cells_of(city, in_dept, 9, (dept,))
    assert cells_of(city, in_dept, 9, (dept,)) != cells_of(city, "true", 9)
    mine = header(city, "inspector", 101)
    assert h3_counts(city, mine, 9) == cells_of(city, "i.inspector_id = 101", 9)


def test_hotspots_count_only_the_callers_cases_and_cannot_replace_the_map(city: City) -> None:
    west = header(city, "dispatcher", districts=[WEST])
    r = city.client.get(
        "/analytics/hotspots", params={"layer": "incidents", "res": 9}, headers=west
    )
    assert r.status_code == 200, r.text
    counted = {c["cell"]: c["count"] for c in r.json()["cells"] if c["count"]}
    assert counted == cells_of(city, IN_WEST, 9)
    refresh = city.client.post(
        "/analytics/hotspots/refresh", params={"layer": "incidents", "res": 9}, headers=west
    )
    assert refresh.status_code == 403 and refresh.json()["code"] == "out_of_scope"
    assert city.value("SELECT count(*) FROM hotspot_cells") == 0
    everyone = city.client.post(
        "/analytics/hotspots/refresh",
        params={"layer": "incidents", "res": 9},
        headers=city.key("dispatcher"),
    )
    assert everyone.status_code == 200, everyone.text


def test_kde_uses_only_the_callers_points(city: City) -> None:
    bbox = ",".join(map(str, WHOLE))
    for headers, where in (
        (header(city, "dispatcher", districts=[WEST]), IN_WEST),
        (header(city, "inspector", 104), "i.inspector_id = 104"),
        (city.key("dispatcher"), "true"),
    ):
        r = city.client.get(
            "/analytics/kde",
            params={"layer": "incidents", "bbox": bbox, "cell_m": 500, "bandwidth_m": 500},
            headers=headers,
        )
        assert r.status_code == 200, r.text
        expected = city.value(f"SELECT count(*) FROM incidents i WHERE {where}")
        assert int(r.headers["X-Input-Count"]) == expected, where


def test_time_series_and_period_comparison_keep_to_the_callers_cases(city: City) -> None:
    west = header(city, "dispatcher", districts=[WEST])
    start, middle, end = NOW - timedelta(days=11), NOW - timedelta(days=5), NOW
    day_counts = city.rows(
        "SELECT date_trunc('day', reported_at AT TIME ZONE 'UTC'), count(*) FROM incidents i"
        f" WHERE {IN_WEST} GROUP BY 1"
    )
    r = city.client.get(
        "/analytics/timeseries",
        params={
            "layer": "incidents",
            "interval": "day",
            "from": start.isoformat(),
            "to": end.isoformat(),
        },
        headers=west,
    )
    assert r.status_code == 200, r.text
    got = {b["start"][:10]: b["count"] for b in r.json()["buckets"] if b["count"]}
    assert got == {d.date().isoformat(): n for d, n in day_counts}
    compare = city.client.get(
        "/analytics/timeseries/compare",
        params={
            "layer": "incidents",
            "res": 8,
            "a_from": start.isoformat(),
            "a_to": middle.isoformat(),
            "b_from": middle.isoformat(),
            "b_to": end.isoformat(),
        },
        headers=west,
    )
    assert compare.status_code == 200, compare.text
    body = compare.json()
    period = f"{IN_WEST} AND i.reported_at >= %s AND i.reported_at < %s"
    expected_a = cells_of(city, period, 8, (start, middle))
    expected_b = cells_of(city, period, 8, (middle, end))
    assert {c["cell"]: c["count_a"] for c in body["cells"] if c["count_a"]} == expected_a
    assert {c["cell"]: c["count_b"] for c in body["cells"] if c["count_b"]} == expected_b
    assert body["total_a"] + body["total_b"] == city.value(
        f"SELECT count(*) FROM incidents i WHERE {IN_WEST}"
    )


def test_metrics_keep_to_the_callers_cases(city: City) -> None:
    for headers, where in (
        (header(city, "dispatcher", districts=[WEST]), IN_WEST),
        (header(city, "inspector", 102), "i.inspector_id = 102"),
        (city.key("dispatcher"), "true"),
    ):
        r = city.client.get("/incidents/metrics", params={"group_by": "cell"}, headers=headers)
        assert r.status_code == 200, r.text
        got = {g["key"]: g["reported"] for g in r.json()["groups"]}
        assert {k: n for k, n in got.items() if n} == cells_of(city, where, 10), where


def grid_cells_where(city: City, where: str, params: tuple = ()) -> set[str]:
    rows = city.rows(f"SELECT h3 FROM grid_cells g WHERE {where}", params)
    return {h3.int_to_str(r[0]) for r in rows}


WEST_CELL = "g.district_id = (SELECT id FROM districts WHERE code = '440301')"


def point_of(city: City, where: str) -> tuple[float, float, str]:
    """The centre of the first grid cell where ``where`` holds, and the cell."""
    cell = min(grid_cells_where(city, where))
    lat, lon = h3.cell_to_latlng(cell)
    return lon, lat, cell


def test_lookup_withholds_who_answers_for_a_cell_outside_the_scope(city: City) -> None:
    west = header(city, "dispatcher", districts=[WEST])
    mine = header(city, "inspector", 101)
    everyone = city.key("dispatcher")
    inside = point_of(city, "g.inspector_id = 101")
    outside = point_of(city, "g.inspector_id = 103")
    for headers, (lon, lat, cell), withheld in (
        (west, inside, False),
        (west, outside, True),
        (mine, inside, False),
        (mine, outside, True),
        (everyone, outside, False),
    ):
        r = city.client.get("/grid/lookup", params={"lon": lon, "lat": lat}, headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["cell"] == cell and body["district"] is not None
        if withheld:
            assert body["outside_scope"] is True
            assert body["inspector"] is None and body["supervisor"] is None
        else:
            assert "outside_scope" not in body
            inspector = city.value(
                "SELECT inspector_id FROM grid_cells WHERE h3 = %s", (h3.str_to_int(cell),)
            )
            assert body["inspector"]["id"] == inspector


def test_one_cell_and_its_assignment_are_refused_outside_the_scope(city: City) -> None:
    west = header(city, "dispatcher", districts=[WEST])
    mine = header(city, "inspector", 101)
    *_, own = point_of(city, "g.inspector_id = 101")
    *_, west_other = point_of(city, "g.inspector_id = 102")
    *_, east = point_of(city, "g.inspector_id = 103")
    for headers, cell, code in (
        (west, own, None),
        (west, west_other, None),
        (west, east, "out_of_scope"),
        (mine, own, None),
        (mine, west_other, "not_your_cell"),
        (city.key("dispatcher"), east, None),
    ):
        for path in (f"/grid/cells/{cell}", f"/grid/cells/{cell}/assignment"):
            r = city.client.get(path, headers=headers)
            if code is None:
                assert r.status_code == 200, (path, r.text)
            else:
                assert r.status_code == 403 and r.json()["code"] == code, (path, r.text)
    missing = city.client.get("/grid/cells/8a2a1072b59ffff", headers=west)
    assert missing.status_code == 404


def grid_item_cells(city: City, headers: dict) -> tuple[set[str], int]:
    r = city.client.get("/collections/grid/items", params={"limit": 10_000}, headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    return {f["id"] for f in body["features"]}, body["numberMatched"]


def grid_tile_cells(city: City, headers: dict, z: int = 13) -> set[str]:
    """The cells in the grid tiles covering the whole grid."""
    w, s, e, n = city.rows(
        "SELECT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b) FROM "
        "(SELECT ST_Extent(geom) AS b FROM grid_cells) t"
    )[0]
    _, x0, y0 = tile_of(w, n, z)
    _, x1, y1 = tile_of(e, s, z)
    found: set[str] = set()
    for x in range(x0, x1 + 1):
        for y in range(y0, y1 + 1):
            r = city.client.get(f"/tiles/grid/{z}/{x}/{y}.mvt", headers=headers)
            assert r.status_code in (200, 204), r.text
            if r.status_code == 200:
                layer = mapbox_vector_tile.decode(r.content).get("grid", {})
                found |= {f["properties"]["cell"] for f in layer.get("features", [])}
    return found


def test_grid_features_and_tiles_keep_to_the_callers_cells(city: City) -> None:
    everything = grid_cells_where(city, "true")
    west_cells = grid_cells_where(city, WEST_CELL)
    own = grid_cells_where(city, "g.inspector_id = 101")
    dept = header(city, "editor", departments=["hw"])
    for headers, expected in (
        ({}, everything),  # anonymous: the public grid, as before
        (city.key("dispatcher"), everything),
        (dept, everything),  # cells belong to no department
        (header(city, "dispatcher", districts=[WEST]), west_cells),
        (header(city, "inspector", 101), own),
    ):
        assert grid_item_cells(city, headers) == (expected, len(expected))
        assert grid_tile_cells(city, headers) == expected
        lat, lon = h3.cell_to_latlng(centre_cell())
        within = city.client.get(
            "/query/within",
            params={"layer": "grid", "lon": lon, "lat": lat, "radius_m": 5000},
            headers=headers,
        )
        assert within.status_code == 200, within.text
        assert {f["id"] for f in within.json()["features"]} == expected
    assert west_cells != everything and own < west_cells
    west = header(city, "dispatcher", districts=[WEST])
    east_cell = min(everything - west_cells)
    assert city.client.get(f"/collections/grid/items/{east_cell}", headers=west).status_code == 404
    assert city.client.get(f"/collections/grid/items/{east_cell}").status_code == 200


def test_coverage_keeps_to_the_callers_districts(city: City) -> None:
    per_inspector = city.rows(
        f"SELECT g.inspector_id, count(*) FROM grid_cells g WHERE {WEST_CELL} "
        "AND g.inspector_id IS NOT NULL GROUP BY 1"
    )
    west = header(city, "dispatcher", districts=[WEST])
    for headers, where, expected in (
        (west, WEST_CELL, dict(per_inspector)),
        (city.key("dispatcher"), "true", None),
    ):
        r = city.client.get("/grid/coverage", headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["total_cells"] == city.value(f"SELECT count(*) FROM grid_cells g WHERE {where}")
        if expected is not None:
            assert {i["id"]: i["cells"] for i in body["inspectors"]} == expected
    assert set(dict(per_inspector)) == {101, 102}
