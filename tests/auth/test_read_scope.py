"""A caller's scope narrows every read path of the cases, as it narrows /incidents: the
incidents layer's OGC Features items, incident tiles (raw and aggregated), /events and the
Open311 reads; an inspector key reads its own cases only.

The incident city has two districts (440301 west, 440302 east of 114.05) and cases in both,
each routed to the inspector of its cell. What each path answers a scoped caller is compared
with the case ids SQL finds for that district or inspector; the same request by an unscoped
key must return every case (so the narrowing is what removes the others).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import httpx
import mapbox_vector_tile
import psycopg
import pytest
from fastapi.testclient import TestClient

from layers.db.keys import create_key
from layers.db.scope import Scope
from tests.helpers import City, running_server, tile_of
from tests.incidents.conftest import build_city

WEST, EAST = "440301", "440302"
WEST_POINTS = [(114.04, 22.535), (114.045, 22.545), (114.042, 22.541)]
EAST_POINTS = [(114.058, 22.535), (114.055, 22.545)]


@pytest.fixture(scope="module")
def city(new_database) -> Iterator[City]:
    """The incident city with five cases, served in process."""
    from spatial_api.app import create_app

    url = new_database("cityhex_read_scope")
    build_city(url)
    with TestClient(create_app(url)) as client:
        town = City(url, client)
        app = town.key("app")
        for lon, lat in WEST_POINTS + EAST_POINTS:
            body = {"category": "0102", "lon": lon, "lat": lat}
            assert client.post("/incidents", json=body, headers=app).status_code == 201
        yield town


def header(city: City, role: str, user: int | None = None, **scope: list[str]) -> dict:
    with psycopg.connect(city.url, autocommit=True) as conn:
        key = create_key(conn, role, f"scoped-{role}", user, Scope.of(**scope))
    return {"Authorization": f"Bearer {key}"}


def district_cases(city: City, code: str) -> set[int]:
    rows = city.rows(
        "SELECT i.id FROM incidents i JOIN districts d ON d.id = i.district_id WHERE d.code = %s",
        (code,),
    )
    return {r[0] for r in rows}


def all_cases(city: City) -> set[int]:
    return {r[0] for r in city.rows("SELECT id FROM incidents")}


def item_ids(city: City, headers: dict) -> tuple[set[int], int]:
    r = city.client.get("/collections/incidents/items", params={"limit": 1000}, headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    return {f["id"] for f in body["features"]}, body["numberMatched"]


def test_features_items_keep_to_the_callers_districts(city: City) -> None:
    west = header(city, "dispatcher", districts=[WEST])
    expected = district_cases(city, WEST)
    assert expected and expected != all_cases(city)
    assert item_ids(city, west) == (expected, len(expected))
    assert item_ids(city, city.key("dispatcher")) == (all_cases(city), len(all_cases(city)))
    # one case: 404 outside the scope, as if it did not exist
    (east_case, *_) = district_cases(city, EAST)
    assert (
        city.client.get(f"/collections/incidents/items/{east_case}", headers=west).status_code
        == 404
    )
    (west_case, *_) = expected
    assert (
        city.client.get(f"/collections/incidents/items/{west_case}", headers=west).status_code
        == 200
    )
    # a token made from the key carries the scope
    token = city.client.post("/auth/token", headers=west).json()["access_token"]
    assert item_ids(city, {"Authorization": f"Bearer {token}"})[0] == expected


def test_departments_and_inspectors_keep_to_their_cases(city: City) -> None:
    by_dept = city.rows(
        "SELECT d.code, array_agg(i.id) FROM incidents i JOIN departments d "
        "ON d.id = i.department_id GROUP BY d.code"
    )
    code, ids = by_dept[0]
    assert item_ids(city, header(city, "editor", departments=[code]))[0] == set(ids)
    inspector, mine = city.rows(
        "SELECT inspector_id, array_agg(id) FROM incidents WHERE inspector_id IS NOT NULL "
        "GROUP BY inspector_id ORDER BY count(*) DESC LIMIT 1"
    )[0]
    assert set(mine) != all_cases(city)
    assert item_ids(city, header(city, "inspector", inspector))[0] == set(mine)


def test_spatial_queries_keep_to_the_callers_scope(city: City) -> None:
    west = header(city, "dispatcher", districts=[WEST])
    lon, lat = EAST_POINTS[0]
    for headers, expected in (
        (west, district_cases(city, WEST)),
        (city.key("app"), all_cases(city)),
    ):
        near = city.client.get(
            "/query/nearest",
            params={"layer": "incidents", "lon": lon, "lat": lat, "k": 100},
            headers=headers,
        )
        assert near.status_code == 200, near.text
        assert {f["id"] for f in near.json()["features"]} == expected
        area = {
            "type": "Polygon",
            "coordinates": [
                [[114.0, 22.5], [114.1, 22.5], [114.1, 22.6], [114.0, 22.6], [114.0, 22.5]]
            ],
        }
        hit = city.client.post(
            "/query/intersects", json={"layers": ["incidents"], "geometry": area}, headers=headers
        )
        assert hit.status_code == 200, hit.text
        assert {f["id"] for f in hit.json()["layers"]["incidents"]["features"]} == expected


def tile_ids(city: City, headers: dict, z: int, layer: str = "incidents") -> set[int]:
    """The feature ids of the incidents layer over the tiles holding every case point."""
    found: set[int] = set()
    for _, x, y in {tile_of(lon, lat, z) for lon, lat in WEST_POINTS + EAST_POINTS}:
        r = city.client.get(f"/tiles/{layer}/{z}/{x}/{y}.mvt", headers=headers)
        assert r.status_code in (200, 204), r.text
        if r.status_code == 200:
            decoded = mapbox_vector_tile.decode(r.content)
            found |= {f["id"] for f in decoded.get(layer, {}).get("features", [])}
    return found


def hex_count(city: City, headers: dict, z: int) -> int:
    """The cases counted by the incidents_hex aggregate over the tiles holding them."""
    total = 0
    for _, x, y in {tile_of(lon, lat, z) for lon, lat in WEST_POINTS + EAST_POINTS}:
        r = city.client.get(f"/tiles/incidents_hex/{z}/{x}/{y}.mvt", headers=headers)
        if r.status_code == 200:
            layer = mapbox_vector_tile.decode(r.content).get("incidents_hex", {})
            total += sum(f["properties"]["count"] for f in layer.get("features", []))
    return total


def test_incident_tiles_keep_to_the_callers_scope(city: City) -> None:
    west = header(city, "dispatcher", districts=[WEST])
    everyone = city.key("dispatcher")
    # the unscoped key first, so a shared cache would hand its tile on
    assert tile_ids(city, everyone, 15) == all_cases(city)
    assert tile_ids(city, west, 15) == district_cases(city, WEST)
    token = city.client.post("/auth/token", headers=west).json()["access_token"]
    _, x, y = tile_of(*WEST_POINTS[0], 15)
    by_query = city.client.get(f"/tiles/incidents/15/{x}/{y}.mvt", params={"access_token": token})
    assert by_query.status_code == 200
    ids = {f["id"] for f in mapbox_vector_tile.decode(by_query.content)["incidents"]["features"]}
    assert ids and ids <= district_cases(city, WEST)
    z = 12
    assert hex_count(city, everyone, z) == len(all_cases(city))
    assert hex_count(city, west, z) == len(district_cases(city, WEST))


def test_open311_reads_keep_to_a_keyed_callers_scope(city: City) -> None:
    west = header(city, "dispatcher", districts=[WEST])
    r = city.client.get("/open311/v2/requests.json", headers=west)
    assert r.status_code == 200, r.text
    assert {int(s["service_request_id"]) for s in r.json()} == district_cases(city, WEST)
    everyone = city.client.get("/open311/v2/requests.json", headers=city.key("dispatcher"))
    assert {int(s["service_request_id"]) for s in everyone.json()} == all_cases(city)
    (east_case, *_) = district_cases(city, EAST)
    one = city.client.get(f"/open311/v2/requests/{east_case}.json", headers=west)
    assert one.status_code == 404


def read_events(url: str, params: dict, headers: dict, out: list, live: threading.Event,
                after_live: int) -> None:  # fmt: skip
    """Collect /events messages: the replayed ones, then ``after_live`` live ones."""
    with httpx.stream("GET", url, params=params, headers=headers, timeout=30) as response:
        assert response.status_code == 200, response.read()
        message: dict = {}
        for line in response.iter_lines():
            if line.startswith(": live"):
                live.set()
                continue
            if not line:
                if "data" in message:
                    out.append(json.loads(message["data"]))
                    if live.is_set():
                        after_live -= 1
                        if after_live == 0:
                            return
                message = {}
                continue
            name, _, value = line.partition(":")
            message[name] = value.strip()


@pytest.mark.subprocess
def test_events_keep_to_the_callers_scope(city: City) -> None:
    west = header(city, "dispatcher", districts=[WEST])
    token = city.client.post("/auth/token", headers=west).json()["access_token"]
    app = city.key("app")
    with running_server(city.url) as base:
        got: list = []
        live = threading.Event()
        params = {"access_token": token}
        replay = {"Last-Event-ID": "0"}
        reader = threading.Thread(
            target=read_events, args=(f"{base}/events", params, replay, got, live, 1)
        )
        reader.start()
        assert live.wait(15)
        replayed = {e["incident_id"] for e in got}
        assert replayed == district_cases(city, WEST)
        # live: an east case then a west one; only the west one reaches the west dispatcher
        for lon, lat in (EAST_POINTS[0], WEST_POINTS[0]):
            body = {"category": "0102", "lon": lon, "lat": lat}
            assert httpx.post(f"{base}/incidents", json=body, headers=app).status_code == 201
        reader.join(20)
        assert not reader.is_alive()
        newest_west = max(district_cases(city, WEST))
        assert [e["incident_id"] for e in got[len(replayed) :]] == [newest_west]
        # the access_token of a key, or on another path, gives nothing
        assert httpx.get(f"{base}/events", params={"access_token": token[:-2]}).status_code == 401


def listed_cells(city: City, headers: dict, **params: object) -> set[str]:
    r = city.client.get("/grid/cells", params={"limit": 10_000, **params}, headers=headers)
    assert r.status_code == 200, r.text
    return {c["cell"] for c in r.json()["cells"]}


def sql_cells(city: City, where: str, params: tuple = ()) -> set[str]:
    rows = city.rows(f"SELECT lpad(to_hex(h3), 15, '0') FROM grid_cells g WHERE {where}", params)
    return {r[0] for r in rows}


def test_grid_cells_keep_to_an_inspectors_cells_and_a_scopes_districts(city: City) -> None:
    inspector = 101
    own = sql_cells(city, "inspector_id = %s", (inspector,))
    assert own and own != sql_cells(city, "true")
    mine = header(city, "inspector", inspector)
    assert listed_cells(city, mine) == own
    assert listed_cells(city, mine, inspector_id=inspector) == own
    other = city.client.get("/grid/cells", params={"inspector_id": 103}, headers=mine)
    assert other.status_code == 403 and other.json()["code"] == "not_your_cell"
    west = header(city, "dispatcher", districts=[WEST])
    west_cells = sql_cells(
        city, "district_id = (SELECT id FROM districts WHERE code = %s)", (WEST,)
    )
    assert listed_cells(city, west) == west_cells
    assert listed_cells(city, west, district=EAST) == set()
    assert listed_cells(city, city.key("dispatcher")) == sql_cells(city, "true")
