"""Load benchmark of photo uploads: 3 MB JPEGs with EXIF GPS, at a fixed concurrency,
against a real ``cityhex serve``.

Run: ``flock /tmp/cityhex-bench.lock .venv/bin/python tests/bench/bench_attachments.py``
(``--uploads 120 --concurrency 4 --workers 2`` by default; the goal is 20 uploads/s).

It makes a throwaway PostGIS cluster in /tmp with the incident test city
(``tests.incidents.conftest.build_city``), reports one case per 20 uploads with an app key,
and makes ``--uploads`` distinct photo-like JPEGs (noise over gradients, about 3 MB, EXIF
with make, model and GPS) before the clock starts, so every upload stores a new file (no
deduplication). Then ``--concurrency`` clients each upload the next photo as soon as their
last one is answered (closed loop). Each upload sniffs the file, strips its metadata, makes
the thumbnail, writes file and thumbnail durably and inserts the row. It checks that every
upload was answered 201, that the database holds one row per upload and the disk one file
(and one thumbnail) per distinct hash, and that a served photo has no GPS; it prints the
sustained uploads/s, the median and p95 latency, and the server's CPU time per upload (its
process and workers, from /proc), the figure that does not depend on what else the machine
runs.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import psycopg
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from layers.db.keys import create_key
from layers.db.migrate import migrate
from tests.bench.common import throwaway_cluster
from tests.helpers import INCIDENT_CENTRE, running_server
from tests.incidents.conftest import build_city

GPS_IFD = 0x8825
CASES_EVERY = 20


def server_cpu_s(port: str) -> float:
    """CPU seconds (user + system) used so far by the ``cityhex serve`` listening on ``port``
    and every process under it (its workers), read from /proc."""
    parents: dict[int, int] = {}
    root = None
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        if b"serve" in cmdline and b"--port" in cmdline and port.encode() in cmdline:
            root = pid
    tree, grown = {root}, True
    while grown:
        more = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= more
        grown = bool(more)
    ticks = 0
    for pid in tree:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def photos(count: int, width: int, height: int, seed: int) -> list[bytes]:
    """``count`` distinct photo-like JPEGs of ``width`` × ``height`` with EXIF GPS."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x / width * 255, y / height * 255, (x + y) / (width + height) * 255], -1)
    noise = rng.normal(0, 22, (height, width, 3))
    out = []
    for n in range(count):
        pixels = np.clip(base + np.roll(noise, n * 7919, axis=1), 0, 255).astype(np.uint8)
        exif = Image.Exif()
        exif[0x010F], exif[0x0110] = "PhoneCo", "P-40 Pro"
        gps = exif.get_ifd(GPS_IFD)
        gps[1], gps[2], gps[3], gps[4] = "N", (22.0, 32.0, 24.0), "E", (114.0, 3.0, float(n))
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=90, exif=exif)
        out.append(buffer.getvalue())
    return out


async def upload_all(
    base: str, headers: dict[str, str], cases: list[int], files: list[bytes], concurrency: int
) -> tuple[list[float], list[int], list[dict], float]:
    """Upload every file, ``concurrency`` at a time; latencies, statuses, bodies, seconds."""
    queue = list(enumerate(files))
    latencies: list[float] = []
    statuses: list[int] = []
    bodies: list[dict] = []

    async def client() -> None:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120) as http:
            while queue:
                n, data = queue.pop(0)
                case = cases[n // CASES_EVERY]
                started = time.perf_counter()
                r = await http.post(
                    f"/incidents/{case}/attachments",
                    files={"file": (f"IMG_{n:04d}.jpg", data, "image/jpeg")},
                    data={"stage": "report"},
                )
                latencies.append(time.perf_counter() - started)
                statuses.append(r.status_code)
                if r.status_code == 201:
                    bodies.append(r.json())

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return latencies, statuses, bodies, time.perf_counter() - started


def main() -> None:
    """Make the cluster and the city, make the photos, upload them, check, print figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--uploads", type=int, default=120)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--width", type=int, default=3000)
    parser.add_argument("--height", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()

    started = time.perf_counter()
    files = photos(args.uploads, args.width, args.height, args.seed)
    sizes = [len(f) / 1e6 for f in files]
    print(
        f"photos            {len(files)} distinct JPEGs {args.width}x{args.height}, "
        f"median {statistics.median(sizes):.2f} MB (made in {time.perf_counter() - started:.0f} s)"
    )
    with throwaway_cluster("attachments") as (cluster, home):
        url = cluster.start()
        migrate(url)
        build_city(url)
        with psycopg.connect(url, autocommit=True) as conn:
            token = create_key(conn, "app", "bench-photos")
        headers = {"Authorization": f"Bearer {token}"}
        env = {"CITYHEX_HOME": str(home)}
        with running_server(url, workers=args.workers, env=env) as base:
            cases = []
            for _ in range(-(-args.uploads // CASES_EVERY)):
                r = httpx.post(
                    f"{base}/incidents",
                    json={"category": "0102", "lon": INCIDENT_CENTRE[0], "lat": INCIDENT_CENTRE[1]},
                    headers=headers,
                )
                r.raise_for_status()
                cases.append(r.json()["id"])
            port = base.rsplit(":", 1)[1]
            cpu_before, client_before = server_cpu_s(port), time.process_time()
            latencies, statuses, bodies, elapsed = asyncio.run(
                upload_all(base, headers, cases, files, args.concurrency)
            )
            server_cpu = server_cpu_s(port) - cpu_before
            client_cpu = time.process_time() - client_before
            served = httpx.get(base + bodies[0]["url"], headers=headers).content
        with psycopg.connect(url) as conn:
            rows = conn.execute("SELECT count(*) FROM attachments").fetchone()[0]
        on_disk = [p for p in (home / "attachments").glob("??/*") if p.is_file()]
        hashes = {b["sha256"] for b in bodies}
        thumbs = sum(p.name.endswith(".thumb") for p in on_disk)

    ok = statuses.count(201)
    cut = sorted(latencies)
    print(
        f"uploads           {len(statuses)} at concurrency {args.concurrency}, "
        f"{args.workers} server workers, {elapsed:.1f} s"
    )
    print(f"statuses          {dict((s, statuses.count(s)) for s in sorted(set(statuses)))}")
    print(f"sustained         {ok / elapsed:.1f} uploads/s  ({sum(sizes) / elapsed:.1f} MB/s in)")
    print(
        f"latency           median {1000 * statistics.median(cut):.0f} ms  "
        f"p95 {1000 * cut[int(0.95 * (len(cut) - 1))]:.0f} ms"
    )
    per_upload = 1000 * server_cpu / len(statuses)
    print(
        f"server CPU        {per_upload:.0f} ms per upload (all workers; the load client used "
        f"{1000 * client_cpu / len(statuses):.0f} ms): {2000 / per_upload:.1f} uploads/s "
        f"would fill 2 free cores; load average at the end {os.getloadavg()[0]:.1f}"
    )
    print(
        f"stored            {rows} rows, {len(on_disk) - thumbs} files + {thumbs} thumbnails "
        f"for {len(hashes)} distinct hashes"
    )
    gps = Image.open(io.BytesIO(served)).getexif().get_ifd(GPS_IFD)
    print(f"served photo      GPS tags: {len(gps)}")
    if ok != args.uploads or rows != ok or len(on_disk) != 2 * len(hashes) or gps:
        sys.exit("FAILED: an upload was refused, lost or stored wrongly")


if __name__ == "__main__":
    main()
