"""自行处置: an inspector closes what they reported on the spot, straight from reported.

Legal only for the reporting inspector, with a note, on a case with a photo; recorded like
every step; refused (nothing written) for anyone else, without a note or photo, or from any
state but reported.
"""

from __future__ import annotations

from typing import Any

import psycopg

from tests.helpers import City

POINT = (114.04, 22.535)  # inspector 101's quarter of the test city
PHOTO = "https://photos.example/kerb.jpg"


def report(city: City, key: dict, photos: list[str] | None = None) -> dict[str, Any]:
    body = {"category": "0104", "description": "mud on the kerb", "lon": POINT[0], "lat": POINT[1]}
    r = city.client.post("/incidents", json={**body, "photos": photos or []}, headers=key)
    assert r.status_code == 201, r.text
    return r.json()


def act(city: City, case: dict, key: dict, action: str = "self_close", note: str | None = "done"):
    return city.client.post(
        f"/incidents/{case['id']}/transitions",
        json={"action": action, "note": note},
        headers={**key, "If-Match": f'"{case["version"]}"'},
    )


def steps(city: City, case_id: int) -> list[tuple]:
    with psycopg.connect(city.url) as conn:
        return conn.execute(
            "SELECT action, from_status, to_status, actor, note FROM incident_transitions "
            "WHERE incident_id = %s ORDER BY id",
            (case_id,),
        ).fetchall()


def test_the_reporting_inspector_closes_on_the_spot(city: City) -> None:
    inspector = city.key("inspector", 101)
    case = report(city, inspector, [PHOTO])
    r = act(city, case, inspector, note="swept on the spot")
    assert r.status_code == 200, r.text
    closed = r.json()
    assert closed["status"] == "closed" and closed["version"] == case["version"] + 1
    assert closed["closed_at"] == closed["resolved_at"] is not None
    (report_step, step) = steps(city, case["id"])
    listed = city.client.get(f"/incidents/{case['id']}", headers=inspector).json()
    assert listed["allowed_actions"] == []
    assert report_step[0] == "report"
    assert step[:3] == ("self_close", "reported", "closed")
    assert step[3] == report_step[3] and step[4] == "swept on the spot"


def test_refused_for_others_and_without_note_or_photo(city: City) -> None:
    reporter = city.key("inspector", 101)
    case = report(city, reporter, [PHOTO])
    refusals = [
        (city.key("inspector"), "done", 403, "not_your_report"),  # another inspector
        (city.key("inspector", 102), "done", 403, "not_your_case"),  # another cell's
        (city.key("dispatcher"), "done", 403, "role_not_allowed"),
        (city.key("editor"), "done", 403, "role_not_allowed"),
        (city.key("admin"), "done", 403, "role_not_allowed"),
        (reporter, None, 400, "note_required"),
        (reporter, "  ", 400, "note_required"),
    ]
    for key, note, status, code in refusals:
        r = act(city, case, key, note=note)
        assert (r.status_code, r.json()["code"]) == (status, code), r.text
    app_case = report(city, city.key("app"), [PHOTO])
    r = act(city, app_case, reporter)
    assert (r.status_code, r.json()["code"]) == (403, "not_your_report")
    bare = report(city, reporter)
    r = act(city, bare, reporter)
    assert (r.status_code, r.json()["code"]) == (400, "photo_required")
    offered = city.client.get(f"/incidents/{case['id']}", headers=reporter).json()
    assert "self_close" in [a["action"] for a in offered["allowed_actions"]]
    for other in (city.key("inspector"), city.key("admin")):
        offered = city.client.get(f"/incidents/{case['id']}", headers=other).json()
        assert "self_close" not in [a["action"] for a in offered["allowed_actions"]]
    for c in (case, app_case, bare):
        assert [s[0] for s in steps(city, c["id"])] == ["report"]
        assert city.value("SELECT status FROM incidents WHERE id = %s", (c["id"],)) == "reported"


def test_only_from_reported(city: City) -> None:
    reporter = city.key("inspector", 101)
    case = report(city, reporter, [PHOTO])
    r = act(city, case, city.key("dispatcher"), action="register")
    assert r.status_code == 200
    registered = r.json()
    r = act(city, registered, reporter)
    assert r.status_code == 409 and r.json()["code"] == "illegal_transition"
    assert "self_close" not in r.json()["details"]["allowed"]
