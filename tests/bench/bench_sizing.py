"""Per-row storage costs measured on a loaded city, and the storage of a 20-million-person city
extrapolated from them (the figures of docs/scale.md).

Run against a database holding the demo city (``cityhex demo``):
``.venv/bin/python tests/bench/bench_sizing.py --url postgresql://…``
(without ``--url``: the database CityHex is configured for).

For each table: rows (count), the average row as stored (``avg(pg_column_size(t.*))``), and
the table's heap, index and total bytes per row (``pg_relation_size``, ``pg_indexes_size``,
``pg_total_relation_size`` summed over partitions, divided by the rows). A patrol fix is not
in the demo: its row is measured as the row PostgreSQL would store for one (user, time,
point, accuracy, heading, speed) with the same per-row header and the index of a point
table. The targets (10 M assets, 5 M cases a year with the demo's transitions per case,
100 M readings a day, 20,000 inspectors at one fix per 10 s for 10 h a day) times the bytes
per row give the sizes; the rates divided by a second give the writes per second.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from layers.db.engine import database_url

TABLES = (
    "assets",
    "incidents",
    "incident_transitions",
    "readings",
    "grid_cells",
    "grid_assignments",
    "sensors",
)
FIX_ROW = (
    "SELECT pg_column_size(ROW(1::bigint, 1::int, now(), "
    "ST_SetSRID(ST_MakePoint(114.05, 22.55), 4326), 5.0::real, 90.0::real, 1.2::real, "
    "617700000000000000::bigint))"
)
"""One patrol fix as a row: id, user, time, point, accuracy, heading, speed, H3 cell."""
DAY = 86_400


def measure(conn: psycopg.Connection) -> dict[str, dict[str, float]]:
    """Rows and bytes per row (row as stored, heap, indexes, total) of each table."""
    out = {}
    for table in TABLES:
        rows = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        avg_row = conn.execute(f"SELECT avg(pg_column_size(t.*)) FROM {table} t").fetchone()[0]
        heap, idx, total = conn.execute(
            "SELECT sum(pg_relation_size(r)), sum(pg_indexes_size(r)), "
            "sum(pg_total_relation_size(r)) FROM (SELECT relid AS r FROM "
            "pg_partition_tree(%s::regclass) WHERE isleaf UNION SELECT %s::regclass "
            "WHERE NOT EXISTS (SELECT FROM pg_partition_tree(%s::regclass) WHERE isleaf)) p",
            (table, table, table),
        ).fetchone()
        out[table] = {
            "rows": rows,
            "row": float(avg_row or 0),
            "heap": float(heap) / max(rows, 1),
            "index": float(idx) / max(rows, 1),
            "total": float(total) / max(rows, 1),
        }
    return out


def main() -> None:
    """Measure, then extrapolate to the 20-million-person city."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=None)
    args = parser.parse_args()
    with psycopg.connect(args.url or database_url()) as conn:
        costs = measure(conn)
        fix_row = conn.execute(FIX_ROW).fetchone()[0]
    print("| table | rows | row as stored (B) | heap B/row | index B/row | total B/row |")
    print("|---|---:|---:|---:|---:|---:|")
    for table, c in costs.items():
        print(
            f"| {table} | {c['rows']:,} | {c['row']:.0f} | {c['heap']:.0f} | {c['index']:.0f} "
            f"| {c['total']:.0f} |"
        )
    per_case = costs["incident_transitions"]["rows"] / max(costs["incidents"]["rows"], 1)
    reading = costs["readings"]["total"]
    # a fix: its row plus the readings table's overhead beyond the row (page, item pointer,
    # fill) and an index per row as the readings' (time and key)
    fix = (
        fix_row
        + (costs["readings"]["heap"] - costs["readings"]["row"])
        + costs["readings"]["index"]
    )
    fixes_per_day = 20_000 * 10 * 3600 / 10
    rows = [
        ("assets", 10e6, costs["assets"]["total"], None),
        ("cases a year", 5e6, costs["incidents"]["total"], None),
        ("case steps a year", 5e6 * per_case, costs["incident_transitions"]["total"], None),
        ("readings a day", 100e6, reading, 100e6 / DAY),
        ("patrol fixes a day", fixes_per_day, fix, 20_000 / 10),
    ]
    print(
        f"\ncase steps per case in the demo: {per_case:.2f}; a fix row: {fix_row} B -> {fix:.0f} B"
    )
    print("| what | rows | B/row | size | writes/s (mean) |")
    print("|---|---:|---:|---:|---:|")
    for what, n, per_row, rate in rows:
        size = n * per_row
        unit = f"{size / 1e9:,.1f} GB" if size < 1e12 else f"{size / 1e12:,.2f} TB"
        writes = f"{rate:,.0f}" if rate else "-"
        print(f"| {what} | {n:,.0f} | {per_row:.0f} | {unit} | {writes} |")


if __name__ == "__main__":
    main()
