"""Test support for the grid tests: a database of their own, districts, inspectors, keys,
and independent checks written with the h3 package only."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import h3
import psycopg
import shapely
from fastapi.testclient import TestClient

from layers.db.keys import create_key
from tests.support import create_database


@dataclass
class GridCity:
    """A migrated database of its own and the app serving it in process."""

    url: str
    client: TestClient

    def key(self, role: str, inspector_id: int | None = None) -> dict[str, str]:
        """An Authorization header for a new key with ``role``."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            return {"Authorization": f"Bearer {create_key(conn, role, role, inspector_id)}"}

    def rows(self, query: str, params: Any = None) -> list[tuple]:
        """The rows of a query."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(query, params).fetchall()

    def value(self, query: str, params: Any = None) -> Any:
        """The first column of the first row of a query."""
        return self.rows(query, params)[0][0]

    def execute(self, query: str, params: Any = None) -> None:
        """Run a statement."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(query, params)

    def add_district(self, code: str, name: str, area: shapely.Geometry) -> int:
        """A district with a lon/lat boundary; its id."""
        multi = area if area.geom_type == "MultiPolygon" else shapely.MultiPolygon([area])
        return self.value(
            "INSERT INTO districts (code, name, geom) VALUES "
            "(%s, %s, ST_GeomFromText(%s, 4326)) RETURNING id",
            (code, name, multi.wkt),
        )

    def add_users(
        self,
        count: int,
        role: str = "inspector",
        district_id: int | None = None,
    ) -> list[int]:
        """``count`` users with ``role`` (and a phone number each); their ids."""
        rows = self.rows(
            "INSERT INTO users (name, role, district_id, phone) "
            "SELECT %s || ' ' || n, %s, %s, '+86 138 0000 ' || lpad(n::text, 4, '0') "
            "FROM generate_series(1, %s) n RETURNING id",
            (role, role, district_id, count),
        )
        return [r[0] for r in rows]

    def grid(self) -> dict[str, int | None]:
        """Every stored cell (hex) and its inspector."""
        return {
            h3.int_to_str(c): i for c, i in self.rows("SELECT h3, inspector_id FROM grid_cells")
        }


@contextmanager
def grid_city(admin_url: str, name: str) -> Iterator[GridCity]:
    """A fresh migrated database ``name`` and the app on it."""
    from spatial_api.app import create_app

    url = create_database(admin_url, name)
    with TestClient(create_app(url)) as client:
        yield GridCity(url, client)


def connected(cells: Iterable[str]) -> bool:
    """Whether hex cells form one piece through H3 adjacency (checked with h3 only)."""
    todo = list(cells)
    inside = set(todo)
    if not inside:
        return False
    seen = {todo[0]}
    stack = [todo[0]]
    while stack:
        cell = stack.pop()
        for n in h3.grid_disk(cell, 1):
            if n in inside and n not in seen and h3.are_neighbor_cells(cell, n):
                seen.add(n)
                stack.append(n)
    return seen == inside


def hex_polygon(cell: str) -> shapely.Polygon:
    """A cell's boundary from the h3 package, as a lon/lat polygon."""
    return shapely.Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(cell)])
