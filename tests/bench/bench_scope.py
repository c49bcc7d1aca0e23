"""Benchmark of what a caller's scope costs on the case aggregates and the grid: the same
requests sent with an unscoped dispatcher key, a key limited to one district and an
inspector key (its own cases and cells).

Run: ``flock /tmp/cityhex-bench.lock .venv/bin/python tests/bench/bench_scope.py``
(``--scale S`` of the demo city, ``--requests N`` per measure, ``--rounds R``).

It makes a throwaway PostGIS cluster in /tmp holding the demo city and serves it in process
(Starlette's TestClient). It prints, per request and key, the median time per request over
the rounds, its ratio to the unscoped key's, and how many cases the key's h3 answer counts.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import psycopg
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from layers.db.keys import create_key
from layers.db.scope import Scope
from spatial_api.app import create_app
from tests.bench.common import throwaway_city


def per_request(client: TestClient, paths: list[str], headers: dict[str, str]) -> float:
    """Milliseconds per request over ``paths`` (each must answer 200)."""
    started = time.perf_counter()
    for path in paths:
        r = client.get(path, headers=headers)
        assert r.status_code == 200, (path, r.text)
    return (time.perf_counter() - started) * 1000 / len(paths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.3)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with throwaway_city("scope", args.scale) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            district, cases = conn.execute(
                "SELECT d.code, count(*) FROM incidents i JOIN districts d ON d.id = i.district_id"
                " GROUP BY 1 ORDER BY 2 DESC LIMIT 1"
            ).fetchone()
            inspector = conn.execute(
                "SELECT inspector_id FROM incidents WHERE inspector_id IS NOT NULL"
                " GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
            ).fetchone()[0]
            conn.execute("SELECT setseed(0.19)")
            points = conn.execute(
                "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_PointOnSurface(geom) AS c"
                " FROM grid_cells ORDER BY random() LIMIT %s) t",
                (args.requests,),
            ).fetchall()
            total = conn.execute("SELECT count(*) FROM incidents").fetchone()[0]
            keys = {
                "unscoped": create_key(conn, "dispatcher", "bench-all"),
                f"district {district}": create_key(
                    conn, "dispatcher", "bench-district", None, Scope.of(districts=[district])
                ),
                f"inspector {inspector}": create_key(conn, "inspector", "bench-own", inspector),
            }
        requests = {
            "/analytics/h3 res 8": ["/analytics/h3?layer=incidents&res=8"] * args.requests,
            "/analytics/hotspots res 8": ["/analytics/hotspots?layer=incidents&res=8"]
            * max(1, args.requests // 4),
            "/incidents/metrics by district": ["/incidents/metrics?group_by=district"]
            * args.requests,
            "/grid/lookup": [f"/grid/lookup?lon={x}&lat={y}" for x, y in points],
        }
        print(f"demo city at scale {args.scale:g}: {total} cases, {cases} in district {district}")
        with TestClient(create_app(url)) as client:
            headers = {name: {"Authorization": f"Bearer {key}"} for name, key in keys.items()}
            for name, header in headers.items():
                counted = client.get(requests["/analytics/h3 res 8"][0], headers=header).json()
                print(f"  {name:18s} counts {counted['total']} cases in /analytics/h3")
            for label, paths in requests.items():
                times: dict[str, list[float]] = {name: [] for name in headers}
                for header in headers.values():
                    per_request(client, paths[:2], header)  # warm up
                for _ in range(args.rounds):
                    for name, header in headers.items():
                        times[name].append(per_request(client, paths, header))
                base = statistics.median(times["unscoped"])
                print(f"{label}: median ms per request over {args.rounds} rounds of {len(paths)}")
                for name, values in times.items():
                    median = statistics.median(values)
                    print(f"  {name:18s} {median:8.2f} ms   x{median / base:.2f}")


if __name__ == "__main__":
    main()
