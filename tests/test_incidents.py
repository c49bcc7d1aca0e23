"""Reporting an incident: routing by cell and category, deadline, duplicates, bad input."""

from __future__ import annotations

import psycopg

from tests.incident_city import City, city_fixture, expected_inspector  # noqa: F401


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
