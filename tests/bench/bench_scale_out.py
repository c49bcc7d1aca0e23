"""Scale-out benchmark: lookups/s and uncached tiles/s with one server, two servers behind
nginx, and two servers behind nginx reading from a streaming replica; then the replica's lag
under sustained readings ingest.

Run: ``flock /tmp/cityhex-bench.lock .venv/bin/python tests/bench/bench_scale_out.py``
(``--scale 0.2 --seconds 8 --connections 8 --ingest-seconds 15`` by default; ``--only reads``
or ``--only lag`` runs one part).

It makes a throwaway PostGIS cluster in /tmp, loads the demo city, makes a replica of it
(``ReplicaCluster``, as ``cityhex db replica start``), and replays with wrk (one thread,
keep-alive) 20,000 random lookups and 2,000 tiles (z14-16, assets and incidents, tile cache
off so every tile is built) against each set-up, in one run so the ratios compare like with
like. Every server runs one worker. Then it posts readings batches for ``--ingest-seconds``
to both servers while sampling, every 0.2 s, how far the replica's replayed position is
behind the primary's insert position (bytes, and that over the WAL rate: time) and the lag
the servers report in /metrics.
On a machine of few cores, the servers, nginx, both clusters and wrk share them: read the
ratios with that in mind.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from string import Template

import httpx
import numpy as np
import orjson
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from layers.db.embedded import ReplicaCluster, free_port
from layers.db.keys import create_key
from tests.bench.bench_grid import lookup_paths, wrk
from tests.bench.bench_ingest import batch_rows, post_all, register_sensors
from tests.bench.common import load_city, throwaway_cluster
from tests.helpers import running_server, tile_of

NGINX_TEMPLATE = Path(__file__).parents[2] / "docker" / "nginx.conf.template"


def tile_paths(url: str, count: int, seed: int) -> list[str]:
    """``count`` tile paths (assets and incidents, z14-16) at random assets of the city."""
    rng = np.random.default_rng(seed)
    with psycopg.connect(url) as conn:
        points = conn.execute(
            "SELECT ST_X(ST_Centroid(geom)), ST_Y(ST_Centroid(geom)) FROM assets"
        ).fetchall()
    paths = []
    for i in rng.choice(len(points), count):
        z, x, y = tile_of(*points[i], int(rng.integers(14, 17)))
        paths.append(f"/tiles/assets,incidents/{z}/{x}/{y}.mvt")
    return paths


@contextlib.contextmanager
def nginx(servers: list[str]) -> Iterator[str]:
    """nginx round robin in front of ``servers`` (docker/nginx.conf.template); its URL."""
    prefix = Path(tempfile.mkdtemp(prefix="cityhex-bench-nginx-"))
    prefix.chmod(0o777)
    port = free_port()
    conf = prefix / "nginx.conf"
    upstreams = " ".join(f"server {s.removeprefix('http://')};" for s in servers)
    conf.write_text(
        Template(NGINX_TEMPLATE.read_text()).safe_substitute(
            NGINX_PORT=port, NGINX_PREFIX=str(prefix), NGINX_UPSTREAMS=upstreams
        )
    )
    proc = subprocess.Popen(["nginx", "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"])
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base + "/healthz").status_code == 200:
                    break
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.contextmanager
def setup(url: str, servers: int, replica: str | None) -> Iterator[str]:
    """``servers`` servers (one worker each, tile cache off), reading from ``replica`` if
    given, behind nginx when more than one; the URL to load."""
    env = {"CITYHEX_TILE_CACHE_MB": "0"}
    if replica:
        env["CITYHEX_REPLICA_URLS"] = replica
    with contextlib.ExitStack() as stack:
        bases = [stack.enter_context(running_server(url, env=env)) for _ in range(servers)]
        if replica:
            for base in bases:
                while 'state="up"} 1.0' not in httpx.get(base + "/metrics").text:
                    time.sleep(0.2)
        yield bases[0] if servers == 1 else stack.enter_context(nginx(bases))


def bench_reads(url: str, replica: str, auth: str, tmp: Path, seconds: float, c: int) -> None:
    """Lookups/s and uncached tiles/s for each set-up, and their ratios to one server."""
    files = {"lookup": tmp / "lookups.txt", "tile": tmp / "tiles.txt"}
    files["lookup"].write_text("\n".join(lookup_paths(url, 20_000, 3)) + "\n")
    files["tile"].write_text("\n".join(tile_paths(url, 2_000, 5)) + "\n")
    results: dict[str, dict[str, dict]] = {}
    for name, servers, rep in (
        ("1 server", 1, None),
        ("2 servers + nginx", 2, None),
        ("2 servers + nginx + replica", 2, replica),
    ):
        with setup(url, servers, rep) as base:
            results[name] = {}
            for what, file in files.items():
                wrk(base, auth, file, 2, c)  # warm: pools, plans, pages
                results[name][what] = wrk(base, auth, file, seconds, c)
    first = results["1 server"]
    for name, figures in results.items():
        parts = [
            f"{what} {f['rps']:.0f}/s (x{f['rps'] / first[what]['rps']:.2f}, p50 "
            f"{f['p50']:.1f} ms, p99 {f['p99']:.1f} ms, non-2xx {f['non_2xx']})"
            for what, f in figures.items()
        ]
        print(f"{name:30s} " + "; ".join(parts))


def lsn_gap(primary: psycopg.Connection, standby: psycopg.Connection) -> tuple[int, int]:
    """Bytes of WAL the replica has not replayed yet, and the primary's insert position."""
    insert = primary.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()[0]
    gap = standby.execute(
        "SELECT pg_wal_lsn_diff(%s, pg_last_wal_replay_lsn())", (insert,)
    ).fetchone()[0]
    position = primary.execute("SELECT pg_wal_lsn_diff(%s, '0/0')", (insert,)).fetchone()[0]
    return int(gap), int(position)


def bench_lag(url: str, replica: str, key: str, seconds: float) -> None:
    """The replica's lag while two servers take readings batches as fast as one client
    each sends them."""
    plan = register_sensors(url)
    env = {"CITYHEX_REPLICA_URLS": replica}
    with running_server(url, env=env) as a, running_server(url, env=env) as b:
        samples: list[tuple[int, int]] = []
        reported: list[float] = []
        accepted = [0, 0]
        stop = threading.Event()

        def ingest(k: int, base: str) -> None:
            minute = k * 10_000_000
            while not stop.is_set():
                body = orjson.dumps(batch_rows(plan, minute, 10))
                minute += 10
                accepted[k] += post_all(base, key, [body], 1)[1]

        workers = [threading.Thread(target=ingest, args=(k, s)) for k, s in enumerate((a, b))]
        t0 = time.perf_counter()
        for w in workers:
            w.start()
        with (
            psycopg.connect(url, autocommit=True) as p,
            psycopg.connect(replica, autocommit=True) as s,
        ):
            while time.perf_counter() - t0 < seconds:
                samples.append(lsn_gap(p, s))
                text = httpx.get(a + "/metrics").text
                lag = re.search(r"cityhex_replica_lag_seconds\{[^}]*\} ([\d.e+-]+|NaN)", text)
                if lag and lag.group(1) != "NaN":
                    reported.append(float(lag.group(1)))
                time.sleep(0.2)
        stop.set()
        for w in workers:
            w.join()
        wall = time.perf_counter() - t0
    gaps = [g for g, _ in samples]
    wal_rate = (samples[-1][1] - samples[0][1]) / (wall - 0.2)
    print(
        f"ingest {sum(accepted) / wall:,.0f} readings/s for {wall:.0f} s through 2 servers, "
        f"WAL {wal_rate / 2**20:.1f} MiB/s: replica behind by median "
        f"{statistics.median(gaps) / 1024:.0f} KiB, max {max(gaps) / 1024:.0f} KiB "
        f"(÷ the WAL rate: {statistics.median(gaps) / wal_rate * 1000:.0f} ms, max "
        f"{max(gaps) / wal_rate * 1000:.0f} ms); lag in /metrics (1 s checks) median "
        f"{statistics.median(reported):.2f} s, max {max(reported):.2f} s ({len(samples)} samples)"
    )


def main() -> None:
    """Parse the options, make the city and its replica, run both benchmarks."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.2)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--ingest-seconds", type=float, default=15)
    parser.add_argument("--only", choices=("reads", "lag"), help="run one of the two parts")
    args = parser.parse_args()
    with throwaway_cluster("scale-out") as (cluster, home):
        url = cluster.start()
        load_city(url, args.scale)
        standby = ReplicaCluster(home, cluster, port=free_port())
        replica = standby.start()
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                key = create_key(conn, "dispatcher", "bench")
                app_key = create_key(conn, "app", "bench-ingest")
            if args.only != "lag":
                with tempfile.TemporaryDirectory() as tmp:
                    bench_reads(
                        url, replica, f"Bearer {key}", Path(tmp), args.seconds, args.connections
                    )
            if args.only != "reads":
                bench_lag(url, replica, app_key, args.ingest_seconds)
        finally:
            standby.stop()


if __name__ == "__main__":
    main()
