"""What a report tells a caller who may not read cases: attaching it to a case
(``duplicate_of``) reveals nothing of that case, a new report's possible duplicates do not
say where they are, only app and admin keys speak for sensors, and the public reads case
descriptions through Open311 without the phone numbers, ID numbers and plates in them.

On the incident city (tests/incidents/conftest.py), served by an app of this module's own
whose limit on anonymous reports is high enough for the tests.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient

from tests.helpers import City


@pytest.fixture(scope="module")
def web(city: City) -> Iterator[TestClient]:
    """The app on the incident city, anonymous reports limited at 1,000 a minute."""
    from spatial_api.app import create_app

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CITYHEX_PUBLIC_REPORTS_PER_MINUTE", "1000")
        with TestClient(create_app(city.url)) as client:
            yield client


def counts(city: City) -> tuple[int, int]:
    """Cases and attached reports."""
    with psycopg.connect(city.url) as conn:
        return conn.execute(
            "SELECT (SELECT count(*) FROM incidents), (SELECT count(*) FROM incident_duplicates)"
        ).fetchone()


def new_case(web: TestClient, key: dict[str, str], category: str, lon: float, lat: float) -> dict:
    r = web.post(
        "/incidents",
        json={"category": category, "description": "张三 13812345678", "lon": lon, "lat": lat},
        headers=key,
    )
    assert r.status_code == 201, r.text
    return r.json()


def cancel(web: TestClient, city: City, case: dict) -> None:
    r = web.post(
        f"/incidents/{case['id']}/transitions",
        json={"action": "cancel", "note": "not a case"},
        headers={**city.key("dispatcher"), "If-Match": f'"{case["version"]}"'},
    )
    assert r.status_code == 200, r.text


def test_an_anonymous_report_attached_to_a_case_is_only_acknowledged(
    web: TestClient, city: City
) -> None:
    case = new_case(web, city.key("app"), "0301", 114.043, 22.544)
    before = counts(city)
    r = web.post(
        "/incidents",
        json={"category": "0301", "lon": 114.0431, "lat": 22.544, "duplicate_of": case["id"]},
    )
    assert r.status_code == 202, r.text
    assert r.json() == {"attached": True, "incident_id": case["id"]}
    assert "etag" not in r.headers and "location" not in r.headers
    assert counts(city) == (before[0], before[1] + 1)
    with psycopg.connect(city.url) as conn:
        source, reporter = conn.execute(
            "SELECT source, reporter FROM incident_duplicates WHERE incident_id = %s",
            (case["id"],),
        ).fetchone()
    assert (source, reporter) == ("public", "anonymous")


def test_an_unattachable_case_looks_the_same_to_the_public_whatever_the_reason(
    web: TestClient, city: City
) -> None:
    app = city.key("app")
    closed = new_case(web, app, "0302", 114.047, 22.546)
    cancel(web, city, closed)
    other = new_case(web, app, "0303", 114.048, 22.546)
    with psycopg.connect(city.url) as conn:
        missing = conn.execute("SELECT max(id) + 1000 FROM incidents").fetchone()[0]
    tries = {
        "cancelled": (closed["id"], "0302"),
        "other category": (other["id"], "0302"),
        "missing": (missing, "0302"),
    }
    before = counts(city)
    answers = {}
    for why, (case_id, category) in tries.items():
        r = web.post(
            "/incidents",
            json={"category": category, "lon": 114.047, "lat": 22.546, "duplicate_of": case_id},
        )
        body = r.json()
        assert r.status_code == 422 and body["status"] == 422, (why, body)
        assert "cancelled" not in body["message"] and "0303" not in body["message"], why
        answers[why] = (body["code"], body["message"].replace(str(case_id), "N"))
    assert len(set(answers.values())) == 1, answers
    assert counts(city) == before
    # a caller who may read cases is told why
    r = web.post(
        "/incidents",
        json={"category": "0302", "lon": 114.047, "lat": 22.546, "duplicate_of": closed["id"]},
        headers=app,
    )
    assert r.status_code == 422 and r.json()["code"] == "duplicate_of_closed"


def test_a_bad_location_is_refused_before_the_case_is_looked_at(
    web: TestClient, city: City
) -> None:
    case = new_case(web, city.key("app"), "0304", 114.049, 22.547)
    for target in (case["id"], 10**12):
        r = web.post(
            "/incidents",
            json={"category": "0304", "lon": 200.0, "lat": 22.5, "duplicate_of": target},
        )
        assert r.status_code == 400 and r.json()["code"] == "invalid_location"


def test_possible_duplicates_do_not_say_where_to_the_public(web: TestClient, city: City) -> None:
    first = new_case(web, city.key("app"), "0305", 114.052, 22.543)
    public = new_case(web, {}, "0305", 114.0521, 22.543)
    hits = {d["id"]: d for d in public["possible_duplicates"]}
    assert hits[first["id"]] == {"id": first["id"], "status": "reported"}
    staff = new_case(web, city.key("inspector", 103), "0305", 114.0521, 22.543)
    seen = {d["id"]: d for d in staff["possible_duplicates"]}[first["id"]]
    assert seen["distance_m"] > 0 and seen["same_asset"] is False


@pytest.mark.parametrize("role", [None, "inspector", "editor", "dispatcher"])
def test_only_app_and_admin_keys_report_for_a_sensor(
    web: TestClient, city: City, role: str | None
) -> None:
    headers = city.key(role) if role else {}
    case = new_case(web, city.key("app"), "0606", 114.051, 22.548)
    before = counts(city)
    for extra in ({}, {"duplicate_of": case["id"]}):
        r = web.post(
            "/incidents",
            json={"category": "0606", "lon": 114.051, "lat": 22.548, "sensor_id": 1, **extra},
            headers=headers,
        )
        body = r.json()
        assert r.status_code == 403 and body["status"] == 403, body
        assert body["code"] == "sensor_report_forbidden" and body["message"]
    assert counts(city) == before


@pytest.mark.parametrize("role", ["app", "admin"])
def test_app_and_admin_keys_report_for_a_sensor(web: TestClient, city: City, role: str) -> None:
    with psycopg.connect(city.url, autocommit=True) as conn:
        sensor = conn.execute(
            "INSERT INTO sensors (code, kind, geom) VALUES (%s, 'water_level', "
            "ST_SetSRID(ST_MakePoint(114.05, 22.54), 4326)) RETURNING id",
            (f"WL-privacy-{role}",),
        ).fetchone()[0]
    r = web.post(
        "/incidents",
        json={"category": "0606", "lon": 114.05, "lat": 22.54, "sensor_id": sensor},
        headers=city.key(role),
    )
    assert r.status_code == 201, r.text
    assert r.json()["source"] == "sensor" and r.json()["sensor_id"] == sensor


def test_open311_gives_the_public_descriptions_without_phone_id_or_plate(
    web: TestClient, city: City
) -> None:
    text = (
        "井盖丢失，车牌粤B12345压过，身份证440304199001011234，电话 138 1234 5678 或 0755-2345 6789"
    )
    case = web.post(
        "/incidents",
        json={"category": "0602", "description": text, "lon": 114.046, "lat": 22.539},
    ).json()
    public = web.get(f"/open311/v2/requests/{case['id']}.json").json()[0]["description"]
    assert public == "井盖丢失，车牌***压过，身份证***，电话 *** 或 ***"
    staff = web.get(f"/open311/v2/requests/{case['id']}.json", headers=city.key("app")).json()
    assert staff[0]["description"] == text
