"""Fixes over MQTT: ``cityhex ingest mqtt`` stores the fixes published on an inspector's
topic exactly as the fixes API does, once each even when they are published twice."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta

import orjson
import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from tests.helpers import running_broker
from tests.patrol import expected
from tests.patrol.conftest import PatrolCity

pytestmark = [pytest.mark.mosquitto, pytest.mark.subprocess]


def publish(port: int, messages: list[tuple[str, bytes]]) -> None:
    """Publish with QoS 1 and wait for every acknowledgement."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id="patrol-pub", protocol=MQTTProtocolVersion.MQTTv5
    )
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for topic, payload in messages:
            client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def stored(url: str, inspector: int) -> int:
    with psycopg.connect(url) as conn:
        (n,) = conn.execute(
            "SELECT count(*) FROM patrol_fixes WHERE inspector_id = %s", (inspector,)
        ).fetchone()
    return n


def test_fixes_published_twice_are_stored_once(patrol_city: PatrolCity) -> None:
    week = timedelta(days=7)
    track = [type(f)(f.ts - week, f.lon, f.lat, f.accuracy_m) for f in patrol_city.track]
    messages = [
        ("city/patrol/1/fixes", orjson.dumps({"fixes": [f.as_json() for f in track[lo : lo + 25]]}))
        for lo in range(0, len(track), 25)
    ]
    messages.append(("city/patrol/1/fixes", orjson.dumps(track[0].as_json())))  # a single fix
    messages.append(("city/patrol/x/fixes", b"[]"))  # names no inspector: refused
    before = stored(patrol_city.url, 1)
    with running_broker() as broker:
        cmd = [sys.executable, "-m", "spatial_api", "ingest", "mqtt", "--broker", broker.url]
        cmd += ["--topic", "city/sensors/+/readings", "--batch-seconds", "0.05"]
        env = {**os.environ, "CITYHEX_DATABASE_URL": patrol_city.url}
        ingester = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            probe = messages[-2]  # the first fix alone, until the ingester has subscribed
            deadline = time.monotonic() + 60
            while stored(patrol_city.url, 1) == before and time.monotonic() < deadline:
                publish(broker.port, [probe])
                time.sleep(1)
            publish(broker.port, messages + messages)
            deadline = time.monotonic() + 60
            while stored(patrol_city.url, 1) < before + len(track) and time.monotonic() < deadline:
                time.sleep(0.3)
            time.sleep(1)
        finally:
            ingester.terminate()
            _, errors = ingester.communicate(timeout=30)
    assert stored(patrol_city.url, 1) == before + len(track), errors.decode()[-2000:]
    # stored as the API stores them: the segments give shapely's on-duty time
    lo, hi = track[0].ts - timedelta(minutes=1), track[-1].ts + timedelta(minutes=1)
    r = patrol_city.client.get(
        "/patrol/coverage",
        params={"inspector": 1, "from": lo.isoformat(), "to": hi.isoformat()},
        headers=patrol_city.key("dispatcher"),
    )
    fixes = expected.counted(track, 50.0)
    want = expected.seconds_inside(fixes, timedelta(seconds=120), (lo, hi), patrol_city.assigned(1))
    assert r.json()["on_duty_minutes"] == pytest.approx(want / 60, abs=1e-6)
