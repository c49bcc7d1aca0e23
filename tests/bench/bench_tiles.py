"""Tile benchmarks that need CityHex itself (the kit comparison is bench_tiles.sh).

worst      every tile of every zoom 0-16 over the demo city at scale 1, and every
           descendant down to z22 of the heaviest z16 tiles, for each tile layer and for
           the two composite sources of the city style: size and database time (the
           statement's round trip on one connection; the slowest are timed again and
           their best run kept, so a scheduling hiccup is not taken for query cost).
           Prints per-source tables and the worst tile overall.
             flock /tmp/cityhex-bench.lock .venv/bin/python tests/bench/bench_tiles.py worst
           [--url URL: an existing demo city instead of a throwaway one]
prepare-kit  give the kit's tables (../shared/bench, database city) the indexed 3857 copy
           and the tile-key index that a CityHex import makes, so the kit catalog
           (kit_catalog.toml) can serve them.
             .venv/bin/python tests/bench/bench_tiles.py prepare-kit --url URL
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import psycopg  # noqa: E402

from gis.tilemath import tiles_covering  # noqa: E402
from layers.catalog.registry import load_catalog  # noqa: E402
from layers.db.tile_keys import (  # noqa: E402
    POSTGIS_SCHEMA_SQL,
    create_index_sql,
    tile_key_function_sql,
)
from tiles.filters import TileFilters  # noqa: E402
from tiles.service import SESSION_SETTINGS, build_tile  # noqa: E402
from tiles.sources import parse_sources, source_names  # noqa: E402

DEMO_EXTENT = (113.75, 22.45, 114.35, 22.85)
SIZE_LIMIT = 500 * 1024
TIME_LIMIT_MS = 200.0
RETIME = 10
KIT_TABLES = ("assets", "incidents")


def sources_to_survey() -> list[str]:
    """Every tile layer, and the composite sources the city style fetches."""
    return [
        *source_names(load_catalog()),
        "districts,grid,assets,sensors",
        "incidents_hex,incidents",
    ]


def descendants(tile: tuple[int, int, int], down_to: int) -> list[tuple[int, int, int]]:
    """Every tile under ``tile`` down to zoom ``down_to``."""
    z, x, y = tile
    out = []
    for dz in range(1, down_to - z + 1):
        n = 1 << dz
        out += [(z + dz, x * n + i, y * n + j) for i in range(n) for j in range(n)]
    return out


async def time_tile(
    conn: asyncpg.Connection, sources: list, tile: tuple[int, int, int], runs: int = 1
) -> tuple[int, float]:
    """(bytes, best milliseconds over ``runs``) of one tile."""
    best, size = float("inf"), 0
    for _ in range(runs):
        start = time.perf_counter()
        body, _ = await build_tile(conn, sources, *tile, TileFilters())
        best = min(best, (time.perf_counter() - start) * 1000)
        size = len(body)
    return size, best


async def survey_source(conn: asyncpg.Connection, name: str) -> dict:
    """Sizes and times of every tile of one source (see the module doc)."""
    sources = parse_sources(load_catalog(), name)
    rows: dict[tuple[int, int, int], tuple[int, float]] = {}
    for z in range(17):
        for tile in tiles_covering(DEMO_EXTENT, z):
            rows[tile] = await time_tile(conn, sources, tile)
    z16 = sorted((t for t in rows if t[0] == 16), key=lambda t: -rows[t][0])[:3]
    for parent in z16:
        for tile in descendants(parent, 22):
            rows[tile] = await time_tile(conn, sources, tile)
    for tile in sorted(rows, key=lambda t: -rows[t][1])[:RETIME]:
        rows[tile] = await time_tile(conn, sources, tile, runs=3)
    return rows


def p99(values: list) -> float:
    """The 99th percentile (nearest rank) of sorted values."""
    return values[min(len(values) - 1, int(0.99 * len(values)))]


def report(name: str, rows: dict) -> tuple[int, float, tuple, tuple]:
    """Print one source's table; its worst size and time and where."""
    print(f"\n## {name}")
    print(
        f"{'zoom':>4} {'tiles':>7} {'non-empty':>9} {'KB max':>8} {'KB p99':>8} "
        f"{'ms p50':>7} {'ms p99':>7} {'ms max':>7}"
    )
    for z in sorted({t[0] for t in rows}):
        at = [rows[t] for t in rows if t[0] == z]
        sizes = sorted(s for s, _ in at)
        ms = sorted(m for _, m in at)
        full = sum(1 for s in sizes if s)
        kb_max, kb_99 = sizes[-1] / 1024, p99(sizes) / 1024
        print(
            f"{z:>4} {len(at):>7} {full:>9} {kb_max:>8.1f} {kb_99:>8.1f}"
            f" {statistics.median(ms):>7.2f} {p99(ms):>7.2f} {ms[-1]:>7.2f}"
        )
    big = max(rows, key=lambda t: rows[t][0])
    slow = max(rows, key=lambda t: rows[t][1])
    print(f"largest {big} {rows[big][0] / 1024:.1f} KB; slowest {slow} {rows[slow][1]:.1f} ms")
    return rows[big][0], rows[slow][1], big, slow


async def worst(url: str, names: list[str]) -> int:
    """Survey the sources; 1 if any tile breaks the size or time limit."""
    conn = await asyncpg.connect(url, server_settings=SESSION_SETTINGS)
    broken = 0
    summary = []
    try:
        for name in names:
            started = time.perf_counter()
            rows = await survey_source(conn, name)
            size, ms, big, slow = report(name, rows)
            summary.append((name, len(rows), size, big, ms, slow, time.perf_counter() - started))
            broken += size > SIZE_LIMIT or ms > TIME_LIMIT_MS
    finally:
        await conn.close()
    print("\n## worst tile per source (limits: 500 KB, 200 ms at the database)")
    print("| source | tiles | largest KB | at | slowest ms | at |")
    print("|---|---:|---:|---|---:|---|")
    for name, n, size, big, ms, slow, _ in summary:
        print(f"| {name} | {n} | {size / 1024:.1f} | {big} | {ms:.1f} | {slow} |")
    return 1 if broken else 0


def prepare_kit(url: str) -> None:
    """Add the indexed EPSG:3857 copy and the tile-key index to the kit's point tables
    (idempotent)."""
    with psycopg.connect(url, autocommit=True) as conn:
        schema = conn.execute(POSTGIS_SCHEMA_SQL).fetchone()[0]
        conn.execute(tile_key_function_sql(schema))
        for table in KIT_TABLES:
            conn.execute(
                f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS geom_3857 geometry(Point, 3857) "
                f"GENERATED ALWAYS AS (ST_Transform(geom, 3857)) STORED"
            )
            index = f"{table}_geom_3857_idx"
            conn.execute(f"CREATE INDEX IF NOT EXISTS {index} ON {table} USING gist (geom_3857)")
            conn.execute(create_index_sql(table, "geom_3857"))
            conn.execute(f"VACUUM ANALYZE {table}")
    print(f"kit tables {', '.join(KIT_TABLES)} have geom_3857 with a GiST and a tile-key index")


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("worst")
    w.add_argument("--url", help="a database already holding the demo city at scale 1")
    w.add_argument("--source", action="append", help="survey only this source (repeatable)")
    k = sub.add_parser("prepare-kit")
    k.add_argument("--url", required=True)
    a = ap.parse_args()
    if a.cmd == "prepare-kit":
        prepare_kit(a.url)
        return 0
    names = a.source or sources_to_survey()
    if a.url:
        return asyncio.run(worst(a.url, names))
    from tests.bench.common import throwaway_city

    with throwaway_city("tiles", 1.0) as url:
        return asyncio.run(worst(url, names))


if __name__ == "__main__":
    sys.exit(main())
