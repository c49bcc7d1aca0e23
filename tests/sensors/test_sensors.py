"""The sensor registry over HTTP: create, read, list, change, delete; validation; roles."""

from __future__ import annotations

import h3
import psycopg
import pytest
from fastapi.testclient import TestClient

AIR = {
    "kind": "air_quality",
    "name": "Futian air station",
    "lon": 114.0553,
    "lat": 22.5431,
    "measures": {
        "pm25": {"unit": "µg/m³", "min": 0, "max": 1000},
        "pm10": {"unit": "µg/m³", "min": 0, "max": 2000},
    },
    "thresholds": {"pm25": {"warning": 75, "alarm": 115, "hysteresis": 10}},
}


@pytest.fixture(scope="module")
def admin(key) -> dict[str, str]:
    return key("admin")


def test_create_read_list_update_delete(
    client: TestClient, admin: dict[str, str], conn: psycopg.Connection
) -> None:
    r = client.post("/sensors", json={**AIR, "code": "REG-AQ-1"}, headers=admin)
    assert r.status_code == 201, r.text
    sensor = r.json()
    assert sensor["code"] == "REG-AQ-1"
    assert sensor["cell"] == h3.latlng_to_cell(AIR["lat"], AIR["lon"], 10)
    assert sensor["alarm_state"] == "normal" and sensor["latest"] == {}
    assert sensor["thresholds"]["pm25"] == {"warning": 75, "alarm": 115, "hysteresis": 10}

    by_id = client.get(f"/sensors/{sensor['id']}").json()
    by_code = client.get("/sensors/REG-AQ-1").json()
    assert by_id == by_code == sensor
    listed = client.get("/sensors", params={"kind": "air_quality", "limit": 10_000}).json()
    assert "REG-AQ-1" in {s["code"] for s in listed["sensors"]}

    r = client.patch(
        "/sensors/REG-AQ-1",
        json={"name": "moved", "lon": 114.06, "thresholds": {"pm10": {"alarm": 350}}},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    changed = r.json()
    assert changed["name"] == "moved" and changed["lon"] == 114.06
    assert changed["thresholds"] == {"pm10": {"warning": None, "alarm": 350, "hysteresis": 0}}
    stored = conn.execute("SELECT ST_X(geom), h3 FROM sensors WHERE code = 'REG-AQ-1'").fetchone()
    assert stored[0] == 114.06
    assert stored[1] == h3.str_to_int(h3.latlng_to_cell(AIR["lat"], 114.06, 10))

    assert client.delete("/sensors/REG-AQ-1", headers=admin).status_code == 204
    assert client.get("/sensors/REG-AQ-1").status_code == 404


def test_duplicate_code_is_a_conflict(client: TestClient, admin: dict[str, str]) -> None:
    assert (
        client.post("/sensors", json={**AIR, "code": "REG-DUP"}, headers=admin).status_code == 201
    )
    r = client.post("/sensors", json={**AIR, "code": "REG-DUP"}, headers=admin)
    assert r.status_code == 409
    assert r.json()["code"] == "sensor_exists"


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"measures": {}}, "measures"),
        ({"measures": {"pm25": {"unit": "x", "min": 5, "max": 1}}}, "below max"),
        ({"thresholds": {"no2": {"alarm": 1}}}, "does not measure"),
        ({"thresholds": {"pm25": {"warning": 200, "alarm": 100}}}, "below alarm"),
        ({"thresholds": {"pm25": {"alarm": 5000}}}, "outside the range"),
        ({"thresholds": {"pm25": {"hysteresis": 3}}}, "warning level, an alarm level"),
        ({"thresholds": {"pm25": {"alarm": 100, "hysteresis": -1}}}, "hysteresis"),
        ({"kind": "traffic_counter"}, "no incident category"),
        ({"lat": 91}, "lat"),
        ({"code": "bad/code"}, "code"),
        ({"asset_code": "123"}, "asset_code"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_invalid_sensors_are_refused(
    client: TestClient, admin: dict[str, str], change: dict, needle: str
) -> None:
    r = client.post("/sensors", json={**AIR, "code": "REG-BAD", **change}, headers=admin)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["status"] == 400 and needle in body["message"]


def test_unknown_asset_and_bad_patch(client: TestClient, admin: dict[str, str]) -> None:
    r = client.post(
        "/sensors",
        json={**AIR, "code": "REG-ASSET", "asset_code": "4403040101000001"},
        headers=admin,
    )
    assert r.status_code == 422 and r.json()["code"] == "unknown_asset"
    assert client.post("/sensors", json={**AIR, "code": "REG-P"}, headers=admin).status_code == 201
    r = client.patch(
        "/sensors/REG-P",
        json={"measures": {"noise": {"unit": "dB", "min": 0, "max": 140}}},
        headers=admin,
    )
    assert r.status_code == 422 and "does not measure" in r.json()["message"]
    assert client.patch("/sensors/REG-NONE", json={"name": "x"}, headers=admin).status_code == 404


def test_roles(client: TestClient, key) -> None:
    body = {**AIR, "code": "REG-ROLE"}
    assert client.post("/sensors", json=body).status_code == 401
    assert client.post("/sensors", json=body, headers=key("app")).status_code == 403
    assert client.delete("/sensors/1", headers=key("editor")).status_code == 403
    assert client.get("/sensors").status_code == 200


def test_openapi_documents_the_sensor_routes(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    ingest = spec["paths"]["/sensors/readings"]["post"]
    schema = ingest["requestBody"]["content"]["application/json"]["schema"]
    assert schema["maxItems"] == 50_000
    series = spec["paths"]["/sensors/{sensor}/readings"]["get"]
    assert {"property", "from", "to", "bucket"} <= {p["name"] for p in series["parameters"]}
