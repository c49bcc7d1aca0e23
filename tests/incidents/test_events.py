"""Every case change invalidates its tiles and is published on /events, on commit only."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from layers.catalog.changes import CHANNEL as CHANGES
from layers.incidents.events import CHANNEL as EVENTS
from tests.helpers import City, running_server

POINT = {"lon": 114.0447, "lat": 22.5366}


def notices(conn: psycopg.Connection) -> list[tuple[str, dict]]:
    """Every notification waiting on ``conn``."""
    return [(n.channel, json.loads(n.payload)) for n in conn.notifies(timeout=0.5, stop_after=50)]


@pytest.fixture
def listener(city: City) -> Iterator[psycopg.Connection]:
    with psycopg.connect(city.url, autocommit=True) as conn:
        conn.execute(f"LISTEN {CHANGES}")
        conn.execute(f"LISTEN {EVENTS}")
        yield conn


def test_report_and_transition_notify_tiles_and_events(
    city: City, listener: psycopg.Connection
) -> None:
    r = city.client.post("/incidents", json={"category": "0107", **POINT}, headers=city.key("app"))
    case = r.json()
    r = city.client.post(
        f"/incidents/{case['id']}/transitions",
        json={"action": "register", "note": "ok"},
        headers={**city.key("dispatcher"), "If-Match": '"1"'},
    )
    assert r.status_code == 200
    got = notices(listener)
    tiles = [p for ch, p in got if ch == CHANGES]
    events = [p for ch, p in got if ch == EVENTS and p["incident_id"] == case["id"]]
    assert tiles == [{"layer": "incidents", "bboxes": [[POINT["lon"], POINT["lat"]] * 2]}] * 2
    assert [(e["type"], e["action"], e["from"], e["to"]) for e in events] == [
        ("incident.created", "report", None, "reported"),
        ("incident.transitioned", "register", "reported", "registered"),
    ]
    with psycopg.connect(city.url) as conn:
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM incident_transitions WHERE incident_id = %s ORDER BY id",
                (case["id"],),
            )
        ]
    assert [e["event_id"] for e in events] == ids
    assert events[1]["note"] == "ok" and events[0]["cell"] == case["cell"]


def test_refused_requests_notify_nothing(city: City, listener: psycopg.Connection) -> None:
    key = city.key("app")
    city.client.post("/incidents", json={"category": "0107", "lon": 0.0, "lat": 0.0}, headers=key)
    r = city.client.post("/incidents", json={"category": "0107", **POINT}, headers=key)
    notices(listener)
    city.client.post(
        f"/incidents/{r.json()['id']}/transitions",
        json={"action": "close"},
        headers={**city.key("dispatcher"), "If-Match": '"1"'},
    )
    assert notices(listener) == []


def read_events(base: str, headers: dict, count: int, out: list, ready: threading.Event) -> None:
    """Collect ``count`` SSE messages (event, id, data) from /events; ``ready`` once live."""
    with httpx.stream("GET", f"{base}/events", headers=headers, timeout=30) as response:
        message: dict = {}
        for line in response.iter_lines():
            if line.startswith(": live"):
                ready.set()
                continue
            if not line:
                if "data" in message:
                    out.append(message)
                    if len(out) == count:
                        return
                message = {}
                continue
            field, _, value = line.partition(":")
            message[field] = value.strip()


@pytest.mark.subprocess
def test_sse_stream_and_replay_after_last_event_id(city: City) -> None:
    key, dispatcher = city.key("app"), city.key("dispatcher")
    with running_server(city.url) as base:
        got: list = []
        ready = threading.Event()
        reader = threading.Thread(target=read_events, args=(base, key, 2, got, ready))
        reader.start()
        assert ready.wait(10)
        r = httpx.post(f"{base}/incidents", json={"category": "0107", **POINT}, headers=key)
        case = r.json()
        r = httpx.post(
            f"{base}/incidents/{case['id']}/transitions",
            json={"action": "register"},
            headers={**dispatcher, "If-Match": '"1"'},
        )
        reader.join(20)
        assert [m["event"] for m in got] == ["incident.created", "incident.transitioned"]
        assert [json.loads(m["data"])["incident_id"] for m in got] == [case["id"]] * 2
        replay: list = []
        ready = threading.Event()
        headers = {**key, "Last-Event-ID": got[0]["id"]}
        reader = threading.Thread(target=read_events, args=(base, headers, 1, replay, ready))
        reader.start()
        reader.join(20)
        assert [(m["id"], m["event"]) for m in replay] == [(got[1]["id"], got[1]["event"])]
        assert httpx.get(f"{base}/events").status_code == 401
        bad = httpx.get(f"{base}/events", params={"types": "x"}, headers=key)
        assert bad.status_code == 400
