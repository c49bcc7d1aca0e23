"""``incident_cell_counts`` (migrations 0026, 0028) equals a count of the cases per cell and
status at every resolution 5–11 after inserts (one by one and many in one statement), moves, status
changes and deletes, and unfiltered counts per cell read it: /analytics/h3 gives the counts
of ``h3.latlng_to_cell`` over the points, and filtered counts (which read the cases) agree
with it where they cover every case."""

from __future__ import annotations

import json
import random
from collections import Counter

import h3
import psycopg
import pytest
from fastapi.testclient import TestClient

from layers.db.keys import create_key

RES = range(5, 12)
COLUMN = {r: ("h3" if r == 10 else f"h3_{r}") for r in RES}


def cells_of(lon: float, lat: float) -> dict[str, int]:
    """The case's cell columns, computed with h3."""
    return {COLUMN[r]: h3.str_to_int(h3.latlng_to_cell(lat, lon, r)) for r in RES}


def insert(conn: psycopg.Connection, points: list[tuple[float, float]]) -> None:
    """Cases at ``points`` in one INSERT statement."""
    columns = list(COLUMN.values())
    rows = [[lon, lat, *cells_of(lon, lat).values()] for lon, lat in points]
    conn.execute(
        f"INSERT INTO incidents (category_code, status, reported_at, geom, {', '.join(columns)})"
        f" SELECT '0101', 'reported', now(), ST_SetSRID(ST_MakePoint(x, y), 4326),"
        f" {', '.join('c' + str(i) for i in range(len(columns)))}"
        f" FROM jsonb_to_recordset(%s::jsonb) AS v(x float8, y float8,"
        f" {', '.join(f'c{i} bigint' for i in range(len(columns)))})",
        (
            json.dumps(
                [{"x": x, "y": y, **{f"c{i}": c for i, c in enumerate(cs)}} for x, y, *cs in rows]
            ),
        ),
    )


def table_counts(conn: psycopg.Connection) -> Counter:
    rows = conn.execute(
        "SELECT res, cell, status, n FROM incident_cell_counts WHERE n <> 0"
    ).fetchall()
    return Counter({(r, c, s): n for r, c, s, n in rows})


def grouped_counts(conn: psycopg.Connection) -> Counter:
    found: Counter = Counter()
    for r, column in COLUMN.items():
        for cell, status, n in conn.execute(
            f"SELECT {column}, status, count(*) FROM incidents WHERE {column} IS NOT NULL"
            " GROUP BY 1, 2"
        ).fetchall():
            found[(r, cell, status)] = n
    return found


@pytest.fixture(scope="module")
def url(new_database) -> str:
    return new_database("cell_count_table")


def test_the_table_follows_every_write(url: str) -> None:
    rng = random.Random(26)
    point = lambda: (114.0 + rng.uniform(0, 0.2), 22.5 + rng.uniform(0, 0.2))  # noqa: E731
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(5):
            insert(conn, [point()])
        insert(conn, [point() for _ in range(300)])
        assert table_counts(conn) == grouped_counts(conn)
        ids = [r[0] for r in conn.execute("SELECT id FROM incidents ORDER BY id").fetchall()]
        for case_id in ids[:40]:  # moved: new point, new cells
            lon, lat = point()
            sets = ", ".join(f"{c} = {v}" for c, v in cells_of(lon, lat).items())
            conn.execute(
                f"UPDATE incidents SET geom = ST_SetSRID(ST_MakePoint(%s, %s), 4326), {sets}"
                " WHERE id = %s",
                (lon, lat, case_id),
            )
        conn.execute("UPDATE incidents SET status = 'registered' WHERE id = ANY(%s)", (ids[::2],))
        assert table_counts(conn) == grouped_counts(conn)
        assert {s for _, _, s in +table_counts(conn)} == {"reported", "registered"}
        conn.execute("DELETE FROM incidents WHERE id = ANY(%s)", (ids[30:90],))
        assert table_counts(conn) == grouped_counts(conn)
        before = table_counts(conn)
        conn.execute("UPDATE incidents SET h3_8 = NULL WHERE id = %s", (ids[-1],))
        assert table_counts(conn) != before, "the check can fail"
        assert table_counts(conn) == grouped_counts(conn)


def test_unfiltered_counts_read_the_table(url: str) -> None:
    from spatial_api.app import create_app

    with psycopg.connect(url, autocommit=True) as conn:
        points = conn.execute("SELECT ST_X(geom), ST_Y(geom), h3_8 FROM incidents").fetchall()
        headers = {"Authorization": f"Bearer {create_key(conn, 'app', 'cells')}"}
    expected = Counter(h3.latlng_to_cell(lat, lon, 8) for lon, lat, h8 in points if h8 is not None)
    with TestClient(create_app(url)) as client:
        r = client.get("/analytics/h3", params={"layer": "incidents", "res": 8}, headers=headers)
        assert r.status_code == 200, r.text
        got = {c["cell"]: c["count"] for c in r.json()["cells"]}
        assert got == dict(expected)
        with psycopg.connect(url, autocommit=True) as conn:  # a count no case made
            conn.execute(
                "UPDATE incident_cell_counts SET n = n + 1000 WHERE (res, cell, status) ="
                " (SELECT res, cell, status FROM incident_cell_counts WHERE res = 8 AND n > 0"
                " ORDER BY cell, status LIMIT 1)"
            )
        r = client.get("/analytics/h3", params={"layer": "incidents", "res": 8}, headers=headers)
        assert sum(c["count"] for c in r.json()["cells"]) == sum(expected.values()) + 1000
        filtered = client.get(
            "/analytics/h3",
            params={"layer": "incidents", "res": 8, "from": "2000-01-01T00:00:00Z"},
            headers=headers,
        )
        assert {c["cell"]: c["count"] for c in filtered.json()["cells"]} == dict(expected)
