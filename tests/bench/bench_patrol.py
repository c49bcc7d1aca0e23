"""Benchmark of patrol: fix ingest over HTTP, and a day's coverage for every inspector.

Run: ``flock /tmp/cityhex-bench.lock .venv/bin/python tests/bench/bench_patrol.py``
(``--help`` for the sizes).

It makes a throwaway PostGIS cluster in /tmp, a synthetic grid (each inspector owns the 49
res-10 cells of one res-8 cell, so 2,000 inspectors own 98,000 cells) and, per inspector, a
walk at 1.2 m/s with a fix every 10 s that wanders around their territory (and now and then
out of it). Then:

- HTTP: ``cityhex serve`` takes batches of fixes from concurrent clients (one inspector per
  batch, as phones send them); it prints the sustained rate of new fixes, and the time
  ``GET /patrol/coverage`` takes for an inspector's whole day right after their last batch
  (median and worst of several inspectors);
- day: a day of fixes (one per 10 s) for ``--day-inspectors`` inspectors, stored through
  ``insert_fixes`` (what the fixes API runs) a day per transaction, then every one of those
  inspectors' coverage and on-duty time computed (``coverage_of`` over chunks of inspectors
  on ``--parallel`` connections). The full goal is 2,000 inspectors (about 17.3 M fixes) in
  60 s; a smaller run is extrapolated linearly in the number of fixes (the work is a sum over
  each inspector's stored segment pieces and fixes), and the script says so.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import h3
import httpx
import numpy as np
import orjson
import psycopg
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from layers.db.engine import create_async_engine
from layers.db.keys import create_key
from layers.db.migrate import migrate
from layers.patrol.coverage import coverage_of
from layers.patrol.fixes import ensure_partitions, insert_fixes
from tests.bench.common import throwaway_cluster
from tests.helpers import running_server

CENTRE = (22.55, 114.05)
STEP_S = 10
SPEED = 1.2
DAY = datetime(2026, 12, 1, tzinfo=UTC) - timedelta(hours=8)  # local midnight, Shenzhen
M_PER_DEG = 111_320.0


def territories(count: int) -> list[str]:
    """``count`` res-8 cells around the centre, one per inspector."""
    centre = h3.latlng_to_cell(*CENTRE, 8)
    k = 0
    while 3 * k * (k + 1) + 1 < count:
        k += 1
    return sorted(h3.grid_disk(centre, k))[:count]


def build_grid(url: str, parents: list[str]) -> None:
    """Users 1..n and the res-10 children of each inspector's res-8 cell, by COPY."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO districts (id, code, name, geom) VALUES (1, '440304', 'bench', "
            "ST_Multi(ST_MakeEnvelope(113.5, 22.0, 114.6, 23.1, 4326)))"
        )
        conn.execute(
            "INSERT INTO users (id, name, role, district_id) "
            "SELECT i, 'inspector ' || i, 'inspector', 1 FROM generate_series(1, %s) i",
            (len(parents),),
        )
        with conn.cursor().copy(
            "COPY grid_cells (h3, res, district_id, area_m2, inspector_id, geom) FROM STDIN"
        ) as copy:
            for i, parent in enumerate(parents, start=1):
                for cell in h3.cell_to_children(parent, 10):
                    ring = h3.cell_to_boundary(cell)
                    wkt = "POLYGON((" + ",".join(f"{x} {y}" for y, x in [*ring, ring[0]]) + "))"
                    copy.write_row((h3.str_to_int(cell), 10, 1, 15000, i, f"SRID=4326;{wkt}"))
        conn.execute("ANALYZE grid_cells")


def walks(parents: list[str], steps: int, seed: int = 16) -> np.ndarray:
    """Positions (inspector, step, lon/lat): a walk per inspector that turns back towards
    the middle of their territory when it strays more than 350 m from it."""
    rng = np.random.default_rng(seed)
    centres = np.array([h3.cell_to_latlng(p)[::-1] for p in parents])  # lon, lat
    n = len(parents)
    scale = np.array([M_PER_DEG * np.cos(np.radians(CENTRE[0])), M_PER_DEG])
    pos = np.zeros((n, steps, 2))
    here = centres + rng.normal(0, 150, (n, 2)) / scale
    heading = rng.uniform(0, 2 * np.pi, n)
    for s in range(steps):
        pos[:, s] = here
        offset = (here - centres) * scale
        far = np.hypot(*offset.T) > 350
        home = np.arctan2(-offset[:, 1], -offset[:, 0])
        heading = np.where(far, home, heading + rng.normal(0, 0.4, n))
        step = SPEED * STEP_S * np.column_stack([np.cos(heading), np.sin(heading)])
        here = here + step / scale
    return pos


def fix_json(pos: np.ndarray, inspector: int, first: int, count: int, start: datetime) -> bytes:
    """A POST /patrol/fixes body: ``count`` fixes of one inspector from step ``first``."""
    fixes = [
        {
            "ts": (start + timedelta(seconds=STEP_S * s)).isoformat(),
            "lon": round(float(pos[inspector - 1, s, 0]), 7),
            "lat": round(float(pos[inspector - 1, s, 1]), 7),
            "accuracy_m": 8.0,
        }
        for s in range(first, first + count)
    ]
    return orjson.dumps({"inspector_id": inspector, "fixes": fixes})


def bench_http(
    url: str, parents: list[str], batch: int, batches: int, clients: int, workers: int
) -> None:
    """Sustained HTTP ingest, then the coverage latency after an inspector's last batch."""
    n = len(parents)
    steps = batch * batches
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=STEP_S * steps + 60)
    pos = walks(parents, steps)
    bodies = [
        (i, fix_json(pos, i, b * batch, batch, start))
        for b in range(batches)
        for i in range(1, n + 1)
    ]
    with psycopg.connect(url, autocommit=True) as conn:
        key = create_key(conn, "admin", "bench")
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    with running_server(
        url, workers=workers, env={"CITYHEX_OFF_POST_CHECK_SECONDS": "3600"}
    ) as base:

        def post(item: tuple[int, bytes]) -> int:
            r = http.post(base + "/patrol/fixes", content=item[1], headers=headers)
            r.raise_for_status()
            return r.json()["accepted"]

        with httpx.Client(timeout=120, limits=httpx.Limits(max_connections=clients)) as http:
            post(bodies[0])  # warm-up: the day's partition, the pools
            t0 = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                accepted = sum(pool.map(post, bodies[1:]))
            seconds = time.perf_counter() - t0
            print(
                f"HTTP ingest, {workers} worker(s), {clients} client(s), {batch} fixes a batch: "
                f"{accepted:,} new fixes in {seconds:.2f} s = {accepted / seconds:,.0f} fixes/s",
                flush=True,
            )
            again = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                duplicates = sum(pool.map(post, bodies[1 : 1 + len(bodies) // 4]))
            print(
                f"the first quarter of the batches again: "
                f"{(len(bodies) // 4) * batch / (time.perf_counter() - again):,.0f} fixes/s "
                f"(accepted {duplicates})",
                flush=True,
            )
            latencies = []
            for i in range(1, min(n, 9) + 1):
                last = fix_json(pos, i, steps - 1, 1, start + timedelta(seconds=30))
                http.post(base + "/patrol/fixes", content=last, headers=headers).raise_for_status()
                t = time.perf_counter()
                r = http.get(
                    base + "/patrol/coverage",
                    params={"inspector": i, "from": start.isoformat()},
                    headers=headers,
                )
                latencies.append(time.perf_counter() - t)
                r.raise_for_status()
            print(
                f"coverage of an inspector's day ({steps} fixes) right after their last batch: "
                f"median {statistics.median(latencies) * 1000:,.0f} ms, "
                f"worst {max(latencies) * 1000:,.0f} ms",
                flush=True,
            )


async def load_day(url: str, pos: np.ndarray, parallel: int) -> int:
    """A day of fixes for every inspector of ``pos``, stored as ``POST /patrol/fixes`` stores
    them (``insert_fixes``: partitions, segments per cell, staleness), one inspector's day
    (8,640 fixes) a transaction on ``parallel`` connections; how many."""
    n, steps, _ = pos.shape
    engine = create_async_engine(url, pool_size=parallel, job=True)
    times = [DAY + timedelta(seconds=STEP_S * s) for s in range(steps)]
    queue = list(range(n))

    async def worker() -> None:
        while queue:
            i = queue.pop()
            rows = [
                (i + 1, times[s], float(pos[i, s, 0]), float(pos[i, s, 1]), 8.0, None)
                for s in range(steps)
            ]
            async with engine.connect() as conn:
                await ensure_partitions(conn, [times[0], times[-1]])
                await conn.commit()
                await insert_fixes(conn, rows)
                await conn.commit()

    try:
        await asyncio.gather(*(worker() for _ in range(parallel)))
        async with engine.connect() as conn:
            await conn.execute(text("ANALYZE patrol_fixes"))
            await conn.execute(text("ANALYZE patrol_pieces"))
            await conn.commit()
    finally:
        await engine.dispose()
    return n * steps


async def day_coverage(url: str, ids: list[int], parallel: int, chunk: int) -> list:
    """Every inspector's coverage of the day, ``parallel`` chunks at a time."""
    engine = create_async_engine(url, pool_size=parallel, job=True)
    queue = [ids[i : i + chunk] for i in range(0, len(ids), chunk)]
    results: list = []

    async def worker() -> None:
        while queue:
            part = queue.pop()
            async with engine.connect() as conn:
                results.extend(await coverage_of(conn, part, DAY, DAY + timedelta(days=1)))

    try:
        await asyncio.gather(*(worker() for _ in range(parallel)))
    finally:
        await engine.dispose()
    return results


def bench_day(url: str, parents: list[str], inspectors: int, parallel: int) -> None:
    """Load a day for ``inspectors`` inspectors and time everyone's coverage."""
    steps = 24 * 3600 // STEP_S
    pos = walks(parents[:inspectors], steps, seed=17)
    t = time.perf_counter()
    fixes = asyncio.run(load_day(url, pos, parallel))
    print(
        f"day: {fixes:,} fixes of {inspectors} inspectors stored by insert_fixes (a day per "
        f"transaction, {parallel} connections) in {time.perf_counter() - t:.1f} s",
        flush=True,
    )
    t = time.perf_counter()
    results = asyncio.run(day_coverage(url, list(range(1, inspectors + 1)), parallel, 50))
    seconds = time.perf_counter() - t
    coverage = statistics.median(r.coverage for r in results)
    duty = statistics.median(r.on_duty_seconds for r in results) / 3600
    full = 2000 * steps
    print(
        f"day: coverage and on-duty time of {len(results)} inspectors ({fixes:,} fixes) in "
        f"{seconds:.1f} s on {parallel} connection(s) = {fixes / seconds:,.0f} fixes/s "
        f"(median coverage {coverage:.2f}, median on-duty {duty:.1f} h)",
        flush=True,
    )
    one = []
    for i in range(1, min(inspectors, 9) + 1):
        t = time.perf_counter()
        asyncio.run(day_coverage(url, [i], 1, 1))
        one.append(time.perf_counter() - t)
    print(
        f"day: one inspector's coverage of a full day ({steps:,} fixes), connection included: "
        f"median {statistics.median(one) * 1000:,.0f} ms, worst {max(one) * 1000:,.0f} ms",
        flush=True,
    )
    if fixes < full:
        print(
            f"day: extrapolated linearly to 2,000 inspectors ({full:,} fixes): "
            f"{seconds * full / fixes:.0f} s (goal 60 s)",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inspectors", type=int, default=2000, help="inspectors in the grid")
    parser.add_argument("--batch", type=int, default=100, help="fixes per HTTP batch")
    parser.add_argument("--batches", type=int, default=3, help="batches per inspector (HTTP)")
    parser.add_argument(
        "--http-inspectors", type=int, default=200, help="inspectors sending over HTTP"
    )
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--day-inspectors", type=int, default=100, help="inspectors with a full day"
    )
    parser.add_argument(
        "--parallel", type=int, default=2, help="connections for the day's coverage"
    )
    args = parser.parse_args()
    parents = territories(args.inspectors)
    with throwaway_cluster("patrol") as (cluster, _home):
        url = cluster.start()
        migrate(url)
        t = time.perf_counter()
        build_grid(url, parents)
        print(
            f"grid: {49 * len(parents):,} cells of {len(parents)} inspectors in "
            f"{time.perf_counter() - t:.1f} s",
            flush=True,
        )
        if args.http_inspectors:
            bench_http(
                url,
                parents[: args.http_inspectors],
                args.batch,
                args.batches,
                args.clients,
                args.workers,
            )
        if args.day_inspectors:
            bench_day(url, parents, args.day_inspectors, args.parallel)


if __name__ == "__main__":
    main()
