"""A new case says where it was routed the way ``/grid/lookup`` says it to the same caller:
``district`` (code, name), ``inspector`` (id, and name for the roles that read names) and
``department`` (id, code, name), beside the ``*_id`` numbers; a caller who may not read
cases (anonymous) gets the district and the department, and no inspector nor their id."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.helpers import City

POINT = {"lon": 114.046, "lat": 22.538}
CATEGORY = "0102"


@pytest.fixture(scope="module")
def web(city: City) -> Iterator[TestClient]:
    """The app on the incident city, anonymous reports limited at 1,000 a minute."""
    from spatial_api.app import create_app

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CITYHEX_PUBLIC_REPORTS_PER_MINUTE", "1000")
        with TestClient(create_app(city.url)) as client:
            yield client


def report(web: TestClient, key: dict[str, str]) -> dict:
    r = web.post(
        "/incidents",
        json={"category": CATEGORY, "description": "井盖缺失 missing cover", **POINT},
        headers=key,
    )
    assert r.status_code == 201, r.text
    return r.json()


def lookup(web: TestClient, key: dict[str, str]) -> dict:
    r = web.get("/grid/lookup", params={**POINT, "category": CATEGORY}, headers=key)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("role", ["app", "inspector", "editor", "dispatcher", "admin"])
def test_a_report_names_its_routing_as_the_lookup_does_for_that_caller(
    web: TestClient, city: City, role: str
) -> None:
    key = city.key(role)
    body = report(web, key)
    expected = lookup(web, key)
    for part in ("district", "inspector", "department"):
        assert body[part] == expected[part], part
    district, inspector, department = city.rows(
        "SELECT district_id, inspector_id, department_id FROM incidents WHERE id = %s",
        (body["id"],),
    )[0]
    assert (body["district_id"], body["inspector_id"], body["department_id"]) == (
        district, inspector, department,
    )  # fmt: skip
    code, name = city.rows("SELECT code, name FROM districts WHERE id = %s", (district,))[0]
    assert body["district"] == {"code": code, "name": name}
    assert body["department"]["id"] == department
    (person,) = city.rows("SELECT name FROM users WHERE id = %s", (inspector,))[0]
    assert body["inspector"]["id"] == inspector
    if role == "app":
        assert "name" not in body["inspector"]
    else:
        assert body["inspector"]["name"] == person


def test_an_anonymous_reporter_learns_the_district_and_department_not_the_inspector(
    web: TestClient, city: City
) -> None:
    body = report(web, {})
    full = lookup(web, city.key("admin"))
    assert body["district"] == full["district"]
    assert body["department"] == full["department"]
    assert "inspector" not in body and "inspector_id" not in body
    names = [n for (n,) in city.rows("SELECT name FROM users WHERE name IS NOT NULL")]
    assert names and not any(n in str(body) for n in names)


def test_the_manual_example_answer_has_the_real_shape(web: TestClient, city: City) -> None:
    """docs/incidents.md shows an inspector's answer: every field it shows is in the real
    answer with the same kind of value, and the routing objects have the same fields."""
    manual = (Path(__file__).resolve().parents[2] / "docs" / "incidents.md").read_text()
    block = manual.split("An inspector's key gets", 1)[1].split("```json", 1)[1]
    example = json.loads(block.split("```", 1)[0])
    body = report(web, city.key("inspector", 101))
    assert set(example) <= set(body)
    for name, value in example.items():
        assert type(value) is type(body[name]) or body[name] is None, name
    for part in ("district", "inspector", "department"):
        assert set(example[part]) == set(body[part]), part
    assert (example["status"], example["source"]) == (body["status"], body["source"])
