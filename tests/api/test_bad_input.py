"""Bad input answers a 4xx JSON error and writes nothing (issue 19, defects 4 and 7): NUL
characters in paths, queries, filters and readings, integers past what the columns hold,
deeply nested JSON, digits that are not ASCII, non-finite numbers, unclosed rings,
coordinates given as text, and bodies of a media type that is not JSON.

Each test runs against a database of its own holding a few assets, one sensor and its
readings, so the counts it compares before and after are its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
import pytest
from fastapi.testclient import TestClient

from tests.helpers import make_key

SENSOR = "BI-1"
LAMP = "4403040101000001"
DEEP = b"[" * 50_000 + b"]" * 50_000
DEEP_OBJECT = b'{"a":' * 50_000 + b"1" + b"}" * 50_000


@pytest.fixture(scope="module")
def url(new_database) -> str:
    """A database with one lamp, one noise sensor and one district."""
    url = new_database("cityhex_bad_input")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO assets (code, class_code, kind, geom) VALUES "
            "(%s, '0101', 'lamp', ST_SetSRID(ST_MakePoint(114.05, 22.55), 4326))",
            (LAMP,),
        )
        conn.execute(
            "INSERT INTO sensors (code, kind, measures, geom) VALUES (%s, 'noise', "
            """'{"laeq": {"unit": "dB(A)", "min": 20, "max": 140}}', """
            "ST_SetSRID(ST_MakePoint(114.05, 22.55), 4326))",
            (SENSOR,),
        )
    return url


@pytest.fixture(scope="module")
def api(url: str) -> Iterator[TestClient]:
    from spatial_api.app import create_app

    with TestClient(create_app(url)) as c:
        yield c


@pytest.fixture(scope="module")
def keys(url: str) -> dict[str, dict[str, str]]:
    return {role: make_key(url, role) for role in ("app", "dispatcher", "editor", "admin")}


def count(url: str, query: str, *params: Any) -> Any:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchone()[0]


def assert_error(response: Any, status: int | tuple[int, ...], code: str | None = None) -> dict:
    """The response is a JSON error with ``status`` (and ``code``); its body."""
    statuses = status if isinstance(status, tuple) else (status,)
    assert response.status_code in statuses, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["status"] == response.status_code and body["message"]
    if code is not None:
        assert body["code"] == code, body
    return body


# --------------------------------------------------------------------------- NUL characters

NUL_GETS = [
    "/sensors?kind=%00",
    "/sensors/a%00b",
    "/sensors/a%00b/readings",
    "/collections/assets/items?name=%00",
    "/collections/assets/items?filter=name%3D%27a%00b%27",
    "/incidents/categories/%00",
    "/open311/v2/services/%00.json",
    "/grid/lookup?lon=114.05&lat=22.55&category=%00",
    "/incidents?category=01%0001",
    "/styles/%00.json",
]


@pytest.mark.parametrize("path", NUL_GETS)
def test_a_nul_in_the_path_or_query_is_400(
    api: TestClient, keys: dict[str, dict[str, str]], path: str
) -> None:
    body = assert_error(api.get(path, headers=keys["admin"]), 400, "invalid_parameter")
    assert "NUL" in body["message"]


def test_a_nul_in_a_cql2_json_literal_is_400(api: TestClient) -> None:
    # Escaped inside the JSON filter, so the query string itself holds no NUL byte.
    cql = orjson.dumps({"op": "=", "args": [{"property": "name"}, "a\u0000b"]}).decode()
    r = api.get("/collections/assets/items", params={"filter": cql, "filter-lang": "cql2-json"})
    assert_error(r, 400)


def test_a_nul_in_text_a_body_stores_is_400_and_writes_nothing(
    api: TestClient, url: str, keys: dict[str, dict[str, str]]
) -> None:
    before = count(url, "SELECT count(*) FROM sensors")
    sensor = {
        "code": "BI-NUL",
        "kind": "noise",
        "name": "a\u0000b",
        "lon": 114.05,
        "lat": 22.55,
        "measures": {"laeq": {"unit": "dB", "min": 0, "max": 1}},
    }
    assert_error(api.post("/sensors", json=sensor, headers=keys["admin"]), (400, 422))
    feature = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [114.05, 22.55]},
        "properties": {"code": "4403040101000002", "kind": "lamp", "note": "a\u0000b"},
    }
    assets = count(url, "SELECT count(*) FROM assets")
    r = api.post("/collections/assets/items", json=feature, headers=keys["editor"])
    assert_error(r, (400, 422))
    assert count(url, "SELECT count(*) FROM sensors") == before
    assert count(url, "SELECT count(*) FROM assets") == assets


def test_a_reading_whose_sensor_code_holds_a_nul_is_one_malformed_row(
    api: TestClient, url: str, keys: dict[str, dict[str, str]]
) -> None:
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    good = [
        {
            "sensor": SENSOR,
            "property": "laeq",
            "ts": (t0 + timedelta(minutes=i)).isoformat(),
            "value": 50 + i,
        }
        for i in range(3)
    ]
    bad = {"sensor": "BI\u00001", "property": "laeq", "ts": t0.isoformat(), "value": 50}
    batch = [good[0], bad, good[1], good[2]]
    r = api.post("/sensors/readings", json=batch, headers=keys["app"])
    assert r.status_code == 200, r.text
    report = r.json()
    assert (report["received"], report["accepted"], report["rejected"]) == (4, 3, 1)
    assert report["rejections"][0]["index"] == 1
    assert report["rejections"][0]["code"] == "malformed"
    stored = count(
        url,
        "SELECT count(*) FROM readings r JOIN sensors s ON s.id = r.sensor_id "
        "WHERE s.code = %s AND r.ts >= %s",
        SENSOR,
        t0,
    )
    assert stored == 3


# --------------------------------------------------------------------------- integers

BIG_INTEGERS = [
    ("/collections/assets/items?offset=9223372036854775808", "anonymous"),
    ("/collections/assets/items?offset=9223372036854775807", "anonymous"),
    ("/sensors?offset=9223372036854775808", "anonymous"),
    ("/sensors/99999999999999999999", "anonymous"),
    ("/grid/cells?inspector_id=2147483648", "admin"),
    ("/grid/cells?offset=9223372036854775808", "admin"),
    ("/incidents?inspector_id=2147483648", "admin"),
    ("/incidents/9223372036854775808", "admin"),
    ("/collections/assets/items/1/history/2147483648/restore", "admin"),
]


@pytest.mark.parametrize(("path", "role"), BIG_INTEGERS)
def test_integers_past_the_columns_are_4xx(
    api: TestClient, keys: dict[str, dict[str, str]], path: str, role: str
) -> None:
    headers = keys[role] if role != "anonymous" else {}
    method = "POST" if path.endswith("/restore") else "GET"
    r = api.request(method, path, headers=headers)
    assert 400 <= r.status_code < 500, r.text


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/grid/partition", {"inspectors": [2147483648]}),
        ("/grid/partition", {"inspectors": [1, 9223372036854775808]}),
        ("/grid/cells/8a4b6a9a0a27fff/assignment", {"inspector_id": 2147483648}),
        ("/grid/assignments", {"cells": ["8a4b6a9a0a27fff"], "inspector_id": 2147483648}),
    ],
)
def test_ids_past_32_bits_in_a_body_are_400(
    api: TestClient, keys: dict[str, dict[str, str]], path: str, body: dict
) -> None:
    method = "PUT" if path.endswith("/assignment") else "POST"
    assert_error(api.request(method, path, json=body, headers=keys["dispatcher"]), 400)


# --------------------------------------------------------------------------- nesting

DEEP_BODIES = [
    ("/sensors/readings", "app", DEEP),
    ("/sensors/readings", "app", DEEP_OBJECT),
    ("/open311/v2/requests.json", "app", DEEP_OBJECT),
    ("/open311/v2/requests.json", "app", DEEP),
    ("/collections/assets/items", "editor", DEEP),
    ("/query/intersects", "app", DEEP),
]


@pytest.mark.parametrize(("path", "role", "body"), DEEP_BODIES)
def test_deeply_nested_json_is_400(
    api: TestClient, keys: dict[str, dict[str, str]], path: str, role: str, body: bytes
) -> None:
    headers = {**keys[role], "Content-Type": "application/json"}
    assert_error(api.post(path, content=body, headers=headers), 400, "invalid_json")


def test_nesting_below_the_json_parser_limit_is_still_bounded(
    api: TestClient, url: str, keys: dict[str, dict[str, str]]
) -> None:
    # 300 levels: orjson parses it, but it could not be written back out
    nested: Any = 1
    for _ in range(300):
        nested = [nested]
    feature = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [114.05, 22.55]},
        "properties": {"code": "4403040101000003", "kind": "lamp", "deep": nested},
    }
    before = count(url, "SELECT count(*) FROM assets")
    r = api.post("/collections/assets/items", json=feature, headers=keys["editor"])
    assert_error(r, 400, "invalid_json")
    assert count(url, "SELECT count(*) FROM assets") == before


# --------------------------------------------------------------------------- digits, numbers


def test_a_digit_that_is_not_ascii_is_no_sensor_id(api: TestClient, url: str) -> None:
    sensor_id = count(url, "SELECT id FROM sensors WHERE code = %s", SENSOR)
    assert api.get(f"/sensors/{sensor_id}").status_code == 200
    assert_error(api.get("/sensors/%C2%B3"), 404)  # '³': str.isdigit() is true
    arabic_indic = "".join(chr(0x0660 + int(d)) for d in str(sensor_id))  # int() reads it
    assert_error(api.get(f"/sensors/{arabic_indic}"), 404)
    assert_error(api.get(f"/sensors/{arabic_indic}/readings"), 404)


@pytest.mark.parametrize(
    "query", ["near=-inf,0", "near=nan,nan", "near=inf,22.5", "near=1e999,22.5", "bbox=0,0,nan,1"]
)
def test_non_finite_numbers_in_the_incident_list_are_400(
    api: TestClient, keys: dict[str, dict[str, str]], query: str
) -> None:
    assert_error(api.get(f"/incidents?{query}", headers=keys["admin"]), 400)


# --------------------------------------------------------------------------- loose input

UNCLOSED = {
    "type": "Polygon",
    "coordinates": [[[114.0, 22.5], [114.01, 22.5], [114.01, 22.51], [114.0, 22.51]]],
}


@pytest.mark.parametrize("repair", ["false", "true"])
def test_an_unclosed_ring_is_refused_and_nothing_is_stored(
    api: TestClient, url: str, keys: dict[str, dict[str, str]], repair: str
) -> None:
    feature = {
        "type": "Feature",
        "geometry": UNCLOSED,
        "properties": {"code": "4403040101000004", "kind": "lamp"},
    }
    before = count(url, "SELECT count(*) FROM assets")
    r = api.post(f"/collections/assets/items?repair={repair}", json=feature, headers=keys["editor"])
    body = assert_error(r, (400, 422))
    assert "not closed" in body["message"]
    assert count(url, "SELECT count(*) FROM assets") == before


def test_an_unclosed_ring_in_a_multipolygon_or_a_query_is_refused(
    api: TestClient, keys: dict[str, dict[str, str]]
) -> None:
    closed = [[114.1, 22.5], [114.11, 22.5], [114.11, 22.51], [114.1, 22.5]]
    multi = {"type": "MultiPolygon", "coordinates": [[closed], UNCLOSED["coordinates"]]}
    for geometry in (UNCLOSED, multi):
        r = api.post("/query/intersects", json={"layers": ["assets"], "geometry": geometry})
        assert "not closed" in assert_error(r, (400, 422))["message"]


@pytest.mark.parametrize(
    "geometry",
    [
        {"type": "Point", "coordinates": ["114.05", "22.55"]},
        {"type": "Point", "coordinates": [114.05, "22.55"]},
        {"type": "LineString", "coordinates": [[114.0, 22.5], ["114.1", 22.6]]},
        {"type": "Point", "coordinates": [True, 22.55]},
    ],
)
def test_coordinates_as_text_are_refused(
    api: TestClient, keys: dict[str, dict[str, str]], geometry: dict
) -> None:
    r = api.post("/query/intersects", json={"layers": ["assets"], "geometry": geometry})
    assert_error(r, (400, 422))
    feature = {"type": "Feature", "geometry": geometry, "properties": {"code": LAMP}}
    r = api.post("/collections/assets/items", json=feature, headers=keys["editor"])
    assert_error(r, (400, 422))


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
@pytest.mark.parametrize("media_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_a_write_that_is_not_json_is_415_and_changes_nothing(
    api: TestClient, url: str, keys: dict[str, dict[str, str]], method: str, media_type: str
) -> None:
    fid = count(url, "SELECT id FROM assets WHERE code = %s", LAMP)
    item = api.get(f"/collections/assets/items/{fid}")
    body = orjson.dumps(
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [114.06, 22.56]},
            "properties": {"code": LAMP, "kind": "lamp", "name": "changed"},
        }
    )
    headers = {**keys["editor"], "If-Match": item.headers["etag"], "Content-Type": media_type}
    r = api.request(method, f"/collections/assets/items/{fid}", content=body, headers=headers)
    assert_error(r, 415, "unsupported_media_type")
    assert api.get(f"/collections/assets/items/{fid}").headers["etag"] == item.headers["etag"]


@pytest.mark.parametrize(
    "media_type", ["application/json", "application/merge-patch+json", "application/geo+json"]
)
def test_a_patch_of_a_json_type_is_applied(
    api: TestClient, url: str, keys: dict[str, dict[str, str]], media_type: str
) -> None:
    fid = count(url, "SELECT id FROM assets WHERE code = %s", LAMP)
    etag = api.get(f"/collections/assets/items/{fid}").headers["etag"]
    headers = {**keys["editor"], "If-Match": etag, "Content-Type": media_type}
    patch = orjson.dumps({"properties": {"name": media_type}})
    r = api.patch(f"/collections/assets/items/{fid}", content=patch, headers=headers)
    assert r.status_code == 200, r.text
    assert count(url, "SELECT name FROM assets WHERE id = %s", fid) == media_type
