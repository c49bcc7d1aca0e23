"""Benchmark of sensor ingest: HTTP batches, the MQTT stream, and the size of the readings.

Run: ``flock /tmp/cityhex-bench.lock .venv/bin/python tests/bench/bench_ingest.py``

It makes a throwaway PostGIS cluster in /tmp (default, durable settings), registers 500
sensors with thresholds, and then:

- HTTP: posts pre-encoded batches of 50,000 readings to a real ``cityhex serve`` and prints
  the sustained rate (new readings, then the same batches again as duplicates);
- size: pg_total_relation_size of the readings partitions per million readings;
- MQTT: publishes readings to a real Mosquitto (one reading per message, then 100 per
  message) and times ``cityhex ingest mqtt`` storing them, live (publisher and ingester
  running together) and draining a backlog the broker queued while it was stopped.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
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

from layers.db.keys import create_key
from tests.bench.common import throwaway_cluster
from tests.helpers import Mosquitto, create_database, running_broker, running_server

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


def mqtt_messages(rows: list[dict], per_message: int) -> list[tuple[str, bytes]]:
    """The rows as (topic, payload): on the sensor's topic when a message holds one sensor,
    else as a gateway's ``{"readings": [...]}`` naming each row's sensor."""
    messages = []
    for i in range(0, len(rows), per_message):
        chunk = rows[i : i + per_message]
        sensor = chunk[0]["sensor"]
        if all(r["sensor"] == sensor for r in chunk):
            payload = [{k: v for k, v in r.items() if k != "sensor"} for r in chunk]
            messages.append((f"city/sensors/{sensor}/readings", orjson.dumps(payload)))
        else:
            messages.append(("city/sensors/gateway/readings", orjson.dumps({"readings": chunk})))
    return messages


def start_ingester(broker: Mosquitto, url: str) -> subprocess.Popen[bytes]:
    """``cityhex ingest mqtt`` on the broker (its session persists between runs)."""
    env = {**os.environ, "CITYHEX_DATABASE_URL": url}
    cmd = [sys.executable, "-m", "spatial_api", "ingest", "mqtt", "--broker", broker.url]
    return subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL)


def stop(ingester: subprocess.Popen[bytes]) -> None:
    """Stop the ingester the way an operator does (SIGTERM)."""
    ingester.send_signal(signal.SIGTERM)
    ingester.wait(timeout=30)


def wait_count(url: str, target: int) -> None:
    """Wait until ``target`` readings are stored."""
    while count_readings(url) < target:
        time.sleep(0.02)


def report_mqtt(what: str, rows: int, messages: int, seconds: float) -> None:
    """Print one MQTT line."""
    print(
        f"MQTT {what}: {rows:,} readings in {messages:,} messages in {seconds:.2f} s = "
        f"{rows / seconds:,.0f} readings/s, {messages / seconds:,.0f} messages/s",
        flush=True,
    )


def bench_mqtt(url: str, plan: list, readings: int, per_message: int, first_minute: int) -> None:
    """Live: publish while the ingester runs, time until all are stored (the one Python
    publisher may be the limit). Backlog: publish while the ingester is stopped (the broker
    queues for its session), then time the ingester draining it."""
    minutes = readings // len(plan)
    live = batch_rows(plan, first_minute, minutes)
    backlog = batch_rows(plan, first_minute + minutes, minutes)
    with running_broker() as broker:
        ingester = start_ingester(broker, url)
        time.sleep(3)  # connected and subscribed: the session exists from now on
        target = count_readings(url) + len(live)
        messages = mqtt_messages(live, per_message)
        t0 = time.perf_counter()
        publish(broker, messages)
        wait_count(url, target)
        report_mqtt(
            f"live, {per_message}/message", len(live), len(messages), time.perf_counter() - t0
        )
        stop(ingester)
        messages = mqtt_messages(backlog, per_message)
        publish(broker, messages)
        target += len(backlog)
        before = count_readings(url)
        ingester = start_ingester(broker, url)
        while (first := count_readings(url)) == before:
            time.sleep(0.01)
        t0 = time.perf_counter()  # the first batch is in: count what came after it
        wait_count(url, target)
        seconds = time.perf_counter() - t0
        stop(ingester)
    rows = target - first
    report_mqtt(f"backlog drain, {per_message}/message", rows, rows // per_message, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=21, help="HTTP batches of 50,000")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--clients", type=int, default=2, help="concurrent HTTP clients")
    parser.add_argument(
        "--mqtt-readings", type=int, default=50_000, help="one per message (x5 at 100 each)"
    )
    args = parser.parse_args()
    with throwaway_cluster("ingest") as (cluster, _home):
        url = create_database(cluster.start(), "bench_ingest")
        plan = register_sensors(url)
        bench_http(url, plan, args.batches, args.workers, args.clients)
        table_size(url)
        minute = args.batches * BATCH // SENSORS
        bench_mqtt(url, plan, args.mqtt_readings, 1, minute)
        minute += 2 * (args.mqtt_readings // SENSORS)
        bench_mqtt(url, plan, 5 * args.mqtt_readings, 100, minute)


if __name__ == "__main__":
    main()
