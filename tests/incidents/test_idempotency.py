"""``Idempotency-Key`` on the POSTs an offline outbox replays: the same key from the same
caller creates one case (one transition) however often and however concurrently it is sent;
every claim is counted in the database with SQL."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.helpers import City

POINT = (114.04, 22.535)  # inspector 101's quarter of the test city


@pytest.fixture(scope="module")
def app_key(city: City) -> dict[str, str]:
    """An app key (may report and read cases)."""
    return city.key("app")


def report_body(marker: str) -> dict[str, Any]:
    """A report whose description is ``marker`` (to count its rows)."""
    return {"category": "0104", "description": marker, "lon": POINT[0], "lat": POINT[1]}


def cases_with(city: City, marker: str) -> int:
    """How many cases have the description ``marker``."""
    return city.value("SELECT count(*) FROM incidents WHERE description = %s", (marker,))


def post_report(city: City, key: dict, marker: str, idem: str) -> Any:
    return city.client.post(
        "/incidents", json=report_body(marker), headers={**key, "Idempotency-Key": idem}
    )


def test_a_retry_gets_the_first_answer_and_makes_no_second_case(city: City, app_key: dict) -> None:
    marker, idem = f"idem {uuid.uuid4()}", str(uuid.uuid4())
    first = post_report(city, app_key, marker, idem)
    second = post_report(city, app_key, marker, idem)
    assert first.status_code == second.status_code == 201, first.text
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert second.headers["etag"] == first.headers["etag"]
    assert cases_with(city, marker) == 1
    assert city.value("SELECT response_status FROM idempotency_keys WHERE key = %s", (idem,)) == 201


def test_concurrent_retries_make_one_case(city: City, app_key: dict) -> None:
    marker, idem = f"idem {uuid.uuid4()}", str(uuid.uuid4())
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: post_report(city, app_key, marker, idem), range(8)))
    assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    assert sum(a.headers.get("idempotent-replayed") == "true" for a in answers) == 7
    assert cases_with(city, marker) == 1


def test_the_key_with_another_body_is_refused_and_writes_nothing(city: City, app_key: dict) -> None:
    marker, idem = f"idem {uuid.uuid4()}", str(uuid.uuid4())
    assert post_report(city, app_key, marker, idem).status_code == 201
    other = post_report(city, app_key, marker + " changed", idem)
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    assert cases_with(city, marker) == 1
    assert cases_with(city, marker + " changed") == 0


def test_json_spacing_and_key_order_do_not_make_another_body(city: City, app_key: dict) -> None:
    marker, idem = f"idem {uuid.uuid4()}", str(uuid.uuid4())
    headers = {**app_key, "Idempotency-Key": idem, "Content-Type": "application/json"}
    lon, lat = POINT
    compact = f'{{"category":"0104","description":"{marker}","lon":{lon},"lat":{lat}}}'
    spaced = f'{{ "lat": {lat}, "lon": {lon}, "description": "{marker}", "category": "0104" }}'
    first = city.client.post("/incidents", content=compact, headers=headers)
    second = city.client.post("/incidents", content=spaced, headers=headers)
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["id"] == second.json()["id"]
    assert cases_with(city, marker) == 1


def test_each_caller_has_its_own_keys(city: City, app_key: dict) -> None:
    marker, idem = f"idem {uuid.uuid4()}", str(uuid.uuid4())
    other_key = city.key("app")
    one = post_report(city, app_key, marker, idem)
    two = post_report(city, other_key, marker, idem)
    assert one.json()["id"] != two.json()["id"]
    assert cases_with(city, marker) == 2


def test_a_failed_request_gives_its_key_up(city: City, app_key: dict) -> None:
    marker, idem = f"idem {uuid.uuid4()}", str(uuid.uuid4())
    bad = city.client.post(
        "/incidents",
        json={**report_body(marker), "category": "9999"},
        headers={**app_key, "Idempotency-Key": idem},
    )
    assert 400 <= bad.status_code < 500
    assert city.value("SELECT count(*) FROM idempotency_keys WHERE key = %s", (idem,)) == 0
    assert post_report(city, app_key, marker, idem).status_code == 201
    assert cases_with(city, marker) == 1


def test_an_expired_key_runs_again(city: City, app_key: dict) -> None:
    marker, idem = f"idem {uuid.uuid4()}", str(uuid.uuid4())
    assert post_report(city, app_key, marker, idem).status_code == 201
    city.execute(
        "UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = %s",
        (idem,),
    )
    again = post_report(city, app_key, marker, idem)
    assert again.status_code == 201
    assert "idempotent-replayed" not in again.headers
    assert cases_with(city, marker) == 2


@pytest.mark.parametrize("bad", ["", "a" * 256, "with space", "中文"])
def test_a_malformed_key_is_a_400_and_writes_nothing(city: City, app_key: dict, bad: str) -> None:
    marker = f"idem {uuid.uuid4()}"
    r = city.client.post(
        "/incidents",
        json=report_body(marker),
        headers={**app_key, "Idempotency-Key": bad.encode("utf-8")},  # type: ignore[dict-item]
    )
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "invalid_idempotency_key"
    assert cases_with(city, marker) == 0


def test_a_transition_retried_concurrently_is_taken_once(city: City, app_key: dict) -> None:
    marker = f"idem {uuid.uuid4()}"
    case = city.client.post("/incidents", json=report_body(marker), headers=app_key).json()
    dispatcher = city.key("dispatcher")
    headers = {**dispatcher, "If-Match": f'"{case["version"]}"', "Idempotency-Key": "t-1"}

    def register(_: int) -> Any:
        return city.client.post(
            f"/incidents/{case['id']}/transitions",
            json={"action": "register", "note": "retried"},
            headers=headers,
        )

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(register, range(6)))
    assert {a.status_code for a in answers} == {200}, [a.text for a in answers]
    assert {a.json()["status"] for a in answers} == {"registered"}
    steps = city.value(
        "SELECT count(*) FROM incident_transitions WHERE incident_id = %s AND action = 'register'",
        (case["id"],),
    )
    assert steps == 1


def test_an_oversized_body_is_a_413_and_writes_nothing(city: City, app_key: dict) -> None:
    marker = f"idem {uuid.uuid4()}"
    body = {**report_body(marker), "photos": ["https://example.org/" + "x" * 900] * 10_000}
    r = city.client.post(
        "/incidents", json=body, headers={**app_key, "Idempotency-Key": str(uuid.uuid4())}
    )
    assert r.status_code == 413, r.text
    assert cases_with(city, marker) == 0
