"""The incident city, built once for the session: two districts side by side, four inspectors
each owning a quarter of a disk of H3 cells, department staff. Its layout and the answers a
test expects from it (``expected_inspector``, ``district_of``) are in tests.helpers."""

from __future__ import annotations

from collections.abc import Iterator

import h3
import psycopg
import pytest
from fastapi.testclient import TestClient

from tests.helpers import (
    INSPECTORS,
    RING,
    SPLIT_LON,
    STAFF,
    City,
    centre_cell,
    district_of,
    expected_inspector,
)


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


@pytest.fixture(scope="session")
def city(new_database) -> Iterator[City]:
    """The incident city, served in process."""
    from spatial_api.app import create_app

    url = new_database("cityhex_incidents")
    build_city(url)
    with TestClient(create_app(url)) as client:
        yield City(url, client)
