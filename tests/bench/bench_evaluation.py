"""Benchmark of the evaluation (GET /incidents/evaluation's function) on the demo city.

Run: ``flock /tmp/cityhex-bench.lock .venv/bin/python tests/bench/bench_evaluation.py``
(``--scale 1 --repeat 5`` by default).

It loads the demo city into a throwaway PostGIS cluster, then times, on the latest full year
of cases, ``layers.incidents.evaluation.evaluation`` grouped by department, district and
inspector, with and without 同比 (compare=yoy, two periods), next to ``case_metrics`` (the
simpler /incidents/metrics) on the same year, all timed in turns round after round, and
prints the medians, their ratio to the metrics, and the size of what was evaluated. The
evaluation is one SQL statement per period.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sqlalchemy import text

from layers.db.engine import create_async_engine
from layers.incidents.evaluation import evaluation
from layers.incidents.metrics import case_metrics
from tests.bench.common import throwaway_city


async def in_turns(
    repeat: int, makers: dict[str, Callable[[], Awaitable[Any]]]
) -> dict[str, tuple[float, Any]]:
    """Each maker's median seconds over ``repeat`` rounds, and its last result: one untimed
    round first (warming the cache), then every round awaits each maker once in turn, so
    the machine's changing load falls on all of them alike."""
    seconds: dict[str, list[float]] = {name: [] for name in makers}
    results = {name: await make() for name, make in makers.items()}
    for _ in range(repeat):
        for name, make in makers.items():
            started = time.perf_counter()
            results[name] = await make()
            seconds[name].append(time.perf_counter() - started)
    return {name: (statistics.median(seconds[name]), results[name]) for name in makers}


async def run(url: str, repeat: int) -> None:
    """Time the evaluation and the metrics of the latest full year of the city at ``url``."""
    engine = create_async_engine(url, pool_size=1, job=True)
    try:
        async with engine.connect() as conn:
            last = (await conn.execute(text("SELECT max(at) FROM incident_transitions"))).scalar()
            end = datetime(last.year, 1, 1, tzinfo=UTC)
            start = end - timedelta(days=365)
            cases, steps = (
                await conn.execute(
                    text(
                        "SELECT (SELECT count(*) FROM incidents), "
                        "(SELECT count(*) FROM incident_transitions WHERE at >= :f AND at < :t)"
                    ),
                    {"f": start, "t": end},
                )
            ).one()
            print(f"{cases:,} cases in all; {steps:,} steps in [{start:%Y-%m-%d}, {end:%Y-%m-%d})")
            makers: dict[str, Callable[[], Awaitable[Any]]] = {
                "metrics": lambda: case_metrics(conn, start, end, "department")
            }
            for group_by in ("department", "district", "inspector"):
                for compare in (None, "yoy"):
                    makers[f"{group_by} {compare or '-'}"] = lambda g=group_by, c=compare: (
                        evaluation(conn, start, end, g, c)
                    )
            measured = await in_turns(repeat, makers)
            base = measured.pop("metrics")[0]
            print(f"/incidents/metrics, a year by department: median {base * 1000:.0f} ms")
            for name, (median, result) in measured.items():
                group_by, compare = name.split()
                total = result.current.total.counts
                print(
                    f"evaluation, a year by {group_by:<10} compare={compare:<3}: "
                    f"median {median * 1000:6.0f} ms ({median / base:4.1f}× metrics), "
                    f"{len(result.current.groups)} groups, {total['registered']:,} "
                    f"registered, {total['due']:,} due, {total['checks']:,} checks"
                )
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with throwaway_city("evaluation", args.scale) as url:
        asyncio.run(run(url, args.repeat))


if __name__ == "__main__":
    main()
