"""Load benchmark of incident reports: a steady rate against a real ``cityhex serve``.

Run: ``flock /tmp/cityhex-bench.lock .venv/bin/python tests/bench/bench_incidents.py``
(``--rate 200 --seconds 30 --workers 2 --scale 0.25`` by default).

It makes a throwaway PostGIS cluster in /tmp, loads the demo city (etl.demo.loader.load_demo),
starts the server, and sends POST /incidents at a fixed rate (open loop: each request leaves
at its own time whatever the others do), each with a unique description, at random points of
the city's grid in random categories. Then it checks that every request was answered 201,
that the database holds each report exactly once, and that each case went to the inspector
and department that /grid/lookup gives for its point and category; it prints the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import h3
import httpx
import numpy as np
import orjson
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from layers.db.keys import create_key
from tests.bench.common import throwaway_city
from tests.helpers import running_server

KEEP_ALIVE_S = 2.0


@dataclass
class Shot:
    """One report: what was sent, when, and what came back."""

    n: int
    lon: float
    lat: float
    category: str
    status: int = 0
    seconds: float = 0.0
    lag: float = 0.0
    body: dict | None = None


def targets(url: str, count: int, seed: int) -> list[tuple[float, float, str]]:
    """``count`` (lon, lat, category): points inside random grid cells that have an inspector."""
    rng = np.random.default_rng(seed)
    with psycopg.connect(url) as conn:
        cells = [
            r[0] for r in conn.execute("SELECT h3 FROM grid_cells WHERE inspector_id IS NOT NULL")
        ]
        categories = [r[0] for r in conn.execute("SELECT code FROM incident_categories")]
    out = []
    for cell in rng.choice(np.array(cells, dtype=np.int64), count):
        lat, lon = h3.cell_to_latlng(h3.int_to_str(int(cell)))
        jitter_lon, jitter_lat = rng.uniform(-0.0002, 0.0002, 2)
        if h3.latlng_to_cell(lat + jitter_lat, lon + jitter_lon, 10) == h3.int_to_str(int(cell)):
            lon, lat = lon + jitter_lon, lat + jitter_lat
        out.append((float(lon), float(lat), str(rng.choice(categories))))
    return out


class Connection:
    """A keep-alive HTTP/1.1 connection that posts JSON: far lighter than a general client,
    so the load generator leaves the cores to the server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.used = time.perf_counter()

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        """A new connection to host:port."""
        return cls(*await asyncio.open_connection(host, port))

    async def post(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        """Send ``head`` (request line and headers, without Content-Length) and ``body``."""
        self.writer.write(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        response = await self.reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"(?i)content-length:\s*(\d+)", response)
        payload = await self.reader.readexactly(int(length.group(1)) if length else 0)
        self.used = time.perf_counter()
        return int(response[9:12]), payload


async def fire(
    base: str, key: dict[str, str], plan: list[tuple[float, float, str]], rate: float, tag: str
) -> tuple[list[Shot], float]:
    """Send every planned report at its slot (n / rate seconds after the start), each on an
    idle keep-alive connection or a new one."""
    host, port = base.removeprefix("http://").split(":")
    head = (
        f"POST /incidents HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Authorization: {key['Authorization']}\r\n"
    ).encode()
    idle: list[Connection] = []

    async def connection() -> Connection:
        """The most recently used idle connection, or a new one: never one idle so long
        that the server may have closed it (uvicorn drops keep-alives after 5 s)."""
        while idle:
            conn = idle.pop()
            if time.perf_counter() - conn.used < KEEP_ALIVE_S:
                return conn
            conn.writer.close()
        return await Connection.open(host, int(port))

    shots = [Shot(n, lon, lat, cat) for n, (lon, lat, cat) in enumerate(plan)]

    async def one(shot: Shot, due: float) -> None:
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        conn = await connection()
        sent = time.perf_counter()
        shot.lag = sent - due
        body = orjson.dumps({"category": shot.category, "lon": shot.lon, "lat": shot.lat,
                             "description": f"{tag}-{shot.n}"})  # fmt: skip
        try:
            shot.status, payload = await conn.post(head, body)
            shot.body = orjson.loads(payload)
            idle.append(conn)
        except (OSError, asyncio.IncompleteReadError) as exc:
            shot.status, shot.body = -1, {"error": repr(exc)}
        shot.seconds = time.perf_counter() - sent

    start = time.perf_counter() + 0.5
    await asyncio.gather(*(one(s, start + s.n / rate) for s in shots))
    elapsed = time.perf_counter() - start
    for conn in idle:
        conn.writer.close()
    return shots, elapsed


async def lookups(base: str, key: dict[str, str], shots: list[Shot]) -> list[dict]:
    """What /grid/lookup says for each shot's point and category."""
    sem = asyncio.Semaphore(32)
    async with httpx.AsyncClient(base_url=base, headers=key, timeout=60) as http:

        async def one(shot: Shot) -> dict:
            async with sem:
                params = {"lon": shot.lon, "lat": shot.lat, "category": shot.category}
                r = await http.get("/grid/lookup", params=params)
                r.raise_for_status()
                return r.json()

        return await asyncio.gather(*(one(s) for s in shots))


def stored(url: str, tag: str) -> Counter:
    """How many stored cases carry each of this run's descriptions."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT description, count(*) FROM incidents WHERE description LIKE %s "
            "GROUP BY description",
            (f"{tag}-%",),
        ).fetchall()
    return Counter({d: n for d, n in rows})


def ms(samples: list[float], q: float) -> float:
    """The q-quantile of ``samples`` in milliseconds."""
    ordered = sorted(samples)
    return 1000 * ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def misrouted(shots: list[Shot], looked: list[dict]) -> int:
    """Reports whose inspector or department differs from /grid/lookup's answer."""
    bad = 0
    for shot, answer in zip(shots, looked, strict=True):
        body = shot.body or {}
        inspector = (answer.get("inspector") or {}).get("id")
        expected = (inspector, answer["department"]["id"])
        bad += (body.get("inspector_id"), body.get("department_id")) != expected
    return bad


def report(shots: list[Shot], elapsed: float, counts: Counter, tag: str) -> None:
    """Print the run's figures."""
    statuses = Counter(s.status for s in shots)
    latencies = [s.seconds for s in shots]
    sent = len(shots)
    lost = sum(1 for s in shots if counts.get(f"{tag}-{s.n}", 0) == 0)
    duplicated = sum(1 for n in counts.values() if n > 1)
    print(f"requests          {sent} in {elapsed:.1f} s = {sent / elapsed:.1f} /s offered")
    print(f"statuses          {dict(sorted(statuses.items()))}")
    print(f"latency           p50 {ms(latencies, 0.5):.1f} ms  p95 {ms(latencies, 0.95):.1f} ms"
          f"  p99 {ms(latencies, 0.99):.1f} ms  max {1000 * max(latencies):.1f} ms")  # fmt: skip
    print(f"send lag          max {1000 * max(s.lag for s in shots):.1f} ms "
          f"(how late the client sent its slowest request)")  # fmt: skip
    print(f"stored            {sum(counts.values())} rows, lost {lost}, duplicated {duplicated}")
    print(f"mean latency      {1000 * statistics.fmean(latencies):.1f} ms")


def main() -> None:
    """Make the cluster, load the demo city, run the load, check and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scale", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=6)
    args = parser.parse_args()
    with throwaway_city("incidents", args.scale) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            key = {"Authorization": f"Bearer {create_key(conn, 'app', 'bench')}"}
        plan = targets(url, round(args.rate * args.seconds), args.seed)
        tag = f"bench-{uuid.uuid4().hex[:8]}"
        with running_server(url, workers=args.workers) as base:
            shots, elapsed = asyncio.run(fire(base, key, plan, args.rate, tag))
            report(shots, elapsed, stored(url, tag), tag)
            wrong = misrouted(shots, asyncio.run(lookups(base, key, shots)))
            print(f"routing           {len(shots) - wrong} of {len(shots)} match /grid/lookup")


if __name__ == "__main__":
    main()
