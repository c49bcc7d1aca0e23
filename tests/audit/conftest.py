"""Each audit test gets a small city of its own (``audit_city(name)``): twenty lamps, one
case with a reporter, one grid cell, and the app serving them; a test may break its chain.

``chain_break(url)`` checks the chain independently of layers.audit: it recomputes every
hash with hashlib from the stored columns, by the canonical form the manual documents."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta

import h3
import psycopg
import pytest
from fastapi.testclient import TestClient

from tests.helpers import City, cell

LAMPS = 20
CENTRE = (114.05, 22.55)
REPORTER = "Ms Wang, 13800001234"


def build_city(url: str) -> None:
    """Twenty lamps, a district, an inspector, the grid cell of the centre and a case."""
    lon, lat = CENTRE
    with psycopg.connect(url, autocommit=True) as conn:
        conn.cursor().executemany(
            "INSERT INTO assets (code, class_code, kind, geom) VALUES (%s, '0101', 'lamp', "
            "ST_SetSRID(ST_MakePoint(%s, %s), 4326))",
            [(f"4403040101{i:06d}", lon + i * 1e-4, lat) for i in range(1, LAMPS + 1)],
        )
        conn.execute(
            "INSERT INTO districts (id, code, name, geom) VALUES (1, '440304', 'Futian', "
            "ST_Multi(ST_MakeEnvelope(114.0, 22.5, 114.1, 22.6, 4326)))"
        )
        conn.execute(
            "INSERT INTO users (id, name, role, district_id, phone) "
            "VALUES (7, 'Inspector Li', 'inspector', 1, '+86 138 0000 0007')"
        )
        hexcell = h3.latlng_to_cell(lat, lon, 10)
        ring = [(x, y) for y, x in h3.cell_to_boundary(hexcell)]
        wkt = "POLYGON((" + ",".join(f"{x} {y}" for x, y in [*ring, ring[0]]) + "))"
        conn.execute(
            "INSERT INTO grid_cells (h3, res, district_id, area_m2, inspector_id, geom) "
            "VALUES (%s, 10, 1, 15000, 7, ST_GeomFromText(%s, 4326))",
            (h3.str_to_int(hexcell), wkt),
        )
        conn.execute(
            "INSERT INTO incidents (id, category_code, status, description, reporter, h3, "
            "reported_at, geom) VALUES (1, '0101', 'reported', 'a shed on the pavement', %s, "
            "%s, now(), ST_SetSRID(ST_MakePoint(%s, %s), 4326))",
            (REPORTER, cell(lon, lat), lon, lat),
        )


@pytest.fixture(scope="session")
def audit_city(new_database) -> Callable[[str], AbstractContextManager[City]]:
    """``with audit_city(name) as city``: a fresh database ``name`` with the small city, and
    the app serving it."""
    from spatial_api.app import create_app

    @contextmanager
    def make(name: str) -> Iterator[City]:
        url = new_database(name)
        build_city(url)
        with TestClient(create_app(url)) as client:
            yield City(url, client)

    return make


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _field(value: object) -> str:
    return "~" if value is None else f"{len(str(value))}:{value}"


def chain_break(url: str) -> int | None:
    """The seq of the first row that does not chain (a gap: the first missing seq), or None
    when every row from the anchor (or the first) to the head holds."""
    with psycopg.connect(url) as conn:
        anchor = conn.execute("SELECT seq, hash FROM audit_anchor ORDER BY seq DESC LIMIT 1")
        prev_seq, prev_hash = anchor.fetchone() or (0, bytes(32))
        rows = conn.execute(
            "SELECT seq, at, action, actor, role, key_id, method, route, path, target::text, "
            "status, client, detail::text, prev_hash, hash FROM audit_log WHERE seq > %s "
            "ORDER BY seq",
            (prev_seq,),
        ).fetchall()
        head_seq, head_hash = conn.execute("SELECT seq, hash FROM audit_head").fetchone()
    for seq, at, *fields, stored_prev, stored_hash in rows:
        micros = (at - EPOCH) // timedelta(microseconds=1)
        text = "|".join(_field(v) for v in (seq, micros, *fields))
        if seq != prev_seq + 1:
            return prev_seq + 1
        if hashlib.sha256(bytes(stored_prev) + text.encode()).digest() != bytes(stored_hash):
            return seq
        if bytes(stored_prev) != bytes(prev_hash):
            return seq
        prev_seq, prev_hash = seq, stored_hash
    if (head_seq, bytes(head_hash)) != (prev_seq, bytes(prev_hash)):
        return prev_seq + 1
    return None


def wait_out_the_hour(margin_s: float = 30.0) -> None:
    """Sleep past the next full UTC hour if it is less than ``margin_s`` away (key uses are
    counted per hour)."""
    left = 3600 - time.time() % 3600
    if left < margin_s:
        time.sleep(left + 0.5)
