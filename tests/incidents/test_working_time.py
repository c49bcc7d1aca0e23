"""The working-time calendar over HTTP: holidays and make-up days set, listed and removed."""

from __future__ import annotations

from tests.helpers import City


def test_calendar_api(city: City) -> None:
    admin = city.key("admin")
    r = city.client.put(
        "/incidents/calendar/2026-02-17", json={"working": False, "name": "春节"}, headers=admin
    )
    assert r.status_code == 200 and r.json() == {
        "day": "2026-02-17",
        "working": False,
        "name": "春节",
    }
    days = city.client.get("/incidents/calendar", params={"start": "2026-02-01"}).json()["days"]
    assert {"day": "2026-02-17", "working": False, "name": "春节"} in days
    assert (
        city.client.put(
            "/incidents/calendar/2026-02-18",
            json={"working": False},
            headers=city.key("dispatcher"),
        ).status_code
        == 403
    )
    assert (
        city.client.put(
            "/incidents/calendar/2026-02-30", json={"working": False}, headers=admin
        ).status_code
        == 400
    )
    assert city.client.delete("/incidents/calendar/2026-02-17", headers=admin).status_code == 204
    assert city.client.delete("/incidents/calendar/2026-02-17", headers=admin).status_code == 404
