"""Benchmark: load the demo city into a throwaway embedded PostGIS and print the time taken.

    flock /tmp/cityhex-bench.lock .venv/bin/python tests/bench/bench_demo_load.py [--scale S]

Makes a cluster in /tmp with the same code as ``cityhex db start`` (default settings, fsync
on), migrates it, loads the demo city and prints seconds per phase, rows per table and rows
per second; then stops the cluster and removes its folder.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from etl.demo.loader import load_demo
from layers.db.migrate import migrate
from tests.bench.common import throwaway_cluster


def main() -> None:
    """Run the benchmark once and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    with throwaway_cluster("demo") as (cluster, _home):
        url = cluster.start()
        started = time.perf_counter()
        migrate(url)
        migrated = time.perf_counter() - started
        report = load_demo(url, args.scale, progress=False)
        total_rows = sum(report.rows.values())
        print(f"demo city, scale {args.scale:g} (migrate took {migrated:.1f} s, not counted)")
        print(f"{'phase':<12}{'seconds':>9}")
        for phase, seconds in report.phases.items():
            print(f"{phase:<12}{seconds:>9.2f}")
        print(f"{'table':<22}{'rows':>10}")
        for table, rows in report.rows.items():
            print(f"{table:<22}{rows:>10,}")
        print(f"total: {total_rows:,} rows in {report.seconds:.1f} s"
              f" = {total_rows / report.seconds:,.0f} rows/s")  # fmt: skip


if __name__ == "__main__":
    main()
