"""The web app's first inspector screen in Chromium with 4× CPU slowdown and a Fast-3G network
(Chrome DevTools' profile: 562.5 ms round trip, 1.44 Mbit/s down, 675 kbit/s up), on the demo
city: how long until the map shows the inspector's cells with every tile of the view drawn,
how many bytes that first screen transferred, and how big the app's JS + CSS is gzipped.

Each run is a fresh browser profile (nothing cached) holding the inspector's key as a user who
ticked "remember" does, so the app first exchanges it for a token (``POST /auth/token``); the
median of ``--runs`` is printed with every run. Budgets (issue 15): first map with my cells
≤ 2.5 s, JS + CSS ≤ 350 KB gzipped, the first inspector screen ≤ 1.5 MB transferred.

    flock /tmp/cityhex-bench.lock .venv/bin/python tests/bench/bench_webapp.py [--scale 1]
    [--runs 3] [--url URL: an existing demo city instead of a throwaway one]
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

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


def inspector_key(url: str) -> tuple[int, int, str]:
    """The inspector with the median number of cells, that count, and a new key for them."""
    with psycopg.connect(url, autocommit=True) as conn:
        counts = conn.execute(
            "SELECT inspector_id, count(*) FROM grid_cells WHERE inspector_id IS NOT NULL "
            "GROUP BY 1 ORDER BY 2, 1"
        ).fetchall()
        inspector, cells = counts[len(counts) // 2]
        return inspector, cells, create_key(conn, "inspector", "bench-webapp", inspector)


def first_screen(base: str, key: str, timeline: bool = False) -> tuple[float, int, int, float, int]:
    """One cold load of the inspector's screen: seconds until the map with the cells is
    drawn, bytes transferred by then, and bytes of JS + CSS among them; then the same screen
    loaded again in the same profile (the next morning: files kept by the browser's HTTP
    cache; the service worker is blocked, as CDP's network emulation would not slow its
    fetches): its seconds and bytes. With ``timeline``, each request of the cold load
    (start and end in ms from the first, bytes) is printed."""
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
        starts: dict[str, tuple[str, float]] = {}
        ends: dict[str, float] = {}
        cdp.on(
            "Network.requestWillBeSent",
            lambda e: starts.setdefault(e["requestId"], (e["request"]["url"], e["timestamp"])),
        )
        cdp.on(
            "Network.loadingFinished", lambda e: ends.__setitem__(e["requestId"], e["timestamp"])
        )
        cdp.on("Network.responseReceived", lambda e: kinds.__setitem__(e["requestId"], e["type"]))
        cdp.on(
            "Network.loadingFinished",
            lambda e: sizes.__setitem__(e["requestId"], int(e["encodedDataLength"])),
        )
        page.goto(f"{base}/app", wait_until="commit", timeout=120_000)
        while not page.evaluate(f"() => Boolean({READY})"):
            time.sleep(0.05)
        seconds = page.evaluate("performance.now()") / 1000
        code = sum(n for r, n in sizes.items() if kinds.get(r) in ("Script", "Stylesheet"))
        total = sum(sizes.values())
        cold = dict(starts), dict(ends), dict(sizes)
        sizes.clear()
        page.reload(wait_until="commit", timeout=120_000)
        while not page.evaluate(f"() => Boolean({READY})"):
            time.sleep(0.05)
        warm_seconds = page.evaluate("performance.now()") / 1000
        warm_total = sum(sizes.values())
        browser.close()
    starts, ends, sizes = cold
    if timeline and starts:
        first = min(t for _, t in starts.values())
        for rid, (url, t) in sorted(starts.items(), key=lambda item: item[1][1]):
            end = f"{(ends[rid] - first) * 1000:7.0f}" if rid in ends else "      —"
            path = url.removeprefix(base)[:70]
            size = sizes.get(rid, 0) / 1024
            print(f"    {(t - first) * 1000:7.0f} → {end} ms {size:7.1f} KB {path}")
    return seconds, total, code, warm_seconds, warm_total


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
        for i, (s, total, code, warm, warm_total) in enumerate(runs, 1):
            print(
                f"  run {i}: cold {s:6.2f} s, {total / 1024:7.1f} KB ({code / 1024:.1f} KB JS+CSS);"
                f" again {warm:6.2f} s, {warm_total / 1024:7.1f} KB"
            )
        seconds = statistics.median(r[0] for r in runs)
        kilobytes = statistics.median(r[1] for r in runs) / 1024
        print(f"first map with my cells, median: {seconds:.2f} s (budget 2.5 s)")
        print(f"first screen transferred, median: {kilobytes:.0f} KB (budget 1536 KB)")
        again = statistics.median(r[3] for r in runs)
        print(f"the same screen loaded again (files kept), median: {again:.2f} s")

    if args.url:
        measure(args.url)
    else:
        with throwaway_city("webapp", args.scale) as url:
            measure(url)


if __name__ == "__main__":
    main()
