"""The inspector's offline area file (``GET /tiles/export/area.pmtiles``, z12–17 of the city
style's base layers) on the demo city, over HTTP against ``cityhex serve``: its size and tile
count, and how long it takes cold (tile cache empty), again (tiles cached), and to be skipped
(If-None-Match → 304). Medians of ``--runs``; run on demand:

    PYTHONPATH=$PWD python tests/bench/bench_area_export.py --scale 1 --runs 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from pmtiles.reader import MemorySource, Reader  # noqa: E402

from tests.bench.bench_webapp import inspector_key  # noqa: E402
from tests.bench.common import throwaway_city  # noqa: E402
from tests.helpers import running_server  # noqa: E402

PATH = "/tiles/export/area.pmtiles"


def timed(client: httpx.Client, headers: dict[str, str]) -> tuple[float, httpx.Response]:
    """Seconds to the whole answer, and the answer."""
    start = time.perf_counter()
    r = client.get(PATH, headers=headers)
    return time.perf_counter() - start, r


def measure(url: str, runs: int) -> None:
    """Print the figures for the inspector with the median number of cells."""
    inspector, cells, key = inspector_key(url)
    auth = {"Authorization": f"Bearer {key}"}
    with running_server(url) as base, httpx.Client(base_url=base, timeout=300) as client:
        cold, first = timed(client, auth)
        assert first.status_code == 200, first.text
        header = Reader(MemorySource(first.content)).header()
        again = [timed(client, auth)[0] for _ in range(runs)]
        etag = {**auth, "If-None-Match": first.headers["etag"]}
        skipped = []
        for _ in range(runs):
            seconds, r = timed(client, etag)
            assert r.status_code == 304
            skipped.append(seconds)
    print(f"inspector {inspector} with {cells} cells, zooms 12-17")
    print(
        f"  file: {len(first.content) / 1e6:.2f} MB, {header['addressed_tiles_count']} tiles"
        f" with features ({header['min_zoom']}-{header['max_zoom']})"
    )
    print(f"  cold (tile cache empty): {cold:.2f} s")
    print(f"  again (tiles cached), median of {runs}: {statistics.median(again):.2f} s")
    print(f"  skipped (304), median of {runs}: {statistics.median(skipped):.2f} s")


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--url")
    args = parser.parse_args()
    if args.url:
        measure(args.url, args.runs)
    else:
        with throwaway_city("area_export", args.scale) as url:
            measure(url, args.runs)


if __name__ == "__main__":
    main()
