"""Benchmark of the rate limit kept in the database (``layers.db.rate_limits``): what one
take costs (one transaction: the prune of up to 10 refilled rows and the UPSERT), for one
client and for many distinct clients (a new row each, the table growing), and takes of one
client from 8 tasks at once (they meet on the row lock).

Run: ``flock /tmp/cityhex-bench.lock .venv/bin/python tests/bench/bench_rate_limit.py``
(``--takes N`` per measure, ``--rounds R``).

It makes a throwaway PostGIS cluster in /tmp with an empty migrated database and takes
through the application's async engine. It prints the median milliseconds per take of each
measure over the rounds, their ratio to one client's, and the rows left in the table.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from layers.db.engine import create_async_engine  # noqa: E402
from layers.db.migrate import migrate  # noqa: E402
from layers.db.rate_limits import take  # noqa: E402
from tests.bench.common import throwaway_cluster  # noqa: E402

PER_MINUTE = 1e9
"""So high that no take is refused: every take writes."""


async def measure(url: str, takes: int, rounds: int) -> dict[str, list[float]]:
    """Milliseconds per take of each measure, one figure per round."""
    engine = create_async_engine(url)
    found: dict[str, list[float]] = {"one client": [], "distinct clients": [], "8 at once": []}
    try:
        for r in range(rounds):
            started = time.perf_counter()
            for _ in range(takes):
                assert await take(engine, "bench", "10.0.0.1", PER_MINUTE) is None
            found["one client"].append((time.perf_counter() - started) * 1000 / takes)
            started = time.perf_counter()
            for i in range(takes):
                assert await take(engine, "bench", f"r{r}-{i}", PER_MINUTE) is None
            found["distinct clients"].append((time.perf_counter() - started) * 1000 / takes)

            async def worker() -> None:
                for _ in range(takes // 8):
                    assert await take(engine, "bench", "10.0.0.2", PER_MINUTE) is None

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(8)))
            found["8 at once"].append((time.perf_counter() - started) * 1000 / (takes // 8 * 8))
    finally:
        await engine.dispose()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--takes", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with throwaway_cluster("rate") as (cluster, _home):
        url = cluster.start()
        migrate(url)
        found = asyncio.run(measure(url, args.takes, args.rounds))
        with psycopg.connect(url) as conn:
            rows = conn.execute("SELECT count(*) FROM rate_buckets").fetchone()[0]
    base = statistics.median(found["one client"])
    for name, figures in found.items():
        median = statistics.median(figures)
        print(f"{name:>17}: {median:.3f} ms per take (x{median / base:.2f} one client's)")
    print(f"rows in rate_buckets after {args.rounds} rounds: {rows}")


if __name__ == "__main__":
    main()
