"""Assignments (one cell, a list, a polygon) with history and change notices; reading cells;
coverage and workload balance, each checked against SQL or the h3 package."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import h3
import mapbox_vector_tile
import orjson
import psycopg
import pytest
import shapely

from layers.catalog.changes import CHANNEL
from layers.grid.build import build_from
from tests.helpers import GridCity

BOX = (114.00, 22.50, 114.04, 22.53)


@pytest.fixture(scope="module")
def city(grid_city) -> Iterator[GridCity]:
    with grid_city("cityhex_grid_assign") as c:
        c.district = c.add_district("440303", "Luohu", shapely.box(113.9, 22.4, 114.2, 22.7))
        c.inspectors = c.add_users(3)
        c.supervisor = c.add_users(1, "supervisor", c.district)[0]
        build_from(c.url, shapely.box(*BOX), 9, "test")
        yield c


def cell_at(lon: float, lat: float) -> str:
    return h3.latlng_to_cell(lat, lon, 9)


def history_count(city: GridCity) -> int:
    return city.value("SELECT count(*) FROM grid_assignments")


def test_put_assignment_records_history_and_announces_change(city: GridCity) -> None:
    cell = cell_at(114.01, 22.51)
    inspector = city.inspectors[0]
    with psycopg.connect(city.url, autocommit=True) as listener:
        listener.execute(f"LISTEN {CHANNEL}")
        r = city.client.put(
            f"/grid/cells/{cell}/assignment",
            json={"inspector_id": inspector, "note": "new patrol"},
            headers=city.key("dispatcher"),
        )
        assert r.status_code == 200, r.text
        notices = [orjson.loads(n.payload) for n in listener.notifies(timeout=2, stop_after=1)]
    assert notices and notices[0]["layer"] == "grid"
    w, s, e, n = notices[0]["bboxes"][0]
    lat, lon = h3.cell_to_latlng(cell)
    assert w <= lon <= e and s <= lat <= n
    body = r.json()
    assert body["changed"] is True
    assert body["inspector"]["id"] == inspector
    assert body["supervisor"] == "440303"
    last = body["history"][0]
    assert last["from"] == {"inspector_id": None, "supervisor": "440303"}
    assert last["to"] == {"inspector_id": inspector, "supervisor": "440303"}
    assert last["actor"].startswith("dispatcher") and last["note"] == "new patrol"
    stored = city.value("SELECT inspector_id FROM grid_cells WHERE h3 = %s", (h3.str_to_int(cell),))
    assert stored == inspector

    again = city.client.put(
        f"/grid/cells/{cell}/assignment",
        json={"inspector_id": inspector},
        headers=city.key("dispatcher"),
    )
    assert again.json()["changed"] is False
    assert len(again.json()["history"]) == 1

    second = city.inspectors[1]
    r = city.client.put(
        f"/grid/cells/{cell}/assignment", json={"inspector_id": second}, headers=city.key("admin")
    )
    hist = city.client.get(f"/grid/cells/{cell}/assignment", headers=city.key("inspector"))
    entries = hist.json()["history"]
    assert [(h["from"]["inspector_id"], h["to"]["inspector_id"]) for h in entries] == [
        (inspector, second),
        (None, inspector),
    ]
    freed = city.client.put(
        f"/grid/cells/{cell}/assignment",
        json={"inspector_id": None},
        headers=city.key("dispatcher"),
    )
    assert freed.json()["inspector"] is None


def test_bulk_assignment_by_list(city: GridCity) -> None:
    cells = [cell_at(114.005 + 0.004 * k, 22.505) for k in range(5)]
    before = history_count(city)
    r = city.client.post(
        "/grid/assignments",
        json={"cells": cells, "inspector_id": city.inspectors[2]},
        headers=city.key("dispatcher"),
    )
    assert r.status_code == 200, r.text
    assert r.json()["changed"] == len(set(cells))
    rows = city.rows(
        "SELECT h3, inspector_id FROM grid_cells WHERE h3 = ANY(%s)",
        ([h3.str_to_int(c) for c in cells],),
    )
    assert {h3.int_to_str(c): i for c, i in rows} == dict.fromkeys(cells, city.inspectors[2])
    assert history_count(city) == before + len(set(cells))


def test_bulk_assignment_by_polygon_takes_cells_centred_inside(city: GridCity) -> None:
    polygon = shapely.Polygon([(114.02, 22.515), (114.035, 22.515), (114.03, 22.528)])
    grid = city.grid()
    expected = {c for c in grid if polygon.contains(shapely.Point(h3.cell_to_latlng(c)[::-1]))}
    assert len(expected) > 3
    r = city.client.post(
        "/grid/assignments",
        json={
            "polygon": shapely.geometry.mapping(polygon),
            "inspector_id": city.inspectors[1],
            "supervisor": "440303",
        },
        headers=city.key("dispatcher"),
    )
    assert r.status_code == 200, r.text
    grid = city.grid()
    assert {c for c, i in grid.items() if i == city.inspectors[1]} >= expected
    assert set(r.json()["cells"]) <= expected


def snapshot(city: GridCity) -> tuple:
    return (
        sorted(city.rows("SELECT h3, inspector_id, supervisor FROM grid_cells")),
        history_count(city),
    )


OUTSIDE = h3.latlng_to_cell(22.7, 114.3, 9)


def bad_assignments(city: GridCity) -> list[tuple[str, str, dict, int, str]]:
    inside = cell_at(114.01, 22.52)
    return [
        ("put", "zzz", {"inspector_id": city.inspectors[0]}, 400, "invalid_cell"),
        ("put", OUTSIDE, {"inspector_id": city.inspectors[0]}, 404, "cell_not_in_grid"),
        ("put", inside, {"inspector_id": 999_999}, 422, "unknown_inspector"),
        ("put", inside, {"inspector_id": city.supervisor}, 422, "not_an_inspector"),
        ("put", inside, {"inspector_id": "x"}, 400, "invalid_parameter"),
        ("put", inside, {"supervisor": "999999"}, 422, "unknown_district"),
        (
            "put",
            inside,
            {"supervisor": h3.latlng_to_cell(22.7, 114.3, 5)},
            422,
            "supervisor_area_mismatch",
        ),
        ("put", inside, {"supervisor": "not-a-cell"}, 400, "invalid_cell"),
        ("put", inside, {}, 422, "nothing_to_assign"),
        ("put", inside, {"inspector_id": 1, "colour": "red"}, 400, "invalid_parameter"),
        (
            "post",
            "",
            {"cells": [inside, OUTSIDE], "inspector_id": city.inspectors[0]},
            422,
            "cell_not_in_grid",
        ),
        (
            "post",
            "",
            {"cells": [inside, "bad"], "inspector_id": city.inspectors[0]},
            400,
            "invalid_cell",
        ),
        ("post", "", {"inspector_id": city.inspectors[0]}, 400, "invalid_selection"),
        ("post", "", {"cells": [], "inspector_id": city.inspectors[0]}, 422, "no_cells"),
        (
            "post",
            "",
            {
                "polygon": {"type": "Point", "coordinates": [114, 22]},
                "inspector_id": city.inspectors[0],
            },
            400,
            "invalid_boundary",
        ),
    ]


def test_bad_assignments_are_refused_and_write_nothing(city: GridCity) -> None:
    key = city.key("dispatcher")
    for method, cell, body, status, code in bad_assignments(city):
        before = snapshot(city)
        if method == "put":
            r = city.client.put(f"/grid/cells/{cell}/assignment", json=body, headers=key)
        else:
            r = city.client.post("/grid/assignments", json=body, headers=key)
        assert (r.status_code, r.json()["code"]) == (status, code), (body, r.text)
        assert snapshot(city) == before


def test_assignment_roles(city: GridCity) -> None:
    cell = cell_at(114.01, 22.52)
    body = {"inspector_id": city.inspectors[0]}
    path = f"/grid/cells/{cell}/assignment"
    assert city.client.put(path, json=body).status_code == 401
    for role in ("app", "inspector", "editor"):
        assert city.client.put(path, json=body, headers=city.key(role)).status_code == 403
    assert city.client.get(path, headers=city.key("app")).status_code == 403


def test_cells_list_filters_and_pages(city: GridCity) -> None:
    key = city.key("app")
    total = city.value("SELECT count(*) FROM grid_cells")
    seen: list[str] = []
    offset = 0
    while True:
        page = city.client.get(
            "/grid/cells", params={"limit": 50, "offset": offset}, headers=key
        ).json()
        assert page["total"] == total
        seen += [c["cell"] for c in page["cells"]]
        if len(page["cells"]) < 50:
            break
        offset += 50
    assert sorted(seen, key=h3.str_to_int) == seen
    assert set(seen) == set(city.grid())
    mine = city.client.get(
        "/grid/cells", params={"inspector_id": city.inspectors[2], "limit": 1000}, headers=key
    ).json()
    expected = {c for c, i in city.grid().items() if i == city.inspectors[2]}
    assert {c["cell"] for c in mine["cells"]} == expected
    free = city.client.get(
        "/grid/cells", params={"unassigned": True, "limit": 1}, headers=key
    ).json()
    assert free["total"] == sum(1 for i in city.grid().values() if i is None)
    boxed = city.client.get(
        "/grid/cells", params={"bbox": "114.0,22.5,114.01,22.51", "limit": 1000}, headers=key
    ).json()
    box = shapely.box(114.0, 22.5, 114.01, 22.51)
    for item in boxed["cells"]:
        assert shapely.Polygon([(x, y) for y, x in h3.cell_to_boundary(item["cell"])]).intersects(
            box
        )
    assert (
        city.client.get("/grid/cells", params={"bbox": "1,2"}, headers=key).json()["code"]
        == "invalid_bbox"
    )
    assert city.client.get("/grid/cells", params={"limit": 0}, headers=key).status_code == 400


def test_cell_feature(city: GridCity) -> None:
    cell = cell_at(114.02, 22.52)
    r = city.client.get(f"/grid/cells/{cell}", headers=city.key("inspector"))
    assert r.status_code == 200
    feature = r.json()
    assert feature["id"] == cell and feature["type"] == "Feature"
    ring = feature["geometry"]["coordinates"][0]
    expected = [(lng, lat) for lat, lng in h3.cell_to_boundary(cell)]
    assert shapely.Polygon(ring).equals_exact(shapely.Polygon(expected), 1e-9)
    assert feature["properties"]["area_m2"] == pytest.approx(h3.cell_area(cell, "m^2"))
    assert feature["properties"]["district"] == {"code": "440303", "name": "Luohu"}
    assert city.client.get("/grid/cells/abc", headers=city.key("app")).status_code == 400
    r = city.client.get(f"/grid/cells/{OUTSIDE}", headers=city.key("app"))
    assert (r.status_code, r.json()["code"]) == (404, "cell_not_in_grid")


def test_coverage_counts_and_balance(city: GridCity) -> None:
    city.execute(
        "UPDATE grid_cells SET properties = jsonb_build_object('population', (h3 % 97) + 3)"
    )
    r = city.client.get(
        "/grid/coverage",
        params={"weight": "property:population", "limit": 5},
        headers=city.key("dispatcher"),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    rows = city.rows("SELECT h3, inspector_id FROM grid_cells")
    free = sorted(c for c, i in rows if i is None)
    assert body["total_cells"] == len(rows)
    assert body["unassigned_cells"] == len(free)
    assert body["unassigned"] == [h3.int_to_str(c) for c in free[:5]]
    per: dict[int, list[int]] = {}
    for c, i in rows:
        if i is not None:
            per.setdefault(i, []).append(c % 97 + 3)
    got = {p["id"]: (p["cells"], p["workload"]) for p in body["inspectors"]}
    assert got == {i: (len(v), float(sum(v))) for i, v in per.items()}
    loads = [sum(v) for v in per.values()]
    assert body["balance"] == pytest.approx(max(loads) / (sum(loads) / len(loads)))
    area = city.client.get(
        "/grid/coverage", params={"weight": "area"}, headers=city.key("dispatcher")
    ).json()
    expected_area = {
        i: sum(h3.cell_area(h3.int_to_str(c), "m^2") for c, j in rows if j == i) for i in per
    }
    assert {p["id"]: p["workload"] for p in area["inspectors"]} == pytest.approx(expected_area)


def test_coverage_by_incidents_and_assets_over_a_period(city: GridCity) -> None:
    cell = cell_at(114.01, 22.51)
    inspector = city.inspectors[0]
    city.execute(
        "UPDATE grid_cells SET inspector_id = %s WHERE h3 = %s", (inspector, h3.str_to_int(cell))
    )
    lat, lon = h3.cell_to_latlng(cell)
    fine = h3.str_to_int(h3.latlng_to_cell(lat, lon, 10))
    for when in ("2025-03-01", "2025-03-02", "2025-06-01"):
        city.execute(
            "INSERT INTO incidents (category_code, status, reported_at, h3, geom) VALUES "
            "('0102', 'reported', %s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326))",
            (when, fine, lon, lat),
        )
    city.execute(
        "INSERT INTO assets (code, class_code, kind, h3, geom) VALUES "
        "('4403030101000001', '0101', 'lamp', %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326))",
        (fine, lon, lat),
    )
    key = city.key("dispatcher")
    march = city.client.get(
        "/grid/coverage",
        params={
            "weight": "incidents",
            "from": "2025-03-01T00:00:00Z",
            "to": "2025-04-01T00:00:00Z",
        },
        headers=key,
    ).json()
    loads = {p["id"]: p["workload"] for p in march["inspectors"]}
    assert loads[inspector] == 2.0
    assert sum(loads.values()) == 2.0
    assets = city.client.get("/grid/coverage", params={"weight": "assets"}, headers=key).json()
    assert {p["id"]: p["workload"] for p in assets["inspectors"]}[inspector] == 1.0
    for params in (
        {"weight": "people"},
        {"weight": "property:bad name"},
        {"weight": "incidents", "from": "2025-05-01", "to": "2025-04-01"},
        {"weight": "incidents", "from": "yesterday"},
    ):
        r = city.client.get("/grid/coverage", params=params, headers=key)
        assert r.status_code == 400, params
    assert city.client.get("/grid/coverage", headers=city.key("inspector")).status_code == 403


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    """The XYZ tile holding a point."""
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def test_grid_tiles_show_the_new_inspector_after_an_assignment(city: GridCity) -> None:
    lon, lat = 114.035, 22.525
    cell = cell_at(lon, lat)
    x, y = tile_of(lon, lat, 15)
    key = city.key("app")

    def tile_inspector() -> int | None:
        r = city.client.get(f"/tiles/grid/15/{x}/{y}.mvt", headers=key)
        features = mapbox_vector_tile.decode(r.content)["grid"]["features"]
        found = {f["id"]: f["properties"].get("inspector_id") for f in features}
        return found[h3.str_to_int(cell)]

    before = tile_inspector()
    assert tile_inspector() == before
    target = next(i for i in city.inspectors if i != before)
    r = city.client.put(
        f"/grid/cells/{cell}/assignment",
        json={"inspector_id": target},
        headers=city.key("dispatcher"),
    )
    assert r.status_code == 200
    deadline = time.monotonic() + 5
    while tile_inspector() != target:
        assert time.monotonic() < deadline, "the grid tile still shows the old inspector"
        time.sleep(0.05)
