"""Task lists for the mobile app: assignee=me, status, bbox, near + distance, overdue, paging.

Every case here has category 0303 (used by no other test), so each list is filtered on it
and compared with what the test itself put in.
"""

from __future__ import annotations

import psycopg
import pytest
from pyproj import Geod

from tests.helpers import City, expected_inspector

CATEGORY = "0303"
GEOD = Geod(ellps="WGS84")
POINTS = [(114.05 + 0.001 * dx, 22.54 + 0.001 * dy) for dx in (-4, -1, 2, 5) for dy in (-3, 2)]


@pytest.fixture(scope="module")
def cases(city: City) -> list[dict]:
    """Eight cases spread over the four inspectors' quarters; two registered, one overdue."""
    key, dispatcher = city.key("app"), city.key("dispatcher")
    made = []
    for lon, lat in POINTS:
        r = city.client.post(
            "/incidents", json={"category": CATEGORY, "lon": lon, "lat": lat}, headers=key
        )
        assert r.status_code == 201
        made.append(r.json())
    for case in made[:2]:
        r = city.client.post(
            f"/incidents/{case['id']}/transitions",
            json={"action": "register"},
            headers={**dispatcher, "If-Match": '"1"'},
        )
        case.update(r.json())
    with psycopg.connect(city.url, autocommit=True) as conn:
        conn.execute(
            "UPDATE incidents SET deadline = now() - interval '1 hour' WHERE id = %s",
            (made[3]["id"],),
        )
    return made


def listing(city: City, key: dict, **params) -> dict:
    r = city.client.get("/incidents", params={"category": CATEGORY, **params}, headers=key)
    assert r.status_code == 200, r.text
    return r.json()


def test_assignee_me_gives_the_inspectors_own_cases(city: City, cases: list[dict]) -> None:
    for inspector in (101, 102, 103, 104):
        got = {
            c["id"] for c in listing(city, city.key("inspector", inspector), assignee="me")["items"]
        }
        mine = {
            c["id"]
            for c, p in zip(cases, POINTS, strict=True)
            if expected_inspector(*p) == inspector
        }
        assert got == mine and mine
    r = city.client.get("/incidents", params={"assignee": "me"}, headers=city.key("inspector"))
    assert r.status_code == 400 and r.json()["code"] == "no_assignee"


def test_department_staff_see_their_department(city: City, cases: list[dict]) -> None:
    staff = city.key("editor", 202)  # urban management (cgj) handles 0303 spillage
    got = {c["id"] for c in listing(city, staff, assignee="me", limit=100)["items"]}
    assert got == {c["id"] for c in cases}
    assert city.category_department(CATEGORY) == city.department_id("cgj")


def test_status_and_bbox_filters(city: City, cases: list[dict]) -> None:
    key = city.key("dispatcher")
    got = {c["id"] for c in listing(city, key, status="registered")["items"]}
    assert got == {cases[0]["id"], cases[1]["id"]}
    box = (114.0455, 22.5365, 114.0505, 22.5425)
    got = {c["id"] for c in listing(city, key, bbox=",".join(map(str, box)))["items"]}
    inside = {
        c["id"]
        for c, (x, y) in zip(cases, POINTS, strict=True)
        if box[0] <= x <= box[2] and box[1] <= y <= box[3]
    }
    assert got == inside and 0 < len(inside) < len(cases)


def test_near_sorts_by_true_distance(city: City, cases: list[dict]) -> None:
    here = (114.0512, 22.5391)
    items = listing(city, city.key("app"), near=f"{here[0]},{here[1]}", sort="distance")["items"]
    expected = sorted(
        (GEOD.inv(here[0], here[1], x, y)[2], c["id"])
        for c, (x, y) in zip(cases, POINTS, strict=True)
    )
    assert [i["id"] for i in items] == [cid for _, cid in expected]
    for item, (metres, _) in zip(items, expected, strict=True):
        assert abs(item["distance_m"] - metres) < 0.5


def test_overdue_flag_and_filter(city: City, cases: list[dict]) -> None:
    key = city.key("app")
    items = listing(city, key, limit=100)["items"]
    assert {i["id"] for i in items if i["overdue"]} == {cases[3]["id"]}
    assert [i["id"] for i in listing(city, key, overdue="true")["items"]] == [cases[3]["id"]]
    assert len(listing(city, key, overdue="false")["items"]) == len(cases) - 1
    assert listing(city, key, sort="deadline", limit=1)["items"][0]["id"] == cases[3]["id"]


def test_paging_walks_every_case_once(city: City, cases: list[dict]) -> None:
    key, seen, offset = city.key("app"), [], 0
    while offset is not None:
        page = listing(city, key, limit=3, offset=offset, sort="newest")
        assert page["total"] == len(cases)
        seen += [i["id"] for i in page["items"]]
        offset = page["next_offset"]
    assert seen == sorted((c["id"] for c in cases), reverse=True)


@pytest.mark.parametrize(
    "params",
    [
        {"sort": "distance"},
        {"near": "114.05"},
        {"bbox": "1,2,3"},
        {"status": "lost"},
        {"limit": 0},
        {"offset": -1},
        {"assignee": "you"},
        {"overdue": "maybe"},
    ],
)
def test_bad_list_queries_are_400(city: City, params: dict) -> None:
    r = city.client.get("/incidents", params=params, headers=city.key("app"))
    assert r.status_code == 400, r.text
    assert r.json()["status"] == 400
