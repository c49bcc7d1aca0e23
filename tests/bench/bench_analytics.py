"""Benchmark of the analytics: H3 aggregation, Gi* hotspots, KDE and the four endpoints.

Run: ``flock /tmp/cityhex-bench.lock .venv/bin/python tests/bench/bench_analytics.py``
(``--demo`` adds the endpoint timings on the demo city at scale 1, when etl.demo.loader exists).

It makes a throwaway PostGIS cluster in /tmp, loads 1,000,000 synthetic incidents with COPY,
and prints medians (p50) and p99 of repeated runs.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from gis.analytics.gistar import gi_star
from gis.analytics.grid import RasterGrid
from gis.analytics.kde import kde
from gis.hexgrid import latlng_cells, level_cells
from layers.analytics.aggregations import Filters, analysis_layer, cell_counts
from layers.db.embedded import EmbeddedCluster
from layers.db.engine import create_async_engine
from layers.db.migrate import migrate
from tests.bench.common import throwaway_cluster

CITY = (113.85, 22.45, 114.35, 22.75)
FAST_CONF = {"fsync": "off", "full_page_writes": "off", "synchronous_commit": "off"}


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 of ``samples`` in milliseconds."""
    ms = sorted(s * 1000 for s in samples)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    return statistics.median(ms), p99


def report(name: str, samples: list[float]) -> None:
    """Print one benchmark line."""
    p50, p99 = percentiles(samples)
    print(f"{name:<58} p50 {p50:8.1f} ms   p99 {p99:8.1f} ms   (n={len(samples)})", flush=True)


def time_sync(func: Callable[[], object], repeat: int) -> list[float]:
    """Wall times of ``repeat`` calls after one warm-up."""
    func()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        func()
        samples.append(time.perf_counter() - t0)
    return samples


async def time_async(func: Callable[[], Awaitable[object]], repeat: int) -> list[float]:
    """Wall times of ``repeat`` awaited calls after one warm-up."""
    await func()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        await func()
        samples.append(time.perf_counter() - t0)
    return samples


def clustered_points(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` lon/lat points over CITY: 70 % in 40 Gaussian clusters, 30 % uniform."""
    n_clustered = int(n * 0.7)
    centres = rng.uniform(CITY[:2], CITY[2:], size=(40, 2))
    which = rng.integers(0, 40, n_clustered)
    spread = rng.uniform(0.002, 0.02, 40)[which]
    clustered = centres[which] + rng.normal(size=(n_clustered, 2)) * spread[:, None]
    uniform = rng.uniform(CITY[:2], CITY[2:], size=(n - n_clustered, 2))
    pts = np.vstack([clustered, uniform])
    pts[:, 0] = np.clip(pts[:, 0], CITY[0], CITY[2])
    pts[:, 1] = np.clip(pts[:, 1], CITY[1], CITY[3])
    return pts[:, 0], pts[:, 1]


def load_incidents(url: str, n: int, seed: int = 1) -> None:
    """COPY ``n`` synthetic incidents (seeded categories, a year of report times) into ``url``."""
    rng = np.random.default_rng(seed)
    lon, lat = clustered_points(n, rng)
    cells = latlng_cells(lon, lat, 10)
    levels = level_cells(lon, lat)
    with psycopg.connect(url, autocommit=True) as conn:
        codes = [r[0] for r in conn.execute("SELECT code FROM incident_categories ORDER BY 1")]
        start = datetime(2025, 1, 1, tzinfo=UTC)
        seconds = rng.integers(0, 365 * 86400, n)
        picks = rng.integers(0, len(codes), n)
        buf = io.StringIO()
        for i in range(n):
            ts = (start + timedelta(seconds=int(seconds[i]))).isoformat()
            cols = "\t".join(str(v[i]) for v in levels.values())
            buf.write(
                f"{codes[picks[i]]}\treported\t{ts}\t{cells[i]}\t{cols}\t"
                f"SRID=4326;POINT({lon[i]:.7f} {lat[i]:.7f})\n"
            )
        buf.seek(0)
        with conn.cursor().copy(
            f"COPY incidents (category_code, status, reported_at, h3, {', '.join(levels)}, geom)"
            " FROM STDIN"
        ) as copy:
            while chunk := buf.read(1 << 20):
                copy.write(chunk)
        conn.execute("VACUUM ANALYZE incidents")


def load_sensors(url: str, n: int = 500, hours: int = 24) -> None:
    """``n`` air sensors over CITY with an hourly pm25 reading for ``hours`` hours."""
    rng = np.random.default_rng(4)
    lon, lat = rng.uniform(CITY[0], CITY[2], n), rng.uniform(CITY[1], CITY[3], n)
    start = datetime(2025, 6, 1, tzinfo=UTC)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT readings_ensure_partition(%s)", (start.date(),))
        with conn.cursor().copy("COPY sensors (id, code, kind, geom) FROM STDIN") as copy:
            for i in range(n):
                copy.write(f"{i + 1}\tbench-{i + 1}\tair\tSRID=4326;POINT({lon[i]} {lat[i]})\n")
        with conn.cursor().copy(
            "COPY readings (sensor_id, property, ts, value) FROM STDIN"
        ) as copy:
            for i in range(n):
                for h in range(hours):
                    ts = (start + timedelta(hours=h)).isoformat()
                    copy.write(f"{i + 1}\tpm25\t{ts}\t{rng.gamma(4, 8):.2f}\n")
        conn.execute("VACUUM ANALYZE sensors")
        conn.execute("VACUUM ANALYZE readings")


def load_grid(url: str) -> None:
    """Fill grid_cells with the res-10 cells covering CITY (the study area)."""
    import shapely

    from gis.hexgrid import cell_area_m2, cell_polygon, cover_cells

    cells = sorted(cover_cells(shapely.box(*CITY), 10))
    buf = io.StringIO()
    for c in cells:
        buf.write(f"{c}\t10\t{cell_area_m2(c)}\tSRID=4326;{cell_polygon(c).wkt}\n")
    buf.seek(0)
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.cursor().copy("COPY grid_cells (h3, res, area_m2, geom) FROM STDIN") as copy:
            copy.write(buf.read())
        conn.execute("VACUUM ANALYZE grid_cells")


async def bench_aggregation(url: str, repeat: int) -> None:
    """1,000,000 incidents to res 8 (and 9, 10) through aggregations.cell_counts."""
    engine = create_async_engine(url, pool_size=2)
    filters = Filters(analysis_layer("incidents"))
    async with engine.connect() as conn:
        for res in (8, 9, 10):
            samples = await time_async(lambda res=res: cell_counts(conn, filters, res), repeat)
            report(f"aggregate 1M incidents to res {res} (cell_counts)", samples)
    await engine.dispose()


def bench_gistar(repeat: int) -> None:
    """Gi* on 50,000 cells (k = 1, 2)."""
    from h3.api import basic_int as h3i

    rng = np.random.default_rng(2)
    parent = h3i.latlng_to_cell(22.6, 114.1, 3)
    cells = np.array(sorted(h3i.cell_to_children(parent, 9))[:50_000], dtype=np.int64)
    values = rng.poisson(2.0, len(cells)).astype(float)
    for k in (1, 2):
        samples = time_sync(lambda k=k: gi_star(cells, values, k, fdr=True), repeat)
        report(f"Gi* 50,000 cells k={k} (with FDR)", samples)


def bench_kde(repeat: int) -> None:
    """KDE of 1,000,000 points onto 1,000 x 1,000 cells (projection to UTM included)."""
    rng = np.random.default_rng(3)
    lon, lat = clustered_points(1_000_000, rng)
    grid = RasterGrid.covering(CITY, 52.0)
    grid = RasterGrid(grid.epsg, grid.minx, grid.maxy, grid.cell_m, 1000, 1000)

    def run() -> np.ndarray:
        x, y = grid.project(lon, lat)
        return kde(x, y, grid, 250.0)

    report("KDE 1M points onto 1000x1000 cells (bandwidth 250 m)", time_sync(run, repeat))


def bench_endpoints(url: str, repeat: int, label: str) -> None:
    """The four endpoints over HTTP against a real `cityhex serve` process."""
    import httpx

    from layers.db.keys import create_key
    from tests.helpers import running_server

    with psycopg.connect(url, autocommit=True) as conn:
        token = create_key(conn, "dispatcher", "bench")
        extent = conn.execute(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e)"
            " FROM (SELECT ST_Extent(geom) e FROM incidents) t"
        ).fetchone()
        first, last = (
            t.isoformat()
            for t in conn.execute(
                "SELECT min(reported_at), max(reported_at) FROM incidents"
            ).fetchone()
        )
        prop = conn.execute("SELECT property FROM readings LIMIT 1").fetchone()
        at = conn.execute("SELECT max(ts) FROM readings").fetchone()[0]
    bbox = ",".join(f"{v:.5f}" for v in extent)
    headers = {"Authorization": f"Bearer {token}"}
    calls = {
        "GET /analytics/h3 res=8": ("/analytics/h3", {"layer": "incidents", "res": 8}),
        "GET /analytics/hotspots res=9 k=1": (
            "/analytics/hotspots",
            {"layer": "incidents", "res": 9, "k": 1},
        ),
        "GET /analytics/kde cell_m=50 bandwidth_m=250 tif": (
            "/analytics/kde",
            {"layer": "incidents", "bbox": bbox, "cell_m": 50, "bandwidth_m": 250},
        ),
        "GET /analytics/timeseries interval=day over a year": (
            "/analytics/timeseries",
            {"layer": "incidents", "interval": "day", "bbox": bbox, "from": first, "to": last},
        ),
    }
    if prop:
        calls["GET /analytics/idw cell_m=50 tif"] = (
            "/analytics/idw",
            {"property": prop[0], "at": at.isoformat(), "bbox": bbox, "cell_m": 50},
        )
    with running_server(url) as base, httpx.Client(base_url=base, timeout=120) as http:
        for name, (path, params) in calls.items():

            def call(path: str = path, params: dict = params) -> None:
                resp = http.get(path, params=params, headers=headers)
                resp.raise_for_status()

            report(f"{label}: {name}", time_sync(call, repeat))


def main() -> None:
    """Make the cluster, load the data, print the figures, remove the cluster."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--incidents", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--demo", action="store_true", help="also time the demo city (scale 1)")
    args = parser.parse_args()
    with throwaway_cluster("analytics") as (cluster, _home):
        url = cluster.start(extra_conf=FAST_CONF)
        migrate(url)
        t0 = time.perf_counter()
        load_incidents(url, args.incidents)
        load_grid(url)
        load_sensors(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CHECKPOINT")  # the load's writes must not land in the timings
        print(f"loaded {args.incidents:,} incidents in {time.perf_counter() - t0:.1f} s")
        asyncio.run(bench_aggregation(url, args.repeat))
        bench_gistar(args.repeat)
        bench_kde(args.repeat)
        bench_endpoints(url, max(5, args.repeat // 4), "synthetic 1M")
        if args.demo:
            bench_demo(cluster, args.repeat)


def bench_demo(cluster: EmbeddedCluster, repeat: int) -> None:
    """The endpoints on the demo city at scale 1 (etl.demo.loader.load_demo)."""
    from etl.demo.loader import load_demo

    with psycopg.connect(cluster.url("postgres"), autocommit=True) as conn:
        conn.execute("CREATE DATABASE demo")
    url = cluster.url("demo")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    migrate(url)
    load_demo(url, 1, progress=False)
    with psycopg.connect(url, autocommit=True) as conn:
        n = conn.execute("SELECT count(*) FROM incidents").fetchone()[0]
    bench_endpoints(url, repeat, f"demo scale 1 ({n:,} incidents)")


if __name__ == "__main__":
    main()
