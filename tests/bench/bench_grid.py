"""Grid benchmark on the demo city: lookup latency at concurrency 8 against a real
``cityhex serve``, grid rebuild time, and balanced territories for N inspectors.

Run: ``flock /tmp/cityhex-bench.lock .venv/bin/python tests/bench/bench_grid.py``
(``--scale 1 --n 20 --seconds 15 --connections 8`` by default).

It makes a throwaway PostGIS cluster in /tmp, loads the demo city (etl.demo.loader.load_demo),
rebuilds the grid over the districts (every cell should stay, with its assignment), then
replays 20,000 random points of the grid against /grid/lookup with wrk (keep-alive, 8
connections, one wrk thread) for 1 and 2 server workers and prints wrk's latency
percentiles. Last it splits the grid into N territories by each weight (dry runs), applies
the split by incidents, and checks the stored assignments independently: each territory
connected through h3 adjacency, and max/mean of incidents per inspector recomputed in SQL;
and compares how many cells change hands for one more inspector with and without
keep_current.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

import h3
import httpx
import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from layers.db.keys import create_key
from layers.grid.build import build_from
from tests.bench.common import load_city, throwaway_cluster
from tests.helpers import connected, running_server

WRK_SCRIPT = """
local paths = {}
for line in io.lines("%(paths)s") do paths[#paths + 1] = line end
local i = 0
wrk.headers["Authorization"] = "%(auth)s"
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1])
end
"""


def lookup_paths(url: str, count: int, seed: int) -> list[str]:
    """``count`` lookup paths at random points of random grid cells, half with a category."""
    rng = np.random.default_rng(seed)
    with psycopg.connect(url) as conn:
        cells = np.array([r[0] for r in conn.execute("SELECT h3 FROM grid_cells")])
        categories = [r[0] for r in conn.execute("SELECT code FROM incident_categories")]
    paths = []
    for k, cell in enumerate(rng.choice(cells, count)):
        lat, lon = h3.cell_to_latlng(h3.int_to_str(int(cell)))
        lon += rng.uniform(-0.0003, 0.0003)
        lat += rng.uniform(-0.0003, 0.0003)
        query = f"/grid/lookup?lon={lon:.6f}&lat={lat:.6f}"
        if k % 2:
            query += f"&category={rng.choice(categories)}"
        paths.append(query)
    return paths


def wrk(base: str, auth: str, paths_file: Path, seconds: float, connections: int) -> dict:
    """wrk's requests/s and latency percentiles (ms) for the lookup paths."""
    script = paths_file.with_suffix(".lua")
    script.write_text(WRK_SCRIPT % {"paths": paths_file, "auth": auth})
    run = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", str(script), base],
        capture_output=True,
        text=True,
        check=True,
    )
    out = run.stdout
    figures = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}
    for pct, value, unit in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
        figures[f"p{pct}"] = float(value) * scale
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    figures["non_2xx"] = int(errors.group(1)) if errors else 0
    return figures


def bench_lookup(url: str, auth: str, tmp: Path, seconds: float, connections: int) -> None:
    """Lookup latency with 1 and 2 server workers."""
    paths_file = tmp / "lookup_paths.txt"
    paths_file.write_text("\n".join(lookup_paths(url, 20_000, 3)) + "\n")
    for workers in (1, 2):
        with running_server(url, workers=workers) as base:
            wrk(base, auth, paths_file, 3, connections)
            f = wrk(base, auth, paths_file, seconds, connections)
        print(
            f"lookup  workers={workers} c={connections}: p50 {f['p50']:.2f} ms  "
            f"p90 {f['p90']:.2f} ms  p99 {f['p99']:.2f} ms  {f['rps']:.0f} req/s  "
            f"non-2xx {f['non_2xx']}"
        )


def check_stored_territories(url: str, n: int) -> tuple[bool, float]:
    """From the stored assignments: whether every territory is connected (h3), and max/mean
    of incidents per inspector (SQL)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT inspector_id, h3 FROM grid_cells").fetchall()
        loads = [
            w
            for (w,) in conn.execute(
                "SELECT count(i.id) FROM grid_cells g LEFT JOIN incidents i "
                "ON h3_parent(i.h3, 10) = g.h3 AND i.status <> 'cancelled' "
                "GROUP BY g.inspector_id"
            ).fetchall()
        ]
    territories: dict[int, list[str]] = {}
    for inspector, cell in rows:
        territories.setdefault(inspector, []).append(h3.int_to_str(cell))
    assert len(territories) == n, len(territories)
    ok = all(connected(cells) for cells in territories.values())
    return ok, max(loads) / (sum(loads) / len(loads))


def bench_partition(base: str, auth: str, url: str, n: int) -> None:
    """Dry runs for every weight, then the incidents split applied and checked."""
    headers = {"Authorization": auth}
    for weight in ("cells", "area", "assets", "incidents"):
        t0 = time.perf_counter()
        r = httpx.post(
            base + "/grid/partition",
            headers=headers,
            timeout=600,
            json={"inspectors": n, "weight": weight, "include_cells": False},
        )
        wall = time.perf_counter() - t0
        r.raise_for_status()
        plan = r.json()
        print(
            f"partition N={n} weight={weight}: balance {plan['balance']:.3f}  connected "
            f"{plan['connected']}  split {plan['seconds']:.2f} s  request {wall:.2f} s"
        )
    for keep in (False, True):
        t0 = time.perf_counter()
        r = httpx.post(
            base + "/grid/partition",
            headers=headers,
            timeout=600,
            json={"inspectors": n, "weight": "incidents", "apply": True, "keep_current": keep},
        )
        wall = time.perf_counter() - t0
        r.raise_for_status()
        plan = r.json()
        ok, balance = check_stored_territories(url, n)
        print(
            f"applied N={n} incidents keep_current={keep}: {plan['changed']:,} cells changed "
            f"in {wall:.2f} s; stored: connected {ok}, balance {balance:.3f}"
        )
    for keep in (False, True):
        r = httpx.post(
            base + "/grid/partition",
            headers=headers,
            timeout=600,
            json={
                "inspectors": n + 1,
                "weight": "incidents",
                "keep_current": keep,
                "include_cells": False,
            },
        )
        r.raise_for_status()
        plan = r.json()
        print(
            f"dry run N={n + 1} keep_current={keep}: {plan['moved']:,} cells would change "
            f"hands, balance {plan['balance']:.3f}, split {plan['seconds']:.2f} s"
        )


def main() -> None:
    """Make the cluster, load the demo city, run the benchmarks, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    with throwaway_cluster("grid") as (cluster, home):
        url = cluster.start()
        load_city(url, args.scale)
        report = build_from(url, None, 10, "bench")
        print(
            f"rebuild over districts: {report.cells:,} cells, {len(report.added)} added, "
            f"{len(report.dropped)} dropped, {report.kept_assignments:,} assignments kept, "
            f"{report.seconds:.1f} s"
        )
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE grid_cells")
            auth = f"Bearer {create_key(conn, 'app', 'bench')}"
            admin = f"Bearer {create_key(conn, 'dispatcher', 'bench')}"
        bench_lookup(url, auth, home, args.seconds, args.connections)
        with running_server(url, workers=1) as base:
            bench_partition(base, admin, url, args.n)


if __name__ == "__main__":
    main()
