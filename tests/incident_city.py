"""A small hand-made city for the incident tests, in a database of its own.

Two districts side by side, split at ``SPLIT_LON``; a disk of H3 cells around ``CENTRE``;
each cell's inspector is one of four users chosen by the cell's position, so a test can
say independently who should get a report: ``expected_inspector(lon, lat)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import h3
import psycopg
import pytest
from fastapi.testclient import TestClient

from layers.db.keys import create_key
from tests.support import create_database

CENTRE = (114.05, 22.54)
SPLIT_LON = 114.05
RING = 12
INSPECTORS = {
    101: "Inspector West-South",
    102: "Inspector West-North",
    103: "Inspector East-South",
    104: "Inspector East-North",
}
STAFF = {201: ("Sanitation staff", "hw"), 202: ("Urban management staff", "cgj")}


def centre_cell() -> str:
    return h3.latlng_to_cell(CENTRE[1], CENTRE[0], 10)


def expected_inspector(lon: float, lat: float) -> int | None:
    """The inspector the city gives the cell of (lon, lat), computed from the cell's centre."""
    cell = h3.latlng_to_cell(lat, lon, 10)
    if h3.grid_distance(cell, centre_cell()) > RING:
        return None
    clat, clon = h3.cell_to_latlng(cell)
    return (101 if clon < SPLIT_LON else 103) + (1 if clat >= CENTRE[1] else 0)


def district_of(lon: float, lat: float) -> int:
    """District 1 west of the split, 2 east of it (by the cell's centre)."""
    _, clon = h3.cell_to_latlng(h3.latlng_to_cell(lat, lon, 10))
    return 1 if clon < SPLIT_LON else 2


def build_city(url: str) -> None:
    """Districts, users and grid cells of the test city."""
    with psycopg.connect(url, autocommit=True) as conn:
        for did, (x0, x1) in ((1, (113.9, SPLIT_LON)), (2, (SPLIT_LON, 114.2))):
            conn.execute(
                "INSERT INTO districts (id, code, name, geom) VALUES (%s, %s, %s, "
                "ST_Multi(ST_MakeEnvelope(%s, 22.4, %s, 22.7, 4326)))",
                (did, f"44030{did}", f"District {did}", x0, x1),
            )
        for uid, name in INSPECTORS.items():
            conn.execute(
                "INSERT INTO users (id, name, role, district_id) VALUES (%s, %s, 'inspector', %s)",
                (uid, name, 1 if uid < 103 else 2),
            )
        for uid, (name, dept) in STAFF.items():
            conn.execute(
                "INSERT INTO users (id, name, role, department_id) "
                "SELECT %s, %s, 'staff', id FROM departments WHERE code = %s",
                (uid, name, dept),
            )
        rows = []
        for cell in h3.grid_disk(centre_cell(), RING):
            clat, clon = h3.cell_to_latlng(cell)
            ring = h3.cell_to_boundary(cell)
            wkt = "POLYGON((" + ",".join(f"{x} {y}" for y, x in [*ring, ring[0]]) + "))"
            rows.append(
                (h3.str_to_int(cell), district_of(clon, clat), expected_inspector(clon, clat), wkt)
            )
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO grid_cells (h3, res, district_id, area_m2, inspector_id, geom) "
                "VALUES (%s, 10, %s, 15000, %s, ST_GeomFromText(%s, 4326))",
                rows,
            )


@dataclass
class City:
    """The test city's database and an in-process client on it."""

    url: str
    client: TestClient

    def key(self, role: str, user_id: int | None = None) -> dict[str, str]:
        """An Authorization header for a new key of ``role`` (speaking for ``user_id``)."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            token = create_key(conn, role, f"{role}-{user_id or 'any'}", user_id)
        return {"Authorization": f"Bearer {token}"}

    def department_id(self, code: str) -> int:
        """The id of the department with ``code``."""
        with psycopg.connect(self.url) as conn:
            return conn.execute("SELECT id FROM departments WHERE code = %s", (code,)).fetchone()[0]

    def category_department(self, category: str) -> int:
        """The department of ``category``, read straight from the table."""
        with psycopg.connect(self.url) as conn:
            return conn.execute(
                "SELECT department_id FROM incident_categories WHERE code = %s", (category,)
            ).fetchone()[0]


@pytest.fixture(scope="session", name="city")
def city_fixture(admin_url: str) -> Iterator[City]:
    """The test city, served in process."""
    from spatial_api.app import create_app

    url = create_database(admin_url, "cityhex_incidents")
    build_city(url)
    with TestClient(create_app(url)) as client:
        yield City(url, client)
