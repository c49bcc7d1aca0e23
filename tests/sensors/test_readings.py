"""Batch ingest over HTTP (idempotence, per-row validation, all or nothing), series in time
buckets checked against numpy, the live values of the sensors layer, and retention."""

from __future__ import annotations

import itertools
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import psycopg
import pytest
from fastapi.testclient import TestClient

T0 = datetime(2026, 10, 30, 22, 0, tzinfo=UTC)
URL = "/sensors/readings"


def sensor(code: str, kind: str = "noise") -> dict:
    """A noise sensor without thresholds (these tests are not about alarms)."""
    return {
        "code": code,
        "kind": kind,
        "lon": 114.02,
        "lat": 22.53,
        "measures": {"laeq": {"unit": "dB(A)", "min": 20, "max": 140}},
    }


@pytest.fixture(scope="module")
def app_key(key) -> dict[str, str]:
    return key("app")


@pytest.fixture(scope="module")
def sensors(client: TestClient, key) -> list[int]:
    admin = key("admin")
    ids = []
    for code in ("RD-1", "RD-2", "RD-3"):
        r = client.post("/sensors", json=sensor(code), headers=admin)
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    return ids


def stored(conn: psycopg.Connection, sensor_id: int) -> int:
    return conn.execute(
        "SELECT count(*) FROM readings WHERE sensor_id = %s", (sensor_id,)
    ).fetchone()[0]


def test_same_batch_twice_is_stored_once(
    client: TestClient, app_key: dict[str, str], sensors: list[int], conn: psycopg.Connection
) -> None:
    # 3 sensors x 200 ten-minute readings, crossing a month boundary (two partitions).
    batch = [
        {
            "sensor": code,
            "property": "laeq",
            "ts": (T0 + timedelta(minutes=10 * i)).isoformat(),
            "value": 40 + (i % 50),
        }
        for code in ("RD-1", "RD-2", "RD-3")
        for i in range(200)
    ]
    first = client.post("/sensors/readings", json=batch, headers=app_key)
    assert first.status_code == 200, first.text
    assert first.json()["accepted"] == 600 and first.json()["duplicate"] == 0
    again = client.post("/sensors/readings", json={"readings": batch}, headers=app_key)
    assert again.json()["accepted"] == 0 and again.json()["duplicate"] == 600
    for sensor_id in sensors:
        assert stored(conn, sensor_id) == 200
    keys = conn.execute(
        "SELECT count(*), count(DISTINCT (sensor_id, property, ts)), "
        "count(DISTINCT tableoid) FROM readings WHERE sensor_id = ANY(%s)",
        (sensors,),
    ).fetchone()
    assert keys == (600, 600, 2)


def test_bad_rows_are_reported_and_good_rows_stored(
    client: TestClient, app_key: dict[str, str], sensors: list[int], conn: psycopg.Connection
) -> None:
    ts = datetime(2026, 9, 1, tzinfo=UTC)
    good = [
        {
            "sensor": "RD-2",
            "property": "laeq",
            "ts": (ts + timedelta(hours=i)).isoformat(),
            "value": 55.5,
        }
        for i in range(5)
    ]
    bad = [
        (
            {"sensor": "NOPE", "property": "laeq", "ts": ts.isoformat(), "value": 50},
            "unknown_sensor",
        ),
        (
            {"sensor": "RD-2", "property": "pm25", "ts": ts.isoformat(), "value": 50},
            "unknown_property",
        ),
        (
            {"sensor": "RD-2", "property": "laeq", "ts": "yesterday", "value": 50},
            "invalid_timestamp",
        ),
        (
            {"sensor": "RD-2", "property": "laeq", "ts": "2026-09-01T00:00:00", "value": 50},
            "invalid_timestamp",
        ),
        (
            {"sensor": "RD-2", "property": "laeq", "ts": "2099-01-01T00:00:00Z", "value": 50},
            "invalid_timestamp",
        ),
        (
            {"sensor": "RD-2", "property": "laeq", "ts": "0001-01-01T00:00:00+14:00", "value": 50},
            "invalid_timestamp",
        ),
        ({"sensor": "RD-2", "property": "laeq", "ts": 1e300, "value": 50}, "invalid_timestamp"),
        (
            {"sensor": "RD-2", "property": "laeq", "ts": ts.isoformat(), "value": 141},
            "out_of_range",
        ),
        ({"sensor": "RD-2", "property": "laeq", "ts": ts.isoformat(), "value": 3}, "out_of_range"),
        (
            {"sensor": "RD-2", "property": "laeq", "ts": ts.isoformat(), "value": "loud"},
            "malformed",
        ),
        ({"sensor": "RD-2", "property": "laeq", "ts": ts.isoformat()}, "malformed"),
        (
            {"sensor": ["RD-2"], "property": "laeq", "ts": ts.isoformat(), "value": 50},
            "unknown_sensor",
        ),
        ("not an object", "malformed"),
    ]
    rows = [*good[:2], *(b for b, _ in bad), *good[2:]]
    body = orjson.dumps(rows)
    # Non-finite values are not JSON; clients that send them anyway get the row refused.
    nan_row = b'{"sensor": "RD-2", "property": "laeq", "ts": "2026-09-01T09:00:00Z", "value": NaN}'
    huge_row = nan_row.replace(b"NaN", b"1" + b"0" * 400)
    body = body[:-1] + b"," + nan_row + b"," + huge_row + b"]"
    r = client.post(
        "/sensors/readings", content=body, headers={**app_key, "content-type": "application/json"}
    )
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["accepted"] == 5 and report["rejected"] == len(bad) + 2
    expected = [(2 + i, code) for i, (_, code) in enumerate(bad)]
    expected += [(len(rows), "non_finite_value"), (len(rows) + 1, "non_finite_value")]
    assert [(x["index"], x["code"]) for x in report["rejections"]] == expected
    assert all(x["reason"] for x in report["rejections"])
    assert (
        conn.execute(
            "SELECT count(*) FROM readings WHERE sensor_id = %s AND ts >= %s AND ts < %s",
            (sensors[1], ts, ts + timedelta(days=1)),
        ).fetchone()[0]
        == 5
    )


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b'{"rows": []}', 400, "invalid_batch"),
        (b'"text"', 400, "invalid_batch"),
        (orjson.dumps([{}] * 50_001), 413, "payload_too_large"),
    ],
)
def test_malformed_batches_are_4xx(
    client: TestClient, app_key: dict[str, str], body: bytes, status: int, code: str
) -> None:
    r = client.post("/sensors/readings", content=body, headers=app_key)
    assert r.status_code == status and r.json()["code"] == code


def test_ingest_roles(client: TestClient, key) -> None:
    assert client.post("/sensors/readings", json=[]).status_code == 401
    assert client.post("/sensors/readings", json=[], headers=key("inspector")).status_code == 403
    assert client.post("/sensors/readings", json=[], headers=key("admin")).status_code == 200


def test_database_failure_writes_nothing(
    client: TestClient, app_key: dict[str, str], sensors: list[int], conn: psycopg.Connection
) -> None:
    # A trigger makes the database refuse one row in the middle of the batch.
    conn.execute(
        "CREATE FUNCTION refuse_4242() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.value = 42.42 THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$"
    )
    conn.execute(
        "CREATE TRIGGER refuse_4242 BEFORE INSERT ON readings "
        "FOR EACH ROW EXECUTE FUNCTION refuse_4242()"
    )
    ts = datetime(2026, 8, 1, tzinfo=UTC)
    batch = [
        {
            "sensor": "RD-3",
            "property": "laeq",
            "ts": (ts + timedelta(minutes=i)).isoformat(),
            "value": 42.42 if i == 500 else 60,
        }
        for i in range(1000)
    ]
    before = conn.execute("SELECT latest FROM sensors WHERE id = %s", (sensors[2],)).fetchone()
    try:
        r = client.post("/sensors/readings", json=batch, headers=app_key)
    finally:
        conn.execute("DROP TRIGGER refuse_4242 ON readings")
        conn.execute("DROP FUNCTION refuse_4242()")
    assert r.status_code >= 500 and r.json()["code"]
    assert (
        conn.execute(
            "SELECT count(*) FROM readings WHERE sensor_id = %s AND ts >= %s AND ts < %s",
            (sensors[2], ts, ts + timedelta(days=1)),
        ).fetchone()[0]
        == 0
    )
    assert (
        conn.execute("SELECT latest FROM sensors WHERE id = %s", (sensors[2],)).fetchone() == before
    )
    again = client.post("/sensors/readings", json=batch, headers=app_key).json()
    assert again["accepted"] == 1000


def test_latest_values_are_tile_attributes_and_announced(
    client: TestClient, app_key: dict[str, str], sensors: list[int], db_url: str
) -> None:
    with psycopg.connect(db_url, autocommit=True) as listener:
        listener.execute("LISTEN cityhex_changes")
        now = datetime.now(UTC).replace(microsecond=0)
        rows = [
            {
                "sensor": "RD-1",
                "property": "laeq",
                "ts": (now - timedelta(minutes=m)).isoformat(),
                "value": 70 + m,
            }
            for m in (3, 1, 2)
        ]
        assert client.post("/sensors/readings", json=rows, headers=app_key).json()["accepted"] == 3
        notices = [n.payload for n in listener.notifies(timeout=2, stop_after=1)]
    assert any('"layer":"sensors"' in p and "114.02" in p for p in notices)
    latest = client.get("/sensors/RD-1").json()["latest"]["laeq"]
    assert latest["value"] == 71 and datetime.fromisoformat(latest["ts"]) == now - timedelta(
        minutes=1
    )
    # A late reading (older than the latest) is stored but does not move the latest value.
    late = {
        "sensor": "RD-1",
        "property": "laeq",
        "ts": (now - timedelta(hours=1)).isoformat(),
        "value": 99,
    }
    assert client.post("/sensors/readings", json=[late], headers=app_key).json()["accepted"] == 1
    assert client.get("/sensors/RD-1").json()["latest"]["laeq"]["value"] == 71


def test_series_buckets_match_numpy(
    client: TestClient, app_key: dict[str, str], sensors: list[int], conn: psycopg.Connection
) -> None:
    rng = np.random.default_rng(7)
    start = datetime(2026, 7, 1, tzinfo=UTC)
    seconds = np.sort(rng.choice(3 * 86400, size=4000, replace=False))
    values = np.round(rng.uniform(30, 120, size=seconds.size), 3)
    rows = [
        {
            "sensor": "RD-2",
            "property": "laeq",
            "ts": (start + timedelta(seconds=int(s))).isoformat(),
            "value": float(v),
        }
        for s, v in zip(seconds, values, strict=True)
    ]
    assert client.post("/sensors/readings", json=rows, headers=app_key).json()["accepted"] == 4000
    lo, hi = start + timedelta(hours=5, minutes=7), start + timedelta(days=2, hours=20)
    inside = (seconds >= (lo - start).total_seconds()) & (seconds < (hi - start).total_seconds())
    # buckets of the local wall clock: a 1d bucket is a local day (offsets fixed in July)
    zones = (("UTC", 0, "+00:00"), ("Asia/Shanghai", 8 * 3600, "+08:00"))
    zones += (("Asia/Kolkata", 19800, "+05:30"),)
    for (tz, offset, suffix), (bucket, width) in itertools.product(
        zones, (("5m", 300), ("1h", 3600), ("1d", 86400))
    ):
        r = client.get(
            f"/sensors/{sensors[1]}/readings",
            params={
                "property": "laeq",
                "from": lo.isoformat(),
                "to": hi.isoformat(),
                "bucket": bucket,
                "tz": tz,
            },
        )
        assert r.status_code == 200, r.text
        got = r.json()["buckets"]
        keys = (seconds[inside] + offset) // width
        expected = []
        for key in np.unique(keys):
            v = values[inside][keys == key]
            first = start + timedelta(seconds=int(key * width - offset))
            expected.append((first, v.min(), v.mean(), v.max(), v.size))
        assert len(got) == len(expected), (tz, bucket)
        for g, (t, mn, avg, mx, n) in zip(got, expected, strict=True):
            assert datetime.fromisoformat(g["start"]) == t and g["start"].endswith(suffix)
            assert (g["min"], g["max"], g["count"]) == (mn, mx, n)
            assert g["avg"] == pytest.approx(avg, rel=1e-12)
    raw = client.get(
        "/sensors/RD-2/readings", params={"from": lo.isoformat(), "to": hi.isoformat()}
    ).json()
    assert [x["value"] for x in raw["readings"]] == values[inside].tolist()


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/sensors/RD-2/readings", {"bucket": "2h"}, 400),
        ("/sensors/RD-2/readings", {"property": "pm25"}, 400),
        ("/sensors/RD-2/readings", {"from": "soon"}, 400),
        ("/sensors/RD-2/readings", {"from": "2026-02-01", "to": "2026-01-01"}, 400),
        ("/sensors/RD-2/readings", {"from": "2000-01-01", "to": "2026-01-01", "bucket": "5m"}, 400),
        ("/sensors/RD-2/readings", {"bucket": "1d", "tz": "Mars/Olympus"}, 400),
        ("/sensors/NOPE/readings", {}, 404),
    ],
)
def test_series_bad_requests(client: TestClient, path: str, params: dict, status: int) -> None:
    r = client.get(path, params=params)
    assert r.status_code == status and r.json()["status"] == status


@pytest.mark.subprocess
def test_prune_drops_whole_old_partitions(new_database) -> None:
    url = new_database("cityhex_prune")
    now = datetime.now(UTC)
    months = [now - timedelta(days=d) for d in (560, 470, 420, 380, 30, 0)]
    with psycopg.connect(url, autocommit=True) as conn:
        for m in months:
            conn.execute("SELECT readings_ensure_partition(%s::date)", (m.date(),))
            conn.execute(
                "INSERT INTO readings VALUES (1, 'laeq', %s, 1) ON CONFLICT DO NOTHING", (m,)
            )
        bounds = conn.execute("SELECT name, upper FROM readings_partitions()").fetchall()
    cutoff = now - timedelta(days=400)
    expected_gone = {name for name, upper in bounds if upper <= cutoff}
    assert expected_gone and len(expected_gone) < len(bounds)
    cli = [sys.executable, "-m", "spatial_api", "readings", "prune", "--older-than", "400d"]
    env = {"CITYHEX_DATABASE_URL": url, "PATH": "/usr/bin:/bin"}
    out = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    with psycopg.connect(url) as conn:
        left = {r[0] for r in conn.execute("SELECT name FROM readings_partitions()")}
        oldest = conn.execute("SELECT min(ts) FROM readings").fetchone()[0]
    assert left == {name for name, _ in bounds} - expected_gone
    assert oldest > cutoff - timedelta(days=31)
    bad = subprocess.run(
        [*cli[:-1], "forever"], env=env, capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 1 and "invalid_age" in bad.stderr


def test_overlapping_concurrent_batches_store_each_reading_once(
    client: TestClient, app_key: dict[str, str], sensors: list[int], conn: psycopg.Connection
) -> None:
    ts = datetime(2026, 6, 1, tzinfo=UTC)
    rows = [
        {
            "sensor": f"RD-{s}",
            "property": "laeq",
            "ts": (ts + timedelta(seconds=i)).isoformat(),
            "value": 50,
        }
        for i in range(3000)
        for s in (1, 2, 3)
    ]
    batches = [rows, rows[::-1], rows[1000:] + rows[:1000], rows[::2]]
    with ThreadPoolExecutor(len(batches)) as pool:
        answers = list(
            pool.map(lambda b: client.post("/sensors/readings", json=b, headers=app_key), batches)
        )
    assert [a.status_code for a in answers] == [200] * len(batches)
    assert sum(a.json()["accepted"] for a in answers) == len(rows)
    assert conn.execute(
        "SELECT count(*) FROM readings WHERE sensor_id = ANY(%s) AND ts >= %s AND ts < %s",
        (sensors, ts, ts + timedelta(days=1)),
    ).fetchone()[0] == len(rows)
