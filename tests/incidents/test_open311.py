"""Open311 GeoReport v2: discovery, services from the category table, requests both ways."""

from __future__ import annotations

import h3
import psycopg

from tests.helpers import City, expected_inspector

V2 = "/open311/v2"


def test_discovery_and_services_mirror_the_category_table(city: City) -> None:
    r = city.client.get(f"{V2}/discovery.json")
    assert r.status_code == 200 and r.json()["endpoints"][0]["url"].endswith("/open311/v2/")
    services = city.client.get(f"{V2}/services.json").json()
    with psycopg.connect(city.url) as conn:
        rows = conn.execute(
            "SELECT code, name, name_en, major_name FROM incident_categories ORDER BY code"
        ).fetchall()
    assert [(s["service_code"], s["group"]) for s in services] == [(r[0], r[3]) for r in rows]
    assert all(r[1] in s["service_name"] and r[2] in s["service_name"]
               for s, r in zip(services, rows, strict=True))  # fmt: skip
    definition = city.client.get(f"{V2}/services/0602.json").json()
    assert definition["service_code"] == "0602"
    assert [a["code"] for a in definition["attributes"]] == ["asset_code"]
    assert city.client.get(f"{V2}/services/9998.json").status_code == 404


def test_post_with_the_api_key_field_and_read_it_back(city: City) -> None:
    token = city.key("app")["Authorization"].removeprefix("Bearer ")
    form = {
        "api_key": token,
        "service_code": "0602",
        "lat": "22.5385",
        "long": "114.0462",
        "description": "manhole cover cracked",
        "attribute[asset_code]": "4403010602000042",
        "media_url": "https://photos.example.org/1.jpg",
        "email": "someone@example.org",
    }
    r = city.client.post(f"{V2}/requests.json", data=form)
    assert r.status_code == 201, r.text
    (created,) = r.json()
    rid = created["service_request_id"]
    with psycopg.connect(city.url) as conn:
        row = conn.execute(
            "SELECT i.category_code, i.asset_code, i.inspector_id, d.name, i.deadline, i.photos "
            "FROM incidents i JOIN departments d ON d.id = i.department_id WHERE i.id = %s",
            (int(rid),),
        ).fetchone()
    assert row[:3] == ("0602", "4403010602000042", expected_inspector(114.0462, 22.5385))
    keyed = city.client.get(f"{V2}/requests/{rid}.json", headers=city.key("app")).json()[0]
    assert keyed["status"] == "open" and keyed["agency_responsible"] == row[3]
    assert keyed["expected_datetime"] == row[4].isoformat()
    assert (keyed["lat"], keyed["long"]) == (22.5385, 114.0462)
    assert keyed["media_url"] == row[5][0]
    public = city.client.get(f"{V2}/requests/{rid}.json").json()[0]
    centre = h3.cell_to_latlng(h3.latlng_to_cell(22.5385, 114.0462, 10))
    assert (public["lat"], public["long"]) == centre
    assert "someone@example.org" not in str(public)


def test_requests_filter_by_status_code_and_id(city: City) -> None:
    key, dispatcher = city.key("app"), city.key("dispatcher")
    made = []
    for _ in range(3):
        r = city.client.post(
            f"{V2}/requests.json",
            json={"service_code": "0505", "lat": 22.541, "long": 114.052},
            headers=key,
        )
        made.append(int(r.json()[0]["service_request_id"]))
    r = city.client.post(
        f"/incidents/{made[0]}/transitions",
        json={"action": "cancel", "note": "duplicate"},
        headers={**dispatcher, "If-Match": '"1"'},
    )
    assert r.status_code == 200
    ids = ",".join(map(str, made))
    found = city.client.get(f"{V2}/requests.json", params={"service_request_id": ids}).json()
    assert sorted(int(f["service_request_id"]) for f in found) == sorted(made)
    closed = city.client.get(
        f"{V2}/requests.json", params={"service_code": "0505", "status": "closed"}
    ).json()
    assert [int(c["service_request_id"]) for c in closed] == [made[0]]
    assert closed[0]["status_notes"].startswith("cancelled")
    opened = city.client.get(
        f"{V2}/requests.json", params={"service_code": "0505", "status": "open"}
    ).json()
    assert {int(o["service_request_id"]) for o in opened} == set(made[1:])


def test_bad_posts_are_4xx_and_write_nothing(city: City) -> None:
    with psycopg.connect(city.url) as conn:
        before = conn.execute("SELECT count(*) FROM incidents").fetchone()[0]
    key = city.key("app")
    good = {"service_code": "0602", "lat": "22.54", "long": "114.05"}
    cases = [
        ({**good, "service_code": "99"}, key, 400),
        ({**good, "service_code": "9999"}, key, 422),
        ({"service_code": "0602", "address_string": "somewhere"}, key, 400),
        ({**good, "lat": "north"}, key, 400),
        ({**good, "attribute[asset_code]": "12"}, key, 400),
        (good, {}, 401),
        (good, city.key("inspector"), 403),
        ({**good, "api_key": "chx_not_a_key"}, {}, 401),
    ]
    for form, headers, status in cases:
        r = city.client.post(f"{V2}/requests.json", data=form, headers=headers)
        assert r.status_code == status, (form, r.text)
        assert r.json()["status"] == status
    r = city.client.get(f"{V2}/requests.json", params={"start_date": "last week"})
    assert r.status_code == 400
    r = city.client.get(f"{V2}/requests.json", params={"status": "pending"})
    assert r.status_code == 400
    with psycopg.connect(city.url) as conn:
        assert conn.execute("SELECT count(*) FROM incidents").fetchone()[0] == before
