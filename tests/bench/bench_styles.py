"""Style benchmark: what the city style makes a map fetch, and what serving a style costs.

A *view* at zoom z is what a 1920×1080 MapLibre map at zoom z centred on the style's centre
fetches: every z tile (512 px) the screen touches, of each source of the style as served to
the caller that has a layer drawn at z, through the tile URL its TileJSON gives (so the open
cases come with their ``filter`` query, which the tile fast path leaves to the tile routes).
For an app key, the view's cases alone are also measured two ways: ``open cases`` (the
style's filtered source) and ``all cases`` (``incidents_hex,incidents`` with no filter, as the
earlier style fetched them, on the fast path); which of the two goes first alternates by run,
so neither always meets PostgreSQL's buffers warmed by the other.

The demo city is loaded into a throwaway cluster (or ``--url`` names one holding it). In each
run, a fresh ``cityhex serve`` (one worker, empty tile cache) for each caller's views and one
for the two ways of fetching the cases answers one cold pass and ``--warm`` warm passes of
each, one request at a time over one connection, gzip accepted.
Printed: requests, bytes as sent, median cold and warm milliseconds; then the median time of
``GET /styles/city.json`` and ``GET /styles`` (each style is cut to the caller per request).

    flock /tmp/cityhex-bench.lock .venv/bin/python tests/bench/bench_styles.py \
        [--scale 0.3] [--runs 3] [--warm 3] [--url URL]
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
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psycopg  # noqa: E402

from layers.db.keys import create_key  # noqa: E402
from tests.bench.common import throwaway_city  # noqa: E402
from tests.helpers import running_server  # noqa: E402

SCREEN = (1920, 1080)
TILE_PX = 512
ZOOMS = (11, 14)
STYLE_CALLS = 50
UNFILTERED = "/tiles/incidents_hex,incidents/{z}/{x}/{y}.mvt"


def view_tiles(lon: float, lat: float, z: int) -> list[tuple[int, int]]:
    """The (x, y) of the zoom ``z`` tiles a screen of SCREEN pixels centred on lon/lat shows."""
    world = TILE_PX * 2**z
    cx = (lon + 180) / 360 * world
    sin = math.sin(math.radians(lat))
    cy = (0.5 - math.log((1 + sin) / (1 - sin)) / (4 * math.pi)) * world
    xs = range(int((cx - SCREEN[0] / 2) // TILE_PX), int((cx + SCREEN[0] / 2 - 1) // TILE_PX) + 1)
    ys = range(int((cy - SCREEN[1] / 2) // TILE_PX), int((cy + SCREEN[1] / 2 - 1) // TILE_PX) + 1)
    return [(x, y) for x in xs for y in ys]


def drawn_at(layer: dict, z: int) -> bool:
    """Whether a style layer draws at zoom ``z`` (visible, minzoom <= z < maxzoom)."""
    shown = layer.get("layout", {}).get("visibility", "visible") == "visible"
    return shown and layer.get("minzoom", 0) <= z < layer.get("maxzoom", 24)


def local(url: str) -> str:
    """The path and query of a URL of the server."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def style_views(
    client: httpx.Client, run: int
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """The tile paths of the city style's view at each zoom, as this client is served the
    style; and (where the style shows cases) the view's cases filtered and unfiltered, in an
    order that alternates with ``run``."""
    style = client.get("/styles/city.json").json()
    templates = {
        name: local(client.get(local(source["url"])).json()["tiles"][0])
        for name, source in style["sources"].items()
    }
    lon, lat = style["center"]
    views: dict[str, list[str]] = {}
    cases: dict[str, list[str]] = {}
    for z in ZOOMS:
        used = {
            layer["source"] for layer in style["layers"] if drawn_at(layer, z) and "source" in layer
        }
        tiles = view_tiles(lon, lat, z)

        def paths(template: str, z: int = z, tiles: list = tiles) -> list[str]:
            filled = template.replace("{z}", str(z))
            return [filled.replace("{x}", str(x)).replace("{y}", str(y)) for x, y in tiles]

        views[f"z{z} view"] = [p for name in sorted(used) for p in paths(templates[name])]
        if "cases" in used:
            pair = [
                (f"z{z} open cases", paths(templates["cases"])),
                (f"z{z} all cases", paths(UNFILTERED)),
            ]
            cases.update(pair if run % 2 == 0 else pair[::-1])
    return views, cases


def fetch(client: httpx.Client, paths: list[str]) -> tuple[int, float]:
    """Get ``paths`` one after another, gzip accepted: bytes as sent, seconds."""
    size = 0
    started = time.perf_counter()
    for path in paths:
        with client.stream("GET", path, headers={"Accept-Encoding": "gzip"}) as r:
            size += sum(len(part) for part in r.iter_raw())
            assert r.status_code in (200, 204), (path, r.status_code)
    return size, time.perf_counter() - started


def measure(url: str, key: dict, measured: dict[str, list[str]], warm: int) -> dict:
    """Fetch each list of ``measured`` cold, then ``warm`` times, from a fresh server with
    ``key``; by name: requests, bytes, cold seconds, warm seconds."""
    rows: dict[str, dict] = {}
    with running_server(url) as base, httpx.Client(base_url=base, headers=key, timeout=120) as c:
        for name, paths in measured.items():
            size, seconds = fetch(c, paths)
            again = [fetch(c, paths)[1] for _ in range(warm)]
            rows[name] = {"n": len(paths), "bytes": size, "cold": [seconds], "warm": again}
    return rows


def style_ms(client: httpx.Client, path: str) -> float:
    """The median milliseconds of STYLE_CALLS requests of ``path``."""
    times = []
    for _ in range(STYLE_CALLS):
        started = time.perf_counter()
        assert client.get(path).status_code == 200
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


@contextmanager
def demo_city(url: str | None, scale: float) -> Iterator[str]:
    """The database URL of the demo city: ``url``, or a throwaway one loaded now."""
    if url:
        yield url
        return
    with throwaway_city("styles", scale) as made:
        yield made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.3)
    parser.add_argument("--runs", type=int, default=3, help="fresh servers")
    parser.add_argument("--warm", type=int, default=3, help="warm passes per server")
    parser.add_argument("--url", help="an existing demo city instead of a throwaway one")
    args = parser.parse_args()
    rows: dict[tuple[str, str], dict] = {}
    calls: dict[str, tuple[float, float]] = {}
    with demo_city(args.url, args.scale) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            keys = {
                "anonymous": {},
                "app": {"Authorization": f"Bearer {create_key(conn, 'app', 'bench-styles')}"},
            }
        for run in range(args.runs):
            for who, key in keys.items():
                with running_server(url) as base, httpx.Client(base_url=base, headers=key) as c:
                    views, cases = style_views(c, run)
                    if run == 0:
                        calls[who] = (style_ms(c, "/styles/city.json"), style_ms(c, "/styles"))
                for measured in (views, cases):
                    for name, row in (
                        measure(url, key, measured, args.warm) if measured else {}
                    ).items():
                        total = rows.setdefault((who, name), {**row, "cold": [], "warm": []})
                        total["cold"] += row["cold"]
                        total["warm"] += row["warm"]
            print(f"run {run + 1}/{args.runs} done", file=sys.stderr)
    print(
        f"\n{'caller':10} {'view':16} {'requests':>8} {'bytes':>11} {'cold ms':>8} {'warm ms':>8}"
    )
    for (who, name), row in rows.items():
        print(
            f"{who:10} {name:16} {row['n']:>8} {row['bytes']:>11,}"
            f" {statistics.median(row['cold']) * 1000:>8.1f}"
            f" {statistics.median(row['warm']) * 1000:>8.1f}"
        )
    for who, (style, listing) in calls.items():
        print(
            f"{who}: GET /styles/city.json {style:.2f} ms, GET /styles {listing:.2f} ms (medians)"
        )


if __name__ == "__main__":
    main()
