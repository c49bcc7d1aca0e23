"""MQTT ingest against a real Mosquitto: the broker restarts and the ingester is killed
mid-stream, and every reading the broker acknowledged to the publisher is stored once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from tests.helpers import Mosquitto, running_broker

SENSORS = [f"MQ-{i}" for i in range(5)]
T0 = datetime(2026, 11, 2, tzinfo=UTC)
TOPIC = "city/sensors/+/readings"


@pytest.fixture(scope="module")
def sensor_ids(db_url: str) -> dict[str, int]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        return {
            code: conn.execute(
                "INSERT INTO sensors (code, kind, measures, geom) VALUES (%s, 'noise', "
                '\'{"laeq": {"unit": "dB(A)", "min": 20, "max": 140}}\', '
                "ST_SetSRID(ST_MakePoint(114.1, 22.6), 4326)) RETURNING id",
                (code,),
            ).fetchone()[0]
            for code in SENSORS
        }


def start_ingester(broker: Mosquitto, db_url: str, client_id: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "spatial_api", "ingest", "mqtt", "--broker", broker.url]
    cmd += ["--topic", TOPIC, "--client-id", client_id, "--batch-seconds", "0.05"]
    env = {**os.environ, "CITYHEX_DATABASE_URL": db_url}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Publisher:
    """A QoS 1 publisher that remembers which messages the broker acknowledged."""

    def __init__(self, broker: Mosquitto) -> None:
        self.acked: set[int] = set()
        self.sent: dict[int, list[tuple[str, datetime]]] = {}
        self.lock = threading.Lock()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"pub-{uuid.uuid4().hex[:8]}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self.client.on_publish = self._on_publish
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(1, 2)
        self.client.connect("127.0.0.1", broker.port, clean_start=False)
        self.client.loop_start()

    def _on_publish(self, _c, _u, mid: int, reason, _p) -> None:
        if not reason.is_failure:
            with self.lock:
                self.acked.add(mid)

    def publish(self, sensor: str, payload: object, keys: list[tuple[str, datetime]]) -> None:
        info = self.client.publish(f"city/sensors/{sensor}/readings", orjson.dumps(payload), qos=1)
        with self.lock:
            self.sent[info.mid] = keys

    def acknowledged(self) -> set[tuple[str, datetime]]:
        with self.lock:
            return {k for mid in self.acked for k in self.sent.get(mid, [])}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def stored_keys(db_url: str, ids: dict[str, int]) -> list[tuple[str, datetime]]:
    codes = {v: k for k, v in ids.items()}
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT sensor_id, ts FROM readings WHERE sensor_id = ANY(%s)", (list(ids.values()),)
        ).fetchall()
    return [(codes[s], ts) for s, ts in rows]


def wait_for(check, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def resumed(publisher: Publisher, since: datetime, db_url: str, ids: dict[str, int]) -> bool:
    """Whether readings acknowledged after ``since`` arrive in the database."""
    if not wait_for(lambda: any(k[1] > since for k in publisher.acknowledged()), 30):
        return False
    later = {k for k in publisher.acknowledged() if k[1] > since}
    return wait_for(lambda: later <= set(stored_keys(db_url, ids)), 30)


def reading(i: int) -> tuple[str, dict]:
    ts = T0 + timedelta(seconds=i)
    return SENSORS[i % len(SENSORS)], {
        "property": "laeq",
        "ts": ts.isoformat(),
        "value": 40 + i % 60,
    }


@pytest.mark.mosquitto
def test_restarts_lose_no_acknowledged_reading(db_url: str, sensor_ids: dict[str, int]) -> None:
    n = 3000
    with running_broker() as broker:
        client_id = f"ingest-{uuid.uuid4().hex[:8]}"
        ingester = start_ingester(broker, db_url, client_id)
        publisher = Publisher(broker)
        try:
            # The subscription must exist before the stream starts: wait for a probe to land.
            probe_sensor, probe = reading(-1)
            assert wait_for(
                lambda: (
                    publisher.publish(probe_sensor, probe, [])
                    or (probe_sensor, T0 - timedelta(seconds=1)) in stored_keys(db_url, sensor_ids)
                ),
                30,
            ), "the ingester never stored the probe"
            for i in range(n):
                sensor, row = reading(i)
                key = (sensor, datetime.fromisoformat(row["ts"]))
                if i % 10 == 0:  # some messages carry a bad row next to the good one
                    bad = {**row, "value": 999}
                    publisher.publish(sensor, [row, bad], [key])
                else:
                    publisher.publish(sensor, row, [key])
                if i % 7 == 0:  # and some are sent twice
                    publisher.publish(sensor, row, [key])
                if i == n // 3:
                    broker.restart()
                    restart_ts = key[1]
                if i == 2 * n // 3:
                    # The same ingester process reconnected and stored what came after the
                    # broker restart; then it dies without warning and a new one takes over.
                    assert resumed(publisher, restart_ts, db_url, sensor_ids), (
                        "the ingester did not resume after the broker restart"
                    )
                    assert ingester.poll() is None
                    ingester.send_signal(signal.SIGKILL)
                    ingester.wait()
                    ingester = start_ingester(broker, db_url, client_id)
                time.sleep(0.0005)
            publisher.publish("MQ-0", "not a reading", [])
            wait_for(lambda: len(publisher.acked) >= len(publisher.sent), 20)
            acked = publisher.acknowledged()
            assert len(acked) > n * 0.9, "the publisher got too few acknowledgements to judge"
            assert wait_for(lambda: acked <= set(stored_keys(db_url, sensor_ids)), 60), (
                f"{len(acked - set(stored_keys(db_url, sensor_ids)))} acknowledged readings missing"
            )
            stored = stored_keys(db_url, sensor_ids)
            assert len(stored) == len(set(stored))
            assert ingester.poll() is None, "the ingester died"
        finally:
            publisher.close()
            ingester.send_signal(signal.SIGTERM)
            assert ingester.wait(timeout=20) == 0
    with psycopg.connect(db_url) as conn:
        assert not conn.execute(
            "SELECT count(*) FROM readings WHERE sensor_id = ANY(%s) AND value > 140",
            (list(sensor_ids.values()),),
        ).fetchone()[0]
