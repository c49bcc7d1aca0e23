"""The web app's first inspector screen in Chromium with 4× CPU slowdown and a Fast-3G network
(Chrome DevTools' profile: 562.5 ms round trip, 1.44 Mbit/s down, 675 kbit/s up), on the demo
city: how long until the first map with the inspector's cells is painted (the SVG first view
the server draws, ``/grid/overview.svg``), how long until the interactive map (MapLibre, every
tile of the view drawn) replaces it, how many bytes each had transferred, and how big the
app's JS + CSS is gzipped.

Each run is a fresh browser profile (nothing cached) holding the inspector's key as a user who
ticked "remember" does, so the app first exchanges it for a token (``POST /auth/token``); the
median of ``--runs`` is printed with every run. Budgets (issue 15): first map with my cells
≤ 2.5 s (the first view), JS + CSS ≤ 350 KB gzipped, the first inspector screen ≤ 1.5 MB
transferred (until the interactive map).

    flock /tmp/cityhex-bench.lock .venv/bin/python tests/bench/bench_webapp.py [--scale 1]
    [--runs 3] [--url URL: an existing demo city instead of a throwaway one]
"""

from __future__ import annotations

import argparse
import gzip
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from playwright.sync_api import Page, sync_playwright  # noqa: E402

from layers.db.keys import create_key  # noqa: E402
from spatial_api.webapp import DIST, current_build  # noqa: E402
from tests.bench.common import throwaway_city  # noqa: E402
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.helpers import running_server  # noqa: E402

FAST_3G = {
    "offline": False,
    "latency": 562.5,
    "downloadThroughput": 1.44e6 / 8,
    "uploadThroughput": 675e3 / 8,
}
CPU_SLOWDOWN = 4
PHONE = {"width": 390, "height": 844}
READY = (
    "window.cityhexReady > 0 && window.cityhexMap.loaded() && window.cityhexMap.areTilesLoaded()"
)
FIRST_VIEW = (
    "window.cityhexFirstView > 0 && (() => { const s = document.querySelector('.first-view svg');"
    " const r = s && s.getBoundingClientRect(); return Boolean(r && r.width > 0 && r.height > 0"
    " && s.querySelectorAll('path[data-cell]').length > 0"
    " && getComputedStyle(s).visibility === 'visible'); })()"
)
"""The first view is painted: its time is set and its SVG, with the cells, is on screen."""


def inspector_key(url: str) -> tuple[int, int, str]:
    """The inspector with the median number of cells, that count, and a new key for them."""
    with psycopg.connect(url, autocommit=True) as conn:
        counts = conn.execute(
            "SELECT inspector_id, count(*) FROM grid_cells WHERE inspector_id IS NOT NULL "
            "GROUP BY 1 ORDER BY 2, 1"
        ).fetchall()
        inspector, cells = counts[len(counts) // 2]
        return inspector, cells, create_key(conn, "inspector", "bench-webapp", inspector)


@dataclass
class Load:
    """One load of the inspector's screen: seconds to the first view and to the interactive
    map, bytes transferred by each, bytes of JS + CSS, and the first view's SVG bytes."""

    first: float
    first_bytes: int
    ready: float
    total: int
    code: int
    svg: int


def load(page: Page, url: str, sizes: dict[str, int], urls: dict[str, str], reload: bool) -> Load:
    """Open (or reload) the app and wait for the first view, then for the interactive map."""
    sizes.clear()
    if reload:
        page.reload(wait_until="commit", timeout=120_000)
    else:
        page.goto(url, wait_until="commit", timeout=120_000)
    first, first_bytes = None, 0
    while not page.evaluate(f"() => Boolean({READY})"):
        if first is None and page.evaluate(f"() => Boolean({FIRST_VIEW})"):
            first = page.evaluate("window.cityhexFirstView") / 1000
            first_bytes = sum(sizes.values())
        time.sleep(0.05)
    ready = page.evaluate("performance.now()") / 1000
    if first is None:  # the first view came and went between two polls
        first = page.evaluate("window.cityhexFirstView || NaN") / 1000
        first_bytes = sum(sizes.values())
    svg = sum(n for r, n in sizes.items() if "/grid/overview.svg" in urls.get(r, ""))
    return Load(first, first_bytes, ready, sum(sizes.values()), 0, svg)


def first_screen(base: str, key: str, timeline: bool = False) -> tuple[Load, Load]:
    """One cold load of the inspector's screen (a fresh profile), then the same screen loaded
    again in the same profile (the next morning: files kept by the browser's HTTP cache; the
    service worker is blocked, as CDP's network emulation would not slow its fetches). With
    ``timeline``, each request of the cold load (start and end in ms from the first, bytes)
    is printed."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        # no service worker: its own fetches would escape the page's network emulation
        context = browser.new_context(viewport=PHONE, service_workers="block")
        context.add_init_script(f"localStorage.setItem('cityhex.key', {key!r})")
        page = context.new_page()
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send("Network.emulateNetworkConditions", FAST_3G)
        cdp.send("Emulation.setCPUThrottlingRate", {"rate": CPU_SLOWDOWN})
        kinds: dict[str, str] = {}
        sizes: dict[str, int] = {}
        urls: dict[str, str] = {}
        starts: dict[str, float] = {}
        ends: dict[str, float] = {}

        def sent(e: dict) -> None:
            urls.setdefault(e["requestId"], e["request"]["url"])
            starts.setdefault(e["requestId"], e["timestamp"])

        def finished(e: dict) -> None:
            ends[e["requestId"]] = e["timestamp"]
            sizes[e["requestId"]] = int(e["encodedDataLength"])

        cdp.on("Network.requestWillBeSent", sent)
        cdp.on("Network.loadingFinished", finished)
        cdp.on("Network.responseReceived", lambda e: kinds.__setitem__(e["requestId"], e["type"]))
        cold = load(page, f"{base}/app", sizes, urls, reload=False)
        cold.code = sum(n for r, n in sizes.items() if kinds.get(r) in ("Script", "Stylesheet"))
        timings = dict(starts), dict(ends), dict(sizes)
        warm = load(page, f"{base}/app", sizes, urls, reload=True)
        browser.close()
    starts, ends, sizes = timings
    if timeline and starts:
        first = min(starts.values())
        print(
            f"    request timeline (first view painted at {cold.first * 1000:.0f} ms"
            " after navigation start):"
        )
        for rid, t in sorted(starts.items(), key=lambda item: item[1]):
            end = f"{(ends[rid] - first) * 1000:7.0f}" if rid in ends else "      —"
            path = urls[rid].removeprefix(base)[:70]
            size = sizes.get(rid, 0) / 1024
            print(f"    {(t - first) * 1000:7.0f} → {end} ms {size:7.1f} KB {path}")
    return cold, warm


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--url")
    args = parser.parse_args()
    build = current_build()
    files = build.styles + build.scripts + build.chunks
    gz = {name: len(gzip.compress((DIST / name).read_bytes(), 9)) for name in files}
    print("JS + CSS gzipped (level 9; chunks are fetched only when the app imports them):")
    for name, size in gz.items():
        print(f"  {name:40} {size / 1024:8.1f} KB{' (chunk)' if name in build.chunks else ''}")
    print(f"  {'total':40} {sum(gz.values()) / 1024:8.1f} KB (budget 350 KB)")

    def measure(url: str) -> None:
        inspector, cells, key = inspector_key(url)
        print(f"inspector {inspector} with {cells} cells; Fast 3G, CPU slowed {CPU_SLOWDOWN}×")
        with running_server(url) as base:
            runs = [first_screen(base, key, timeline=i == 0) for i in range(args.runs)]
        for i, (cold, warm) in enumerate(runs, 1):
            print(
                f"  run {i}: cold first view {cold.first:5.2f} s ({cold.first_bytes / 1024:.1f} KB,"
                f" SVG {cold.svg / 1024:.1f} KB), interactive {cold.ready:5.2f} s"
                f" ({cold.total / 1024:.1f} KB, {cold.code / 1024:.1f} KB JS+CSS);"
                f" again: first view {warm.first:5.2f} s, interactive {warm.ready:5.2f} s"
                f" ({warm.total / 1024:.1f} KB)"
            )

        def median(f: Callable[[tuple[Load, Load]], float]) -> float:
            return statistics.median(f(r) for r in runs)

        print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        first, svg = median(lambda r: r[0].first), median(lambda r: r[0].svg) / 1024
        print(
            f"first map with my cells (SVG first view), median: {first:.2f} s (budget 2.5 s),"
            f" {median(lambda r: r[0].first_bytes) / 1024:.0f} KB transferred by then,"
            f" SVG {svg:.1f} KB"
        )
        print(
            f"interactive map (MapLibre, tiles drawn), median: {median(lambda r: r[0].ready):.2f} s"
        )
        print(
            f"first screen transferred, median: {median(lambda r: r[0].total) / 1024:.0f} KB"
            " (budget 1536 KB)"
        )
        again, again_ready = median(lambda r: r[1].first), median(lambda r: r[1].ready)
        print(
            "the same screen loaded again (files kept), median: first view"
            f" {again:.2f} s, interactive {again_ready:.2f} s"
        )

    if args.url:
        measure(args.url)
    else:
        with throwaway_city("webapp", args.scale) as url:
            measure(url)


if __name__ == "__main__":
    main()
