"""Compression benchmark: bytes and time of a map view and of a feature page, as they are
(identity) and gzip- and brotli-compressed, with the tile cache cold and warm.

A *view* at zoom z is what a 1920×1080 MapLibre map at zoom z centred on the city style's
centre fetches from CityHex: every z tile (512 px, MapLibre's vector tile size) the screen
touches, of each of the city style's two sources. The *page* is
``/collections/assets/items?limit=1000``.

The demo city (scale 1 by default) is loaded once into a throwaway cluster (or ``--url``
names an existing one); a first pass over everything warms PostgreSQL's buffers. Then, for
each run and each encoding, a fresh ``cityhex serve`` (one worker, so an empty tile cache)
answers one cold pass (tiles built, then compressed) and ``--warm`` warm passes (tiles and
their compressed variants from the cache), one request at a time over one keep-alive
connection. Printed: bytes sent for the view or page, the medians of the time it took, and
the processor time compressing its identity bodies takes (what a cold pass adds at most;
a warm pass of tiles adds none).

    flock /tmp/cityhex-bench.lock .venv/bin/python tests/bench/bench_compression.py \
        [--scale 1] [--runs 3] [--warm 5] [--url URL]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psycopg  # noqa: E402

from layers.db.keys import create_key  # noqa: E402
from spatial_api.compression import MINIMUM_SIZE, compress  # noqa: E402
from styles import load_style  # noqa: E402
from tests.bench.common import throwaway_city  # noqa: E402
from tests.helpers import running_server  # noqa: E402

SCREEN = (1920, 1080)
TILE_PX = 512
ZOOMS = (12, 15)
CODINGS = ("identity", "gzip", "br")
PAGE = "/collections/assets/items?limit=1000"
PAGE_NAME = "items?limit=1000"
CITY_SOURCES = ("districts,grid,assets,sensors", "incidents_hex,incidents")
"""The city style's two vector sources (its TileJSON URLs name these layer lists)."""


def view_tiles(lon: float, lat: float, z: int) -> list[tuple[int, int]]:
    """The (x, y) of the zoom ``z`` tiles a screen of SCREEN pixels centred on lon/lat shows."""
    world = TILE_PX * 2**z
    cx = (lon + 180) / 360 * world
    sin = math.sin(math.radians(lat))
    cy = (0.5 - math.log((1 + sin) / (1 - sin)) / (4 * math.pi)) * world
    half_w, half_h = SCREEN[0] / 2, SCREEN[1] / 2
    xs = range(int((cx - half_w) // TILE_PX), int((cx + half_w - 1) // TILE_PX) + 1)
    ys = range(int((cy - half_h) // TILE_PX), int((cy + half_h - 1) // TILE_PX) + 1)
    return [(x, y) for x in xs for y in ys]


def view_paths(z: int) -> list[str]:
    """The tile URLs of the city view at zoom ``z``."""
    lon, lat = load_style("city", "")["center"]
    return [
        f"/tiles/{source}/{z}/{x}/{y}.mvt"
        for source in CITY_SOURCES
        for x, y in view_tiles(lon, lat, z)
    ]


def bodies(client: httpx.Client, paths: list[str]) -> list[bytes]:
    """The identity bodies of ``paths``."""
    return [client.get(p, headers={"Accept-Encoding": "identity"}).content for p in paths]


def compress_seconds(parts: list[bytes], coding: str, runs: int = 5) -> float:
    """The best processor time, over ``runs``, of compressing ``parts`` (those of 1 KB and
    more, as the server does) in ``coding``."""
    if coding == "identity":
        return 0.0
    best = float("inf")
    for _ in range(runs):
        started = time.process_time()
        for part in parts:
            if len(part) >= MINIMUM_SIZE:
                compress(part, coding)
        best = min(best, time.process_time() - started)
    return best


def fetch(client: httpx.Client, paths: list[str], coding: str) -> tuple[int, float, int]:
    """Get ``paths`` one after another accepting ``coding``: bytes received (as sent, not
    decoded), seconds, and how many tiles came from the cache."""
    size, hits = 0, 0
    started = time.perf_counter()
    for path in paths:
        with client.stream("GET", path, headers={"Accept-Encoding": coding}) as r:
            size += sum(len(part) for part in r.iter_raw())
            assert r.status_code in (200, 204), (path, r.status_code)
            assert r.headers.get("content-encoding", "identity") in (coding, "identity"), path
            hits += r.headers.get("x-cache") == "hit"
    return size, time.perf_counter() - started, hits


def targets() -> dict[str, list[str]]:
    """What is measured, by name."""
    return {f"z{z} city view": view_paths(z) for z in ZOOMS} | {PAGE_NAME: [PAGE]}


@contextmanager
def demo_city(url: str | None, scale: float) -> Iterator[str]:
    """The database URL of the demo city: ``url``, or a throwaway one loaded now."""
    if url:
        yield url
        return
    with throwaway_city("compression", scale) as made:
        yield made


def wait_for_cache(client: httpx.Client, path: str) -> None:
    """Wait until the server's tile cache is live (a tile asked twice is a hit)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        client.get(path, headers={"Accept-Encoding": "identity"})
        if client.get(path, headers={"Accept-Encoding": "identity"}).headers["x-cache"] == "hit":
            return
        time.sleep(0.2)
    raise RuntimeError("the tile cache did not go live in 30 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=3, help="fresh servers per encoding")
    parser.add_argument("--warm", type=int, default=5, help="warm passes per server")
    parser.add_argument("--url", help="an existing demo city instead of a throwaway one")
    args = parser.parse_args()
    measured = targets()
    cold: dict[tuple[str, str], list[float]] = {}
    warm: dict[tuple[str, str], list[float]] = {}
    sizes: dict[tuple[str, str], int] = {}
    warm_hits: dict[str, tuple[int, int]] = {}
    identity: dict[str, list[bytes]] = {}
    with demo_city(args.url, args.scale) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            key = {"Authorization": f"Bearer {create_key(conn, 'app', 'bench-compression')}"}
        with running_server(url) as base, httpx.Client(base_url=base, headers=key) as client:
            for name, paths in measured.items():  # PostgreSQL's buffers, not timed
                identity[name] = bodies(client, paths)
        for run in range(args.runs):
            for coding in CODINGS:
                with (
                    running_server(url) as base,
                    httpx.Client(base_url=base, headers=key, timeout=120) as client,
                ):
                    wait_for_cache(client, view_paths(ZOOMS[0])[0])
                    for name, paths in measured.items():
                        size, seconds, _ = fetch(client, paths, coding)
                        sizes[name, coding] = size
                        cold.setdefault((name, coding), []).append(seconds)
                    for _ in range(args.warm):
                        for name, paths in measured.items():
                            _, seconds, hits = fetch(client, paths, coding)
                            warm.setdefault((name, coding), []).append(seconds)
                            if name != PAGE_NAME:
                                done = warm_hits.get(name, (0, 0))
                                warm_hits[name] = (done[0] + hits, done[1] + len(paths))
                print(f"run {run + 1}/{args.runs} {coding} done", file=sys.stderr)
    print(
        f"\n{'':18} {'requests':>8} {'encoding':>9} {'bytes':>11} {'of identity':>11}"
        f" {'cold ms':>8} {'warm ms':>8}"
    )
    for name, paths in measured.items():
        for coding in CODINGS:
            size, plain = sizes[name, coding], sizes[name, "identity"]
            print(
                f"{name:18} {len(paths):>8} {coding:>9} {size:>11,} {size / plain:>11.1%}"
                f" {statistics.median(cold[name, coding]) * 1000:>8.1f}"
                f" {statistics.median(warm[name, coding]) * 1000:>8.1f}"
                f" {compress_seconds(identity[name], coding) * 1000:>11.1f}"
            )
    for name, (hits, total) in warm_hits.items():
        print(f"{name}: {hits} of {total} warm tile requests were cache hits")


if __name__ == "__main__":
    main()
