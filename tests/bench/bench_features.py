"""Benchmark of OGC API Features and spatial queries on the demo city, over real HTTP.

Run: ``flock /tmp/cityhex-bench.lock .venv/bin/python tests/bench/bench_features.py``
(``--scale S`` for another demo size, ``--tipg`` to time the peer server tipg on the same
bboxes in the same run, through ../shared/bench/peer_tipg.sh).

It makes a throwaway PostGIS cluster in /tmp, loads the demo city (etl.demo.loader.load_demo),
starts ``cityhex serve`` (one worker) and times, one request at a time after a warm-up:

* ``GET /collections/assets/items?bbox=…&limit=1000`` on bboxes that each hold 1,000–1,100
  assets, so every response carries exactly 1,000 features (and numberMatched);
* ``GET /query/nearest?layer=assets&lon=…&lat=…&k=10`` at random points of the city.

It prints p50, p99 and mean latency in milliseconds and the mean response size.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from etl.demo.loader import load_demo  # noqa: E402
from layers.db.embedded import free_port  # noqa: E402
from tests.bench.common import throwaway_cluster  # noqa: E402
from tests.helpers import create_database, running_server  # noqa: E402

FAST_CONF = {"fsync": "off", "full_page_writes": "off", "synchronous_commit": "off"}
TARGET = (1_000, 1_100)
PEER = ROOT.parent / "shared" / "bench" / "peer_tipg.sh"


def bbox_holding(conn: psycopg.Connection, lon: float, lat: float) -> tuple | None:
    """A square bbox about (lon, lat) holding TARGET assets (binary search on its size)."""
    lo, hi = 1e-4, 0.2
    for _ in range(40):
        half = (lo + hi) / 2
        box = (lon - half, lat - half, lon + half, lat + half)
        n = conn.execute(
            "SELECT count(*) FROM assets WHERE ST_Intersects(geom, "
            "ST_MakeEnvelope(%s, %s, %s, %s, 4326))",
            box,
        ).fetchone()[0]
        if TARGET[0] <= n <= TARGET[1]:
            return box
        lo, hi = (half, hi) if n < TARGET[0] else (lo, half)
    return None


def pick_bboxes(url: str, count: int, rng: random.Random) -> list[tuple]:
    """``count`` bboxes about random assets, each holding 1,000–1,100 assets."""
    with psycopg.connect(url) as conn:
        seeds = conn.execute(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM assets "
            "ORDER BY random() LIMIT %s) s",
            (count * 3,),
        ).fetchall()
        boxes = []
        for lon, lat in seeds:
            box = bbox_holding(conn, lon, lat)
            if box:
                boxes.append(box)
            if len(boxes) == count:
                break
    rng.shuffle(boxes)
    return boxes


def pick_points(url: str, count: int, rng: random.Random) -> list[tuple[float, float]]:
    """``count`` random points within the assets' extent."""
    with psycopg.connect(url) as conn:
        x0, y0, x1, y1 = conn.execute(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
            "FROM (SELECT ST_Extent(geom) e FROM assets) s"
        ).fetchone()
    return [(rng.uniform(x0, x1), rng.uniform(y0, y1)) for _ in range(count)]


def timed(client: httpx.Client, urls: list[str], warmup: int) -> tuple[list[float], float]:
    """Latencies (ms) of GETting each URL in turn after ``warmup`` untimed ones; mean bytes."""
    for url in urls[:warmup]:
        client.get(url).raise_for_status()
    times, sizes = [], []
    for url in urls:
        start = time.perf_counter()
        r = client.get(url)
        times.append((time.perf_counter() - start) * 1000)
        r.raise_for_status()
        sizes.append(len(r.content))
    return times, statistics.fmean(sizes)


def summary(name: str, times: list[float], size: float) -> str:
    """One table row: p50, p99, mean (ms), mean bytes."""
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return (
        f"| {name} | {len(times)} | {statistics.median(times):.1f} | {p99:.1f} | "
        f"{statistics.fmean(times):.1f} | {size / 1024:.0f} KiB |"
    )


def check_counts(client: httpx.Client, base: str, boxes: list[tuple]) -> None:
    """Every bbox request returns 1,000 features (else the benchmark measures something else)."""
    for box in boxes[:5]:
        body = client.get(
            f"{base}/collections/assets/items",
            params={"bbox": ",".join(map(str, box)), "limit": 1000},
        ).json()
        assert body["numberReturned"] == 1000, body.get("numberReturned")


def run_tipg(url: str, boxes: list[tuple], requests: int, warmup: int) -> str | None:
    """The same bbox requests against tipg (peer server), if the kit is there."""
    if not PEER.exists():
        return None
    port = free_port()
    subprocess.run([str(PEER), url, str(port)], check=True, capture_output=True)
    try:
        base = f"http://127.0.0.1:{port}"
        urls = [
            f"{base}/collections/public.assets/items?bbox={','.join(map(str, b))}&limit=1000"
            for b in boxes
        ]
        urls = (urls * (requests // len(urls) + 1))[:requests]
        with httpx.Client(timeout=60) as client:
            times, size = timed(client, urls, warmup)
        return summary("tipg 1.6.1 items?bbox (1,000 features)", times, size)
    finally:
        subprocess.run([str(PEER), "stop", str(port)], check=False, capture_output=True)


def main() -> None:
    """Load the demo city, serve it, time the two requests, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--tipg", action="store_true", help="also time tipg on the same bboxes")
    args = parser.parse_args()
    rng = random.Random(42)
    with throwaway_cluster("features") as (cluster, _home):
        admin = cluster.start(extra_conf=FAST_CONF)
        url = create_database(admin, "bench_features")
        started = time.perf_counter()
        load_demo(url, args.scale, progress=False)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
            n_assets = conn.execute("SELECT count(*) FROM assets").fetchone()[0]
        print(
            f"demo city at scale {args.scale:g}: {n_assets} assets, loaded in "
            f"{time.perf_counter() - started:.0f} s"
        )
        boxes = pick_bboxes(url, 60, rng)
        points = pick_points(url, 200, rng)
        rows = []
        with running_server(url, workers=1) as base, httpx.Client(timeout=60) as client:
            check_counts(client, base, boxes)
            items = [
                f"{base}/collections/assets/items?bbox={','.join(map(str, b))}&limit=1000"
                for b in boxes
            ]
            items = (items * (args.requests // len(items) + 1))[: args.requests]
            times, size = timed(client, items, args.warmup)
            rows.append(summary("CityHex items?bbox (1,000 features)", times, size))
            nearest = [f"{base}/query/nearest?layer=assets&lon={x}&lat={y}&k=10" for x, y in points]
            nearest = (nearest * (args.requests // len(nearest) + 1))[: args.requests]
            times, size = timed(client, nearest, args.warmup)
            rows.append(summary("CityHex /query/nearest k=10", times, size))
        if args.tipg:
            peer = run_tipg(url, boxes, args.requests, args.warmup)
            if peer:
                rows.append(peer)
        print(
            f"\n{len(boxes)} bboxes of 1,000-1,100 assets, {len(points)} query points; "
            f"{args.requests} sequential requests each after {args.warmup} warm-up\n"
        )
        print("| request | n | p50 ms | p99 ms | mean ms | mean size |")
        print("|---|---|---|---|---|---|")
        print("\n".join(rows))


if __name__ == "__main__":
    main()
