"""Benchmark of what each kind of credential costs per request: the same request (the
TileJSON of the incidents layer, which needs a reader and touches no tile) sent with an API
key (looked up once, then from the key cache), with a token of ``POST /auth/token`` as a
Bearer header and as ``?access_token=`` (each verified, its key read from the cache), and,
for scale, with the key cache disabled (every request reads the key from the database).

Run: ``flock /tmp/cityhex-bench.lock .venv/bin/python tests/bench/bench_auth.py``
(``--requests N`` per measure, ``--rounds R``).

It makes a throwaway PostGIS cluster in /tmp with an empty migrated database and serves it
in process (Starlette's TestClient). It prints the median time per request of each way, and
its ratio to the key's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import psycopg
from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from layers.db.keys import create_key  # noqa: E402
from layers.db.migrate import migrate  # noqa: E402
from spatial_api.app import create_app  # noqa: E402
from spatial_api.settings import api_settings  # noqa: E402
from tests.bench.common import throwaway_cluster  # noqa: E402

PATH = "/tiles/incidents/tilejson.json"


def per_request(client: TestClient, n: int, **kwargs: object) -> float:
    """Milliseconds per request over ``n`` requests (each must answer 200)."""
    started = time.perf_counter()
    for _ in range(n):
        assert client.get(PATH, **kwargs).status_code == 200  # type: ignore[arg-type]
    return (time.perf_counter() - started) * 1000 / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with throwaway_cluster("auth") as (cluster, _home):
        url = cluster.start()
        migrate(url)
        with psycopg.connect(url, autocommit=True) as conn:
            key = create_key(conn, "dispatcher", "bench")
        header = {"Authorization": f"Bearer {key}"}
        os.environ["CITYHEX_KEY_CACHE_SECONDS"] = "0"
        api_settings.cache_clear()
        uncached_app = create_app(url)
        del os.environ["CITYHEX_KEY_CACHE_SECONDS"]
        api_settings.cache_clear()
        with TestClient(create_app(url)) as client, TestClient(uncached_app) as uncached:
            token = client.post("/auth/token", headers=header).json()["access_token"]
            ways = {
                "key (cached)": (client, {"headers": header}),
                "token, Bearer header": (client, {"headers": {"Authorization": f"Bearer {token}"}}),
                "token, ?access_token=": (client, {"params": {"access_token": token}}),
                "key, no key cache": (uncached, {"headers": header}),
            }
            for web, kwargs in ways.values():
                per_request(web, 20, **kwargs)  # warm up
            times: dict[str, list[float]] = {name: [] for name in ways}
            for _ in range(args.rounds):
                for name, (web, kwargs) in ways.items():
                    times[name].append(per_request(web, args.requests, **kwargs))
    base = statistics.median(times["key (cached)"])
    print(f"GET {PATH}: median ms per request over {args.rounds} rounds of {args.requests}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:24s} {median:7.3f} ms   x{median / base:.2f}")


if __name__ == "__main__":
    main()
