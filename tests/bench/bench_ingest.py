"""Benchmark of sensor ingest: HTTP batches, the MQTT stream, and the size of the readings.

Run: ``flock /tmp/cityhex-bench.lock .venv/bin/python tests/bench/bench_ingest.py``

It makes a throwaway PostGIS cluster in /tmp (default, durable settings), registers 500
sensors with thresholds, and then:

- HTTP: posts pre-encoded batches of 50,000 readings to a real ``cityhex serve`` and prints
  the sustained rate (new readings, then the same batches again as duplicates);
- size: pg_total_relation_size of the readings partitions per million readings;
- MQTT: publishes readings to a real Mosquitto (one reading per message, then 100 per
  message) and times until ``cityhex ingest mqtt`` has stored them all.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import orjson
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from layers.embedded import EmbeddedCluster, free_port
from layers.keys import create_key
from tests.mosquitto import Mosquitto, running_broker
from tests.support import create_database, running_server

SENSORS = 500
BATCH = 50_000
KINDS = {  # kind: (property, unit, min, max, warning, alarm, hysteresis, typical value)
    "air_quality": ("pm25", "µg/m³", 0, 1000, 75, 115, 5, 35),
    "noise": ("laeq", "dB(A)", 20, 140, 70, 80, 2, 55),
    "water_level": ("level_m", "m", 0, 10, 1.2, 1.6, 0.05, 0.2),
    "manhole_cover": ("tilt_deg", "deg", 0, 90, 5, 15, 1, 1),
}
START = datetime(2026, 6, 1, tzinfo=UTC)


def register_sensors(url: str) -> list[tuple[str, str, float]]:
    """SENSORS sensors spread over the kinds; (code, property, typical value) of each."""
    plan = []
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        for i in range(SENSORS):
            kind = list(KINDS)[i % len(KINDS)]
            prop, unit, lo, hi, warn, alarm, hyst, typical = KINDS[kind]
            code = f"B-{i:04d}"
            measures = {prop: {"unit": unit, "min": lo, "max": hi}}
            thresholds = {prop: {"warning": warn, "alarm": alarm, "hysteresis": hyst}}
            cur.execute(
                "INSERT INTO sensors (code, kind, measures, thresholds, geom) VALUES "
                "(%s, %s, %s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326))",
                (
                    code,
                    kind,
                    orjson.dumps(measures).decode(),
                    orjson.dumps(thresholds).decode(),
                    114.0 + (i % 25) * 0.01,
                    22.5 + (i // 25) * 0.01,
                ),
            )
            plan.append((code, prop, typical))
    return plan


def batch_rows(plan: list[tuple[str, str, float]], first_minute: int, minutes: int) -> list[dict]:
    """One reading per sensor per minute, from ``first_minute`` after START."""
    rng = np.random.default_rng(first_minute)
    noise = rng.uniform(0.8, 1.2, size=(minutes, len(plan)))
    return [
        {
            "sensor": code,
            "property": prop,
            "ts": (START + timedelta(minutes=first_minute + m)).isoformat(),
            "value": round(typical * float(noise[m, j]), 3),
        }
        for m in range(minutes)
        for j, (code, prop, typical) in enumerate(plan)
    ]


def post_all(base: str, key: str, bodies: list[bytes], clients: int) -> tuple[float, int]:
    """Post every body with ``clients`` concurrent clients; (seconds, rows accepted)."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def post(body: bytes) -> int:
        with httpx.Client(timeout=120) as http:
            r = http.post(base + "/sensors/readings", content=body, headers=headers)
        r.raise_for_status()
        return r.json()["accepted"]

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        accepted = sum(pool.map(post, bodies))
    return time.perf_counter() - t0, accepted


def bench_http(url: str, plan: list, batches: int, workers: int, clients: int) -> None:
    """Sustained HTTP ingest rate: new readings, then the same batches again."""
    minutes = BATCH // len(plan)
    bodies = [orjson.dumps(batch_rows(plan, b * minutes, minutes)) for b in range(batches)]
    with psycopg.connect(url, autocommit=True) as conn:
        key = create_key(conn, "app", "bench")
    with running_server(url, workers=workers) as base:
        post_all(base, key, bodies[:1], 1)  # warm-up (and the month's partition)
        seconds, accepted = post_all(base, key, bodies[1:], clients)
        rows = BATCH * (batches - 1)
        print(
            f"HTTP ingest, {workers} worker(s), {clients} client(s): {rows:,} new readings in "
            f"{seconds:.2f} s = {rows / seconds:,.0f} readings/s (accepted {accepted:,})",
            flush=True,
        )
        seconds, accepted = post_all(base, key, bodies[1:], clients)
        print(
            f"HTTP ingest of the same batches again: {rows / seconds:,.0f} readings/s "
            f"(accepted {accepted}, all duplicates)",
            flush=True,
        )


def table_size(url: str) -> None:
    """Bytes of the readings partitions (heap, index, TOAST) per million readings."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE readings")
        size, count = conn.execute(
            "SELECT (SELECT sum(pg_total_relation_size(name::regclass))::bigint "
            "FROM readings_partitions()), (SELECT count(*) FROM readings)"
        ).fetchone()
    print(
        f"readings: {count:,} rows, {size / 2**20:,.1f} MiB = "
        f"{size / count * 1e6 / 2**20:,.1f} MiB per million readings "
        f"({size / count:,.1f} bytes per reading)",
        flush=True,
    )


def count_readings(url: str) -> int:
    """How many readings are stored."""
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM readings").fetchone()[0]


def publish(broker: Mosquitto, messages: list[tuple[str, bytes]]) -> None:
    """Publish every (topic, payload) with QoS 1 and wait for the broker's PUBACKs."""
    done = threading.Semaphore(0)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-publisher")
    client.on_publish = lambda *_: done.release()
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    for topic, payload in messages:
        client.publish(topic, payload, qos=1)
    for _ in messages:
        done.acquire()
    client.disconnect()
    client.loop_stop()


def bench_mqtt(url: str, plan: list, readings: int, per_message: int, first_minute: int) -> None:
    """Time from the first publish until the ingester has stored ``readings`` readings."""
    rows = batch_rows(plan, first_minute, readings // len(plan))
    messages = []
    for i in range(0, len(rows), per_message):
        chunk = rows[i : i + per_message]
        sensor = chunk[0]["sensor"]
        payload = [{k: v for k, v in r.items() if k != "sensor"} for r in chunk]
        if all(r["sensor"] == sensor for r in chunk):
            messages.append((f"city/sensors/{sensor}/readings", orjson.dumps(payload)))
        else:
            messages.append(("city/sensors/any/readings", orjson.dumps({"readings": chunk})))
    with running_broker() as broker:
        env = {**os.environ, "CITYHEX_DATABASE_URL": url}
        cmd = [sys.executable, "-m", "spatial_api", "ingest", "mqtt", "--broker", broker.url]
        ingester = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL)
        try:
            time.sleep(3)  # connected and subscribed
            before = count_readings(url)
            t0 = time.perf_counter()
            publish(broker, messages)
            published = time.perf_counter() - t0
            while count_readings(url) < before + len(rows):
                time.sleep(0.05)
            seconds = time.perf_counter() - t0
        finally:
            ingester.send_signal(signal.SIGTERM)
            ingester.wait(timeout=30)
    print(
        f"MQTT ingest, {per_message} reading(s)/message: {len(rows):,} readings in "
        f"{len(messages):,} messages stored in {seconds:.2f} s = {len(rows) / seconds:,.0f} "
        f"readings/s, {len(messages) / seconds:,.0f} messages/s "
        f"(publishing took {published:.2f} s)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=21, help="HTTP batches of 50,000")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--clients", type=int, default=2, help="concurrent HTTP clients")
    parser.add_argument("--mqtt-readings", type=int, default=100_000)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="cityhex-bench-ingest-", dir="/tmp"))
    os.chmod(home, 0o755)
    cluster = EmbeddedCluster(home, port=free_port())
    try:
        url = create_database(cluster.start(), "bench_ingest")
        plan = register_sensors(url)
        bench_http(url, plan, args.batches, args.workers, args.clients)
        table_size(url)
        minute = args.batches * BATCH // SENSORS
        bench_mqtt(url, plan, args.mqtt_readings // 5, 1, minute)
        minute += args.mqtt_readings // 5 // SENSORS
        bench_mqtt(url, plan, args.mqtt_readings, 100, minute)
    finally:
        cluster.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
