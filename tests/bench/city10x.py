"""The benchmark city at ten times the demo: ~650,000 cases a year over ten years (6.5 M) and
~1,000,000 assets, deterministic, in an embedded PostGIS cluster of its own that stays
until ``drop`` removes it (so the benchmark can run against it many times).

    .venv/bin/python tests/bench/city10x.py load [--home DIR] [--years 10] [--scale 10]
    .venv/bin/python tests/bench/city10x.py url  [--home DIR]    # start it, print its URL
    .venv/bin/python tests/bench/city10x.py drop [--home DIR]    # stop it, remove the folder

``load`` migrates the database and loads the demo city at ``--scale`` (its generators:
districts, the res-10 grid, assets, sensors with a month of readings, and the year of
cases ending 31 October 2026 with their transitions), all with COPY; then adds
``--years - 1`` earlier years of cases: each year's cases are the newest year's, moved
back by whole years of 365 days, each point moved by a normal offset of 30 m (a seeded
generator per year), with their cells at res 5–11 computed with h3, written with COPY.
Earlier years carry no transitions (their statuses, times and deadlines are kept). It
prints seconds per phase.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from etl.copytext.ewkb import ewkb_hex_points
from etl.copytext.writer import copy_columns
from etl.demo.city import to_lonlat, to_metres
from etl.demo.loader import load_demo
from gis.hexgrid import DEFAULT_RES, latlng_cells, level_cells
from layers.db.embedded import EmbeddedCluster
from layers.db.migrate import migrate

HOME = Path("/tmp/cityhex-bench-city10x")
PORT = 55_410
SEED = 20261206
JITTER_M = 30.0
YEAR_S = 365 * 86400
LOAD_CONF = {
    "fsync": "off",
    "full_page_writes": "off",
    "synchronous_commit": "off",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "30min",
    "maintenance_work_mem": "512MB",
    "shared_buffers": "512MB",
}
"""Settings of the benchmark cluster: a throwaway copy, so durability is traded for speed."""
SHIFTED = ("reported_at", "registered_at", "dispatched_at", "resolved_at", "closed_at",
           "deadline", "updated_at")  # fmt: skip
"""The times of a case, moved back with it."""
STEPS = ("resolve_first_at", "resolve_last_at", "resolve_n", "rework_first_at", "rework_last_at",
         "rework_n")  # fmt: skip
"""The case's summary of its resolve and rework transitions: left at none (earlier years carry
no transitions)."""


def cluster(home: Path) -> EmbeddedCluster:
    """The benchmark city's cluster in ``home``."""
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o755)
    return EmbeddedCluster(home, port=PORT)


def newest_year(conn: psycopg.Connection) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ids, lon and lat of the demo's cases."""
    rows = conn.execute("SELECT id, ST_X(geom), ST_Y(geom) FROM incidents ORDER BY id").fetchall()
    ids, lon, lat = (np.array(c) for c in zip(*rows, strict=True))
    return ids.astype(np.int64), lon.astype(np.float64), lat.astype(np.float64)


def write_year(conn: psycopg.Connection, base: tuple, k: int, first_id: int) -> tuple[float, float]:
    """Add the cases ``k`` years before the newest (see the module doc): their moved points and
    cells computed here, COPYed to a staging table, joined to the newest year's rows for the
    rest. Seconds spent generating and writing."""
    started = time.perf_counter()
    ids, lon0, lat0 = base
    rng = np.random.default_rng(SEED + k)
    x, y = to_metres(lon0, lat0)
    lon, lat = to_lonlat(x + rng.normal(0, JITTER_M, len(x)), y + rng.normal(0, JITTER_M, len(y)))
    cols = {"src": ids, "h3": latlng_cells(lon, lat, DEFAULT_RES), **level_cells(lon, lat),
            "geom": ewkb_hex_points(lon, lat)}  # fmt: skip
    generated = time.perf_counter() - started
    levels = [c for c in cols if c.startswith("h3")]
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS moved (src bigint, "
        + ", ".join(f"{c} bigint" for c in levels)
        + ", geom geometry(Point, 4326))"
    )
    conn.execute("TRUNCATE moved")
    copy_columns(conn, "moved", cols)
    back = f"interval '{k * 365} days'"
    keep = [c for c in incident_columns(conn) if c not in (*SHIFTED, *STEPS, *levels, "id", "geom")]
    conn.execute(
        f"INSERT INTO incidents (id, {', '.join(keep)}, {', '.join(SHIFTED)}, "
        f"{', '.join(levels)}, geom) SELECT {first_id} - 1 + row_number() OVER (ORDER BY m.src), "
        f"{', '.join('i.' + c for c in keep)}, {', '.join(f'i.{c} - {back}' for c in SHIFTED)}, "
        f"{', '.join('m.' + c for c in levels)}, m.geom"
        " FROM moved m JOIN incidents i ON i.id = m.src"
    )
    return generated, time.perf_counter() - started - generated


def incident_columns(conn: psycopg.Connection) -> list[str]:
    """The incidents table's ordinary (not generated) columns."""
    return [r[0] for r in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'incidents'"
        " AND is_generated = 'NEVER' ORDER BY ordinal_position").fetchall()]  # fmt: skip


def load(home: Path, years: int, scale: float) -> None:
    """Load the city (see the module doc) and print the seconds of each phase."""
    c = cluster(home)
    url = c.start(LOAD_CONF)
    phases: dict[str, float] = {}
    t0 = time.perf_counter()
    migrate(url)
    report = load_demo(url, scale, progress=False)
    phases["demo city (load_demo)"] = time.perf_counter() - t0
    for name, seconds in report.phases.items():
        phases[f"  demo: {name}"] = seconds
    with psycopg.connect(url) as conn:
        base = newest_year(conn)
        first_id = int(base[0].max()) + 1
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'incidents'"
            " AND indexname NOT LIKE '%%pkey'"
        ).fetchall()
        for name, _ in indexes:  # rebuilt once after the rows are in
            conn.execute(f"DROP INDEX {name}")
        for k in range(1, years):
            phases[f"year -{k}: generate, write"] = write_year(conn, base, k, first_id)
            first_id += len(base[0])
        t = time.perf_counter()
        for _, definition in indexes:
            conn.execute(definition)
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('incidents', 'id'), max(id)) FROM incidents"
        )
        conn.commit()
        phases["incident indexes"] = time.perf_counter() - t
    with psycopg.connect(url, autocommit=True) as conn:
        t = time.perf_counter()
        conn.execute("VACUUM ANALYZE incidents")
        conn.execute("VACUUM ANALYZE assets")
        conn.execute("VACUUM ANALYZE incident_transitions")
        phases["vacuum analyze"] = time.perf_counter() - t
        rows = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("incidents", "incident_transitions", "assets", "sensors", "readings",
                          "grid_cells")}  # fmt: skip
        size = conn.execute(
            "SELECT pg_size_pretty(pg_database_size(current_database()))"
        ).fetchone()[0]
    total = time.perf_counter() - t0
    for name, s in phases.items():
        text = " / ".join(f"{v:.1f}" for v in s) if isinstance(s, tuple) else f"{s:.1f}"
        print(f"{name:<34} {text} s")
    print(", ".join(f"{t} {n:,}" for t, n in rows.items()))
    print(f"loaded in {total:.0f} s; database {size}; {url}")


def main() -> None:
    """Run the command the arguments name."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=("load", "url", "drop"))
    ap.add_argument("--home", type=Path, default=HOME)
    ap.add_argument("--years", type=int, default=10)
    ap.add_argument("--scale", type=float, default=10.0)
    a = ap.parse_args()
    if a.command == "load":
        load(a.home, a.years, a.scale)
    elif a.command == "url":
        print(cluster(a.home).start())
    else:
        cluster(a.home).stop()
        shutil.rmtree(a.home, ignore_errors=True)


if __name__ == "__main__":
    main()
