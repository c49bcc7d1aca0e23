"""Reporting an incident: routing by cell and category, deadline, duplicates, bad input."""

from __future__ import annotations

import json

import psycopg
import pytest
from pyproj import Geod, Transformer

from tests.helpers import City, district_of, expected_inspector


def test_report_is_routed_by_cell_and_category(city: City) -> None:
    key = city.key("inspector", 101)
    r = city.client.post(
        "/incidents",
        json={"category": "0102", "description": "rubbish", "lon": 114.04, "lat": 22.535},
        headers=key,
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["inspector_id"] == expected_inspector(114.04, 22.535)
    assert body["department_id"] == city.department_id("hw")
    assert body["status"] == "reported"
    with psycopg.connect(city.url) as conn:
        n = conn.execute(
            "SELECT count(*) FROM incident_transitions WHERE incident_id = %s", (body["id"],)
        ).fetchone()[0]
    assert n == 1


def count_rows(city: City) -> tuple[int, int, int]:
    with psycopg.connect(city.url) as conn:
        return conn.execute(
            "SELECT (SELECT count(*) FROM incidents), (SELECT count(*) FROM incident_transitions),"
            " (SELECT count(*) FROM incident_duplicates)"
        ).fetchone()


GOOD = {"category": "0102", "description": "rubbish", "lon": 114.04, "lat": 22.535}
BAD_REPORTS = [
    ({k: v for k, v in GOOD.items() if k != "category"}, 400),
    ({**GOOD, "category": "12"}, 400),
    ({**GOOD, "category": "9999"}, 422),
    ({"category": "0102"}, 400),
    ({"category": "0102", "lon": 114.04}, 400),
    ({**GOOD, "lon": 200.0}, 400),
    ({**GOOD, "lat": 95.0}, 400),
    ({**GOOD, "lon": "east"}, 400),
    ({**GOOD, "lon": float("nan")}, 400),
    ({**GOOD, "location": {"type": "Point", "coordinates": [114.04, 22.535]}}, 400),
    ({"category": "0102", "location": {"type": "Polygon", "coordinates": [1, 2]}}, 400),
    ({"category": "0102", "location": {"type": "Point", "coordinates": [114.04]}}, 400),
    ({**GOOD, "crs": "EPSG:99999"}, 400),
    ({**GOOD, "crs": "EPSG:32650"}, 400),
    ({**GOOD, "asset_code": "123"}, 400),
    ({**GOOD, "photos": ["ftp://example.org/a.jpg"]}, 400),
    ({**GOOD, "description": "x" * 5000}, 400),
    ({**GOOD, "colour": "red"}, 400),
    ({**GOOD, "lon": 0.0, "lat": 0.0}, 422),
    ({**GOOD, "duplicate_of": 10**9}, 404),
    ([GOOD], 400),
]


def test_bad_reports_are_4xx_json_and_write_nothing(city: City) -> None:
    key = city.key("app")
    before = count_rows(city)
    for body, status in BAD_REPORTS:
        r = city.client.post(
            "/incidents",
            content=json.dumps(body, allow_nan=True),
            headers={**key, "Content-Type": "application/json"},
        )
        assert r.status_code == status, (body, r.text)
        err = r.json()
        assert err["status"] == status and err["code"] and err["message"]
    r = city.client.post("/incidents", content=b"{not json", headers=key)
    assert r.status_code == 400
    assert count_rows(city) == before


GEOD = Geod(ellps="WGS84")


def offset(lon: float, lat: float, metres: float, azimuth: float = 90.0) -> tuple[float, float]:
    """The point ``metres`` from (lon, lat) towards ``azimuth``, on the ellipsoid."""
    x, y, _ = GEOD.fwd(lon, lat, azimuth, metres)
    return x, y


def post(city: City, key: dict, **body) -> dict:
    r = city.client.post("/incidents", json=body, headers=key)
    assert r.status_code in (200, 201), r.text
    return r.json()


def test_duplicates_are_open_cases_of_the_category_nearby_or_on_the_asset(city: City) -> None:
    key = city.key("inspector", 103)
    base = (114.055, 22.537)
    first = post(
        city, key, category="0603", lon=base[0], lat=base[1], asset_code="4403010603000001"
    )
    near = offset(*base, 30)
    second = post(city, key, category="0603", lon=near[0], lat=near[1])
    hits = {d["id"]: d for d in second["possible_duplicates"]}
    assert first["id"] in hits
    _, _, metres = GEOD.inv(base[0], base[1], near[0], near[1])
    assert abs(hits[first["id"]]["distance_m"] - metres) < 0.5
    far = offset(*base, 80)
    third = post(city, key, category="0603", lon=far[0], lat=far[1])
    assert first["id"] not in {d["id"] for d in third["possible_duplicates"]}
    other = post(city, key, category="0602", lon=base[0], lat=base[1])
    assert first["id"] not in {d["id"] for d in other["possible_duplicates"]}
    away = offset(*base, 500, 0)
    on_asset = post(
        city, key, category="0602", lon=away[0], lat=away[1], asset_code="4403010603000001"
    )
    assert {d["id"]: d["same_asset"] for d in on_asset["possible_duplicates"]}[first["id"]]


def test_closed_cases_are_no_duplicates_and_cannot_be_attached_to(city: City) -> None:
    key, dispatcher = city.key("app"), city.key("dispatcher")
    lon, lat = 114.06, 22.55
    case = post(city, key, category="0605", lon=lon, lat=lat)
    r = city.client.post(
        f"/incidents/{case['id']}/transitions",
        json={"action": "cancel", "note": "test"},
        headers={**dispatcher, "If-Match": f'"{case["version"]}"'},
    )
    assert r.status_code == 200
    again = post(city, key, category="0605", lon=lon, lat=lat)
    assert case["id"] not in {d["id"] for d in again["possible_duplicates"]}
    before = count_rows(city)
    r = city.client.post(
        "/incidents",
        json={"category": "0605", "lon": lon, "lat": lat, "duplicate_of": case["id"]},
        headers=key,
    )
    assert r.status_code == 422 and r.json()["code"] == "duplicate_of_closed"
    assert count_rows(city) == before


def test_attaching_a_report_keeps_one_case(city: City) -> None:
    key = city.key("app")
    case = post(city, key, category="0604", lon=114.045, lat=22.545)
    before = count_rows(city)
    r = city.client.post(
        "/incidents",
        json={"category": "0604", "lon": 114.0451, "lat": 22.545, "duplicate_of": case["id"],
              "description": "me too"},
        headers=key,
    )  # fmt: skip
    assert r.status_code == 200 and r.json()["id"] == case["id"] and r.json()["attached"]
    after = count_rows(city)
    assert after == (before[0], before[1], before[2] + 1)
    r = city.client.post(
        "/incidents",
        json={"category": "0601", "lon": 114.0451, "lat": 22.545, "duplicate_of": case["id"]},
        headers=key,
    )
    assert r.status_code == 422


def test_projected_location_is_transformed(city: City) -> None:
    x, y = Transformer.from_crs(4326, 32650, always_xy=True).transform(114.041, 22.531)
    body = post(
        city,
        city.key("app"),
        category="0102",
        location={"type": "Point", "coordinates": [x, y]},
        crs="http://www.opengis.net/def/crs/EPSG/0/32650",
    )
    lon, lat = body["location"]["coordinates"]
    assert abs(lon - 114.041) < 1e-7 and abs(lat - 22.531) < 1e-7
    assert body["inspector_id"] == expected_inspector(114.041, 22.531)


def test_routing_matches_the_grid_for_many_points(city: City) -> None:
    key = city.key("app")
    for i in range(40):
        lon = 114.05 + 0.0012 * ((i * 7) % 13 - 6)
        lat = 22.54 + 0.0012 * ((i * 5) % 11 - 5)
        category = ("0102", "0501", "0406", "0601")[i % 4]
        body = post(city, key, category=category, lon=lon, lat=lat)
        assert body["inspector_id"] == expected_inspector(lon, lat)
        assert body["department_id"] == city.category_department(category)
        assert body["district_id"] == district_of(lon, lat)


def test_district_overrides_of_the_category_department_apply(city: City) -> None:
    with psycopg.connect(city.url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO category_departments (category_code, district_id, department_id) "
            "VALUES ('0502', 2, %s)",
            (city.department_id("scj"),),
        )
    key = city.key("app")
    east = post(city, key, category="0502", lon=114.056, lat=22.541)
    west = post(city, key, category="0502", lon=114.044, lat=22.541)
    assert (east["district_id"], west["district_id"]) == (2, 1)
    assert east["department_id"] == city.department_id("scj")
    assert west["department_id"] == city.department_id("cgj")


def test_transitions_need_the_current_version(city: City) -> None:
    dispatcher = city.key("dispatcher")
    case = post(city, city.key("app"), **GOOD)
    url = f"/incidents/{case['id']}/transitions"
    before = count_rows(city)
    r = city.client.post(url, json={"action": "register"}, headers=dispatcher)
    assert r.status_code == 428
    r = city.client.post(
        url, json={"action": "register"}, headers={**dispatcher, "If-Match": '"7"'}
    )
    assert r.status_code == 412 and r.json()["details"]["version"] == 1
    r = city.client.post(url, json={"action": "register"}, headers={**dispatcher, "If-Match": "x"})
    assert r.status_code == 400
    r = city.client.post(url, json={"action": "fly"}, headers={**dispatcher, "If-Match": '"1"'})
    assert r.status_code == 400 and r.json()["code"] == "unknown_action"
    r = city.client.post(url, json={"action": "register"}, headers={"If-Match": '"1"'})
    assert r.status_code == 401
    r = city.client.post(
        "/incidents/999999999/transitions", json={"action": "register"},
        headers={**dispatcher, "If-Match": '"1"'},
    )  # fmt: skip
    assert r.status_code == 404
    assert count_rows(city) == before
    r = city.client.post(
        url, json={"action": "register"}, headers={**dispatcher, "If-Match": '"1"'}
    )
    assert r.status_code == 200 and r.json()["version"] == 2
    r = city.client.post(
        url, json={"action": "dispatch"}, headers={**dispatcher, "If-Match": '"1"'}
    )
    assert r.status_code == 412


def test_scoped_keys_act_only_on_their_own_cases(city: City) -> None:
    dispatcher = city.key("dispatcher")
    case = post(city, city.key("app"), category="0102", lon=114.04, lat=22.535)  # hw, 101
    for action in ("register", "dispatch"):
        r = city.client.post(
            f"/incidents/{case['id']}/transitions", json={"action": action},
            headers={**dispatcher, "If-Match": f'"{case["version"]}"'},
        )  # fmt: skip
        case = r.json()
    url = f"/incidents/{case['id']}/transitions"
    other_staff = city.key("editor", 202)  # urban management, not sanitation
    r = city.client.post(
        url, json={"action": "accept"}, headers={**other_staff, "If-Match": f'"{case["version"]}"'}
    )
    assert r.status_code == 403 and r.json()["code"] == "not_your_case"
    staff = city.key("editor", 201)
    r = city.client.post(
        url, json={"action": "accept"}, headers={**staff, "If-Match": f'"{case["version"]}"'}
    )
    assert r.status_code == 200


def test_anonymous_reports_are_rate_limited(city: City) -> None:
    codes = [
        city.client.post("/incidents", json={**GOOD, "category": "0201"}).status_code
        for _ in range(7)
    ]
    assert codes[:5] == [201] * 5 and codes[5:] == [429, 429]
    r = city.client.post("/incidents", json=GOOD)
    assert int(r.headers["retry-after"]) > 0 and r.json()["code"] == "too_many_requests"
    assert city.client.get("/incidents").status_code == 401


def test_admins_edit_categories_and_new_reports_follow(city: City) -> None:
    admin, app = city.key("admin"), city.key("app")
    new = {
        "code": "0999",
        "major_name": "市容环境",
        "name": "测试类",
        "name_en": "Test class",
        "time_limit_hours": 3,
        "department_id": city.department_id("hw"),
    }
    assert city.client.post("/incidents/categories", json=new, headers=app).status_code == 403
    r = city.client.post("/incidents/categories", json=new, headers=admin)
    assert r.status_code == 201 and r.json()["department_code"] == "hw"
    assert city.client.post("/incidents/categories", json=new, headers=admin).status_code == 409
    bad = {**new, "code": "0998", "department_id": 999}
    assert city.client.post("/incidents/categories", json=bad, headers=admin).status_code == 400
    r = city.client.patch(
        "/incidents/categories/0999",
        json={"department_id": city.department_id("cgj"), "time_limit_hours": 5},
        headers=admin,
    )
    assert r.status_code == 200 and r.json()["time_limit_hours"] == 5
    case = post(city, app, category="0999", lon=114.04, lat=22.535)
    assert case["department_id"] == city.department_id("cgj")
    r = city.client.delete("/incidents/categories/0999", headers=admin)
    assert r.status_code == 409 and r.json()["code"] == "category_in_use"
    listed = city.client.get("/incidents/categories").json()["categories"]
    assert "0999" in {c["code"] for c in listed} and len(listed) >= 42
    assert (
        city.client.patch(
            "/incidents/categories/0998", json={"name": "x"}, headers=admin
        ).status_code
        == 404
    )
    assert (
        city.client.patch(
            "/incidents/categories/0999", json={"time_limit_hours": -1}, headers=admin
        ).status_code
        == 400
    )


def test_a_case_lists_the_actions_the_caller_may_take(city: City) -> None:
    case = post(city, city.key("app"), **GOOD)
    url = f"/incidents/{case['id']}"
    for role, expected in (("dispatcher", ["register", "cancel"]), ("app", []),
                           ("editor", []), ("admin", ["register", "cancel"])):  # fmt: skip
        body = city.client.get(url, headers=city.key(role)).json()
        assert [a["action"] for a in body["allowed_actions"]] == expected
    assert city.client.get(url, headers=city.key("dispatcher")).json()["allowed_actions"][0] == {
        "action": "register",
        "label": "立案",
    }


BIG = 2**70
OUT_OF_RANGE = [
    ("get", f"/incidents/{BIG}", None, None),
    ("post", f"/incidents/{BIG}/transitions", {"action": "register"}, None),
    ("get", f"/incidents/{BIG}/transitions", None, None),
    ("post", "/incidents/1/transitions", {"action": "dispatch", "department_id": 2**40}, None),
    ("post", "/incidents/1/transitions", {"action": "request_extension", "hours": 0.001}, None),
    ("get", "/incidents", None, {"department_id": 2**40}),
    ("get", "/incidents", None, {"inspector_id": BIG}),
    ("get", "/incidents", None, {"offset": BIG}),
    ("post", "/incidents", {**GOOD, "duplicate_of": BIG}, None),
    ("post", "/incidents", {**GOOD, "sensor_id": BIG}, None),
    ("post", "/incidents", {**GOOD, "lon": 1e308}, None),
    ("patch", "/incidents/categories/0101", {"department_id": BIG}, None),
    ("patch", "/incidents/categories/0101", {"time_limit_hours": 0.001}, None),
    ("get", "/open311/v2/requests.json", None, {"service_request_id": str(BIG)}),
    ("get", f"/open311/v2/requests/{BIG}.json", None, None),
]


@pytest.mark.parametrize(("method", "url", "body", "params"), OUT_OF_RANGE)
def test_out_of_range_numbers_are_400_not_500(
    city: City, method: str, url: str, body: dict | None, params: dict | None
) -> None:
    headers = {**city.key("admin"), "If-Match": '"1"'}
    kwargs = {"headers": headers, "params": params} | ({"json": body} if body else {})
    r = getattr(city.client, method)(url, **kwargs)
    assert r.status_code == 400, r.text
    assert r.json()["status"] == 400


NUL_TEXT = [
    ("post", "/incidents", {**GOOD, "description": "a\x00b"}),
    ("post", "/incidents", {**GOOD, "photos": ["https://photos.example.org/\x00"]}),
    ("post", "/incidents/1/transitions", {"action": "register", "note": "\x00"}),
    ("patch", "/incidents/categories/0101", {"name": "a\x00"}),
    ("put", "/incidents/calendar/2030-01-01", {"working": False, "name": "a\x00"}),
    ("post", "/open311/v2/requests.json", {"service_code": "0602", "lat": 22.54, "long": 114.05,
                                           "description": "x\x00"}),
]  # fmt: skip


@pytest.mark.parametrize(("method", "url", "body"), NUL_TEXT)
def test_text_postgres_cannot_store_is_400(city: City, method: str, url: str, body: dict) -> None:
    headers = {**city.key("admin"), "If-Match": '"1"'}
    r = getattr(city.client, method)(url, json=body, headers=headers)
    assert r.status_code == 400, r.text
    r = city.client.get("/incidents", params={"category": "01\x0002"}, headers=headers)
    assert r.status_code == 400


def test_overdue_until_closed_cancelled_or_parked(city: City) -> None:
    key = city.key("app")
    case = post(city, key, category="0106", lon=114.047, lat=22.543)
    expected = {"reported": True, "in_progress": True, "resolved": True, "verified": True,
                "closed": False, "cancelled": False, "parked": False}  # fmt: skip
    with psycopg.connect(city.url, autocommit=True) as conn:
        for status, overdue in expected.items():
            conn.execute(
                "UPDATE incidents SET status = %s, deadline = now() - interval '1 minute' "
                "WHERE id = %s",
                (status, case["id"]),
            )
            body = city.client.get(f"/incidents/{case['id']}", headers=key).json()
            assert body["overdue"] is overdue, status
            listed = city.client.get(
                "/incidents", params={"category": "0106", "overdue": "true"}, headers=key
            ).json()["items"]
            assert (case["id"] in [i["id"] for i in listed]) is overdue, status
