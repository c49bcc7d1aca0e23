"""Several servers: /events on any server delivers the events of writes made through any
other (each server LISTENs on the primary), checked against incident_transitions."""

from __future__ import annotations

import json
import threading

import httpx
import psycopg
import pytest

from tests.helpers import City, running_server
from tests.incidents.test_events import POINT, read_events


@pytest.mark.subprocess
def test_every_server_streams_the_events_of_writes_through_the_other(city: City) -> None:
    key, dispatcher = city.key("app"), city.key("dispatcher")
    with running_server(city.url) as a, running_server(city.url) as b:
        streams: dict[str, list] = {a: [], b: []}
        readers = []
        for base, got in streams.items():
            ready = threading.Event()
            reader = threading.Thread(target=read_events, args=(base, key, 2, got, ready))
            reader.start()
            assert ready.wait(10)
            readers.append(reader)
        case = httpx.post(f"{a}/incidents", json={"category": "0107", **POINT}, headers=key)
        assert case.status_code == 201, case.text
        step = httpx.post(
            f"{b}/incidents/{case.json()['id']}/transitions",
            json={"action": "register"},
            headers={**dispatcher, "If-Match": '"1"'},
        )
        assert step.status_code == 200, step.text
        for reader in readers:
            reader.join(20)
    with psycopg.connect(city.url) as conn:
        truth = [
            str(i)
            for (i,) in conn.execute(
                "SELECT id FROM incident_transitions WHERE incident_id = %s ORDER BY id",
                (case.json()["id"],),
            )
        ]
    for got in streams.values():
        assert [m["id"] for m in got] == truth
        assert [json.loads(m["data"])["incident_id"] for m in got] == [case.json()["id"]] * 2
