"""Benchmark of what the audit trail costs on hot paths: the same requests on the same data,
by the application with its audit trail and by the same application without it.

Run: ``flock /tmp/cityhex-bench.lock .venv/bin/python tests/bench/bench_audit.py``
(``--rounds N`` to repeat each measure, ``--fast`` for a cluster without fsync).

It makes a throwaway PostGIS cluster in /tmp, a database with 9 lamps, a grid cell and an
inspector, and serves it in process (Starlette's TestClient), once with ``AuditTrail`` and
once without, alternating the two ``--rounds`` times. It times:

* 200 PATCHes of one feature, one after another (each an audited write, chained in its
  own transaction);
* 8 clients PATCHing 8 features at once, 25 PATCHes each (the chain's lock serialises the
  commits of concurrent writes);
* 500 ``/grid/lookup`` calls by an app key (each an audited read of personal data).

It prints the median time per request of each, with and without the trail, and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import h3
import psycopg
from fastapi import FastAPI
from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from layers.db.migrate import migrate  # noqa: E402
from spatial_api.app import create_app  # noqa: E402
from spatial_api.audit_trail import AuditTrail  # noqa: E402
from tests.bench.common import throwaway_cluster  # noqa: E402
from tests.helpers import create_database, make_key  # noqa: E402

FAST_CONF = {"fsync": "off", "full_page_writes": "off", "synchronous_commit": "off"}
CENTRE = (114.05, 22.55)
PATCH = {"Content-Type": "application/merge-patch+json"}
WRITERS, EACH = 8, 25


def fill(url: str) -> None:
    """Nine lamps, a district, an inspector and the grid cell of the centre."""
    lon, lat = CENTRE
    with psycopg.connect(url, autocommit=True) as conn:
        for i in range(1, WRITERS + 2):
            conn.execute(
                "INSERT INTO assets (code, class_code, kind, geom) VALUES (%s, '0101', 'lamp', "
                "ST_SetSRID(ST_MakePoint(%s, %s), 4326))",
                (f"4403040101{i:06d}", lon + i * 1e-4, lat),
            )
        conn.execute(
            "INSERT INTO districts (id, code, name, geom) VALUES (1, '440304', 'Futian', "
            "ST_Multi(ST_MakeEnvelope(114.0, 22.5, 114.1, 22.6, 4326)))"
        )
        conn.execute("INSERT INTO users (id, name, role) VALUES (7, 'Inspector Li', 'inspector')")
        cell = h3.latlng_to_cell(lat, lon, 10)
        ring = [(x, y) for y, x in h3.cell_to_boundary(cell)]
        wkt = "POLYGON((" + ",".join(f"{x} {y}" for x, y in [*ring, ring[0]]) + "))"
        conn.execute(
            "INSERT INTO grid_cells (h3, res, district_id, area_m2, inspector_id, geom) "
            "VALUES (%s, 10, 1, 15000, 7, ST_GeomFromText(%s, 4326))",
            (h3.str_to_int(cell), wkt),
        )


def application(url: str, audited: bool) -> FastAPI:
    """The application on ``url``, with or without its audit trail."""
    app = create_app(url)
    if not audited:
        app.user_middleware = [m for m in app.user_middleware if m.cls is not AuditTrail]
    return app


def patches(client: TestClient, editor: dict[str, str], fid: int, count: int) -> None:
    """``count`` PATCHes of feature ``fid``, each with the ETag the previous one returned."""
    etag = client.get(f"/collections/assets/items/{fid}").headers["etag"]
    for n in range(count):
        r = client.patch(
            f"/collections/assets/items/{fid}",
            json={"properties": {"name": f"n{n}"}},
            headers={**editor, **PATCH, "If-Match": etag},
        )
        assert r.status_code == 200, r.text
        etag = r.headers["etag"]


def sequential(client: TestClient, editor: dict[str, str]) -> float:
    """Seconds per PATCH over 200 PATCHes of one feature."""
    started = time.perf_counter()
    patches(client, editor, WRITERS + 1, 200)
    return (time.perf_counter() - started) / 200


def concurrent(client: TestClient, editor: dict[str, str]) -> float:
    """Seconds per PATCH (wall time / all PATCHes) with WRITERS clients at once."""
    threads = [
        threading.Thread(target=patches, args=(client, editor, fid, EACH))
        for fid in range(1, WRITERS + 1)
    ]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return (time.perf_counter() - started) / (WRITERS * EACH)


def lookups(client: TestClient, app_key: dict[str, str]) -> float:
    """Seconds per /grid/lookup over 500 calls."""
    started = time.perf_counter()
    for _ in range(500):
        r = client.get("/grid/lookup", params={"lon": CENTRE[0], "lat": CENTRE[1]}, headers=app_key)
        assert r.status_code == 200, r.text
    return (time.perf_counter() - started) / 500


MEASURES: dict[str, Callable[[TestClient, dict[str, str]], float]] = {
    "200 PATCHes, one client": sequential,
    f"{WRITERS} clients x {EACH} PATCHes": concurrent,
    "500 /grid/lookup (app key)": lookups,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fast", action="store_true", help="no fsync (as the tests run)")
    args = parser.parse_args()
    with throwaway_cluster("audit") as (cluster, _home):
        admin = cluster.start(extra_conf=FAST_CONF if args.fast else None)
        url = create_database(admin, "bench_audit")
        migrate(url)
        fill(url)
        keys = {"editor": make_key(url, "editor"), "app": make_key(url, "app")}
        times: dict[tuple[str, bool], list[float]] = {}
        for _ in range(args.rounds):
            for audited in (True, False):
                with TestClient(application(url, audited)) as client:
                    for name, measure in MEASURES.items():
                        key = keys["app"] if "lookup" in name else keys["editor"]
                        measure(client, key)  # warm-up
                        times.setdefault((name, audited), []).append(measure(client, key))
        with psycopg.connect(url) as conn:
            rows = conn.execute("SELECT count(*) FROM audit_log").fetchone()[0]
    print(f"fsync {'off' if args.fast else 'on'}, {args.rounds} rounds, {rows:,} audit rows")
    print(f"{'':34} {'with audit':>12} {'without':>12} {'ratio':>7}")
    for name in MEASURES:
        with_ms = statistics.median(times[(name, True)]) * 1000
        without_ms = statistics.median(times[(name, False)]) * 1000
        print(f"{name:34} {with_ms:9.2f} ms {without_ms:9.2f} ms {with_ms / without_ms:7.2f}")


if __name__ == "__main__":
    main()
