"""/grid/lookup: the cell of 10,000 random points equals h3.latlng_to_cell, with who answers
for it; outside the grid is 404; bad points and unknown categories are 400."""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import h3
import httpx
import psycopg
import pytest
import shapely

from layers.db.embedded import EmbeddedCluster, free_port
from layers.db.keys import create_key
from layers.db.migrate import migrate
from layers.grid.build import build_from
from tests.helpers import GridCity, hex_polygon, running_server

WEST, SOUTH, EAST, NORTH = 113.90, 22.50, 114.10, 22.60


@pytest.fixture(scope="module")
def city(grid_city) -> Iterator[GridCity]:
    with grid_city("cityhex_grid_lookup") as c:
        west = c.add_district("440301", "West", shapely.box(113.8, 22.4, 114.0, 22.7))
        east = c.add_district("440302", "East", shapely.box(114.0, 22.4, 114.2, 22.7))
        c.add_users(1, "supervisor", west)
        c.add_users(1, "supervisor", east)
        c.inspectors = c.add_users(3)
        build_from(c.url, shapely.box(WEST, SOUTH, EAST, NORTH), 8, "test")
        for k, inspector in enumerate(c.inspectors):
            c.execute("UPDATE grid_cells SET inspector_id = %s WHERE h3 %% 3 = %s", (inspector, k))
        yield c


def expected_inspector(city: GridCity, cell: str) -> int:
    """The inspector the fixture gave the cell: by the cell number modulo 3."""
    return city.inspectors[h3.str_to_int(cell) % 3]


def expected_district(cell: str) -> str:
    """The district holding most of the cell: West of 114.0°E or East of it."""
    poly = hex_polygon(cell)
    west = poly.intersection(shapely.box(113.8, 22.4, 114.0, 22.7)).area
    return "440301" if west > poly.area / 2 else "440302"


def test_lookup_equals_h3_for_10000_random_points(city: GridCity) -> None:
    rng = random.Random(5)
    key = city.key("app")
    get = city.client.get
    for _ in range(10_000):
        lon, lat = rng.uniform(WEST, EAST), rng.uniform(SOUTH, NORTH)
        r = get("/grid/lookup", params={"lon": lon, "lat": lat}, headers=key)
        assert r.status_code == 200, r.text
        body = r.json()
        cell = h3.latlng_to_cell(lat, lon, 8)
        assert body["cell"] == cell
        assert body["res"] == 8
        assert body["inspector"]["id"] == expected_inspector(city, cell)
        assert body["district"]["code"] == expected_district(cell)


def test_lookup_at_res_10(grid_city) -> None:
    with grid_city("cityhex_grid_lookup10") as c:
        build_from(c.url, shapely.box(114.0, 22.5, 114.02, 22.52), 10, "test")
        rng = random.Random(9)
        key = c.key("inspector")
        for _ in range(1000):
            lon, lat = rng.uniform(114.0, 114.02), rng.uniform(22.5, 22.52)
            r = c.client.get("/grid/lookup", params={"lon": lon, "lat": lat}, headers=key)
            assert r.status_code == 200, r.text
            assert r.json()["cell"] == h3.latlng_to_cell(lat, lon, 10)
            assert r.json()["district"] is None


def test_outside_the_grid_is_404_saying_so(city: GridCity) -> None:
    r = city.client.get(
        "/grid/lookup", params={"lon": 114.3, "lat": 22.55}, headers=city.key("app")
    )
    assert r.status_code == 404
    body = r.json()
    assert body["code"] == "outside_grid"
    assert "outside the grid" in body["message"]


def test_answer_names_district_inspector_supervisor_but_no_phone(city: GridCity) -> None:
    r = city.client.get(
        "/grid/lookup", params={"lon": 113.95, "lat": 22.55}, headers=city.key("inspector")
    )
    body = r.json()
    cell = h3.latlng_to_cell(22.55, 113.95, 8)
    name = city.value("SELECT name FROM users WHERE id = %s", (expected_inspector(city, cell),))
    assert body["inspector"] == {"id": expected_inspector(city, cell), "name": name}
    assert body["district"] == {"code": "440301", "name": "West"}
    supervisor = city.rows(
        "SELECT u.id, u.name FROM users u JOIN districts d ON d.id = u.district_id "
        "WHERE u.role = 'supervisor' AND d.code = '440301'"
    )[0]
    assert body["supervisor"] == {
        "area": "440301",
        "kind": "district",
        "name": "West",
        "supervisor": {"id": supervisor[0], "name": supervisor[1]},
    }
    assert "+86" not in r.text and "phone" not in r.text
    assert "department" not in body


def test_supervisor_area_as_parent_cell(city: GridCity) -> None:
    cell = h3.latlng_to_cell(22.58, 114.05, 8)
    parent = h3.cell_to_parent(cell, 6)
    r = city.client.put(
        f"/grid/cells/{cell}/assignment",
        json={"supervisor": parent},
        headers=city.key("dispatcher"),
    )
    assert r.status_code == 200, r.text
    body = city.client.get(
        "/grid/lookup", params={"lon": 114.05, "lat": 22.58}, headers=city.key("app")
    ).json()
    assert body["supervisor"] == {"area": parent, "kind": "cell", "res": 6}


def test_category_gives_department_with_district_override(city: GridCity) -> None:
    default = city.rows(
        "SELECT d.id, d.code, d.name FROM incident_categories c "
        "JOIN departments d ON d.id = c.department_id WHERE c.code = '0102'"
    )[0]
    other = city.rows("SELECT id, code, name FROM departments WHERE code = 'cgj'")[0]
    key = city.key("app")
    west_point = {"lon": 113.95, "lat": 22.55, "category": "0102"}
    east_point = {"lon": 114.05, "lat": 22.55, "category": "0102"}
    for point in (west_point, east_point):
        body = city.client.get("/grid/lookup", params=point, headers=key).json()
        assert (body["department"]["id"], body["department"]["code"]) == default[:2]
        assert body["category"] == "0102"
    r = city.client.put(
        "/grid/category-departments/0102/440302",
        json={"department": "cgj"},
        headers=city.key("dispatcher"),
    )
    assert r.status_code == 200, r.text
    try:
        east = city.client.get("/grid/lookup", params=east_point, headers=key).json()
        west = city.client.get("/grid/lookup", params=west_point, headers=key).json()
        assert east["department"] == {"id": other[0], "code": other[1], "name": other[2]}
        assert west["department"]["id"] == default[0]
        listed = city.client.get("/grid/category-departments", headers=key).json()
        assert [
            (o["category"], o["district"]["code"], o["department"]["code"]) for o in listed
        ] == [("0102", "440302", "cgj")]
    finally:
        r = city.client.delete(
            "/grid/category-departments/0102/440302", headers=city.key("dispatcher")
        )
        assert r.status_code == 204
    east = city.client.get("/grid/lookup", params=east_point, headers=key).json()
    assert east["department"]["id"] == default[0]


BAD_POINTS = [
    ({"lon": 200, "lat": 22.55}, "invalid_lon"),
    ({"lon": 113.95, "lat": -91}, "invalid_lat"),
    ({"lon": "east", "lat": 22.55}, "invalid_parameter"),
    ({"lon": 113.95}, "invalid_parameter"),
    ({"lon": "nan", "lat": 22.55}, "invalid_lon"),
    ({"lon": 113.95, "lat": "inf"}, "invalid_lat"),
    ({"lon": 113.95, "lat": 22.55, "category": "9999"}, "unknown_category"),
    ({"lon": 113.95, "lat": 22.55, "category": "abc"}, "unknown_category"),
    ({"lon": 114.3, "lat": 22.55, "category": "9999"}, "unknown_category"),
]


@pytest.mark.parametrize(("params", "code"), BAD_POINTS)
def test_bad_lookup_is_400(city: GridCity, params: dict, code: str) -> None:
    r = city.client.get("/grid/lookup", params=params, headers=city.key("app"))
    assert r.status_code == 400, r.text
    assert r.json()["code"] == code


def test_lookup_roles(city: GridCity) -> None:
    point = {"lon": 113.95, "lat": 22.55}
    assert city.client.get("/grid/lookup", params=point).status_code == 401
    for role in ("app", "inspector", "editor", "dispatcher", "admin"):
        r = city.client.get("/grid/lookup", params=point, headers=city.key(role))
        assert r.status_code == 200, role


def test_category_routing_changes_need_dispatcher(city: GridCity) -> None:
    body = {"department": "cgj"}
    path = "/grid/category-departments/0102/440302"
    assert city.client.put(path, json=body, headers=city.key("inspector")).status_code == 403
    assert (
        city.client.put(
            "/grid/category-departments/0102/999999", json=body, headers=city.key("dispatcher")
        ).json()["code"]
        == "unknown_district"
    )
    r = city.client.put(path, json={"department": "nope"}, headers=city.key("dispatcher"))
    assert (r.status_code, r.json()["code"]) == (422, "unknown_department")
    r = city.client.delete(path, headers=city.key("dispatcher"))
    assert (r.status_code, r.json()["code"]) == (404, "no_override")
    assert city.value("SELECT count(*) FROM category_departments") == 0


@pytest.mark.subprocess
def test_lookup_is_503_while_the_database_is_down_and_recovers() -> None:
    home = Path(tempfile.mkdtemp(prefix="cityhex-grid-outage-", dir="/tmp"))
    home.chmod(0o755)
    cluster = EmbeddedCluster(home, port=free_port())
    try:
        url = cluster.start()
        migrate(url)
        build_from(url, shapely.box(114.0, 22.5, 114.02, 22.52), 8, "test")
        with psycopg.connect(url, autocommit=True) as conn:
            key = {"Authorization": f"Bearer {create_key(conn, 'app')}"}
        point = {"lon": 114.01, "lat": 22.51}
        with running_server(url) as base:
            assert httpx.get(base + "/grid/lookup", params=point, headers=key).status_code == 200
            cluster.stop()
            down = httpx.get(base + "/grid/lookup", params=point, headers=key, timeout=10)
            assert (down.status_code, down.json()["code"]) == (503, "database_unavailable")
            cluster.start()
            deadline = time.monotonic() + 20
            while (
                r := httpx.get(base + "/grid/lookup", params=point, headers=key)
            ).status_code != 200:
                assert r.status_code == 503, r.text
                assert time.monotonic() < deadline, "lookups did not recover"
                time.sleep(0.2)
            assert r.json()["cell"] == h3.latlng_to_cell(22.51, 114.01, 8)
    finally:
        cluster.stop()
        shutil.rmtree(home, ignore_errors=True)
