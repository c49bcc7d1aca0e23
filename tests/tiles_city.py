"""A small deterministic city for the tile tests, and independent tile arithmetic.

The data are hand-made with numpy and the h3 package (no CityHex code writes them), so the
tests compare tiles against PostGIS and textbook formulas, not against the tile code.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import h3
import numpy as np
import psycopg
import shapely
from pyproj import Transformer

from layers.db.keys import create_key
from layers.incidents.workflow import STATES
from tests.support import create_database

CENTER = (114.05, 22.55)
STATUSES = STATES
CATEGORIES = ("0101", "0102", "0201", "0301", "0401")
NOW = datetime.now(UTC)
R = 6378137.0
TO_3857 = Transformer.from_crs(4326, 3857, always_xy=True)


def tile_box(z: int, x: int, y: int, margin: float = 0.0) -> tuple[float, float, float, float]:
    """Textbook Web Mercator bounds of a tile, widened by ``margin`` tile widths."""
    half = math.pi * R
    size = 2 * half / 2**z
    minx, maxy = -half + x * size, half - y * size
    pad = margin * size
    return (minx - pad, maxy - size - pad, minx + size + pad, maxy + pad)


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    """The tile holding a lon/lat point (slippy-map formula)."""
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return z, x, y


def cell(lon: float, lat: float, res: int = 10) -> int:
    """The H3 cell of a point, as the stored bigint."""
    return h3.str_to_int(h3.latlng_to_cell(lat, lon, res))


def _points(rng: np.random.Generator, n: int, sigma: float) -> np.ndarray:
    return np.column_stack([rng.normal(CENTER[0], sigma, n), rng.normal(CENTER[1], sigma, n)])


def _insert_assets(conn: psycopg.Connection, rng: np.random.Generator) -> None:
    pts = _points(rng, 3000, 0.012)
    rows = []
    for i, (lon, lat) in enumerate(pts.tolist()):
        rows.append(
            (
                f"44030401{i % 3:02d}{i:06d}"[:16],
                "0101" if i % 2 else "0202",
                "lamp" if i % 2 else "manhole",
                None if i % 5 == 0 else f"asset {i}",
                ("intact", "damaged", "lost")[i % 3],
                1 + i % 3,
                cell(lon, lat),
                shapely.Point(lon, lat).wkt,
            )
        )
    for j in range(40):
        lon, lat = pts[j]
        walk = np.cumsum(rng.normal(0, 0.002, (6, 2)), axis=0) + np.array([lon, lat])
        line = shapely.LineString(walk)
        rows.append(
            (
                f"4403040301{j:06d}",
                "0301",
                "pipe",
                f"pipe {j}",
                "intact",
                3,
                cell(*walk[0]),
                line.wkt,
            )
        )
    for k in range(30):
        lon, lat = pts[100 + k]
        side = 0.0008 + 0.002 * rng.random()
        poly = shapely.Polygon(
            [(lon, lat), (lon + side, lat), (lon + side * 1.3, lat + side), (lon, lat + side * 0.8)]
        )
        rows.append(
            (
                f"4403040401{k:06d}",
                "0401",
                "green_area",
                f"green {k}",
                "intact",
                7,
                cell(lon, lat),
                poly.wkt,
            )
        )
    conn.cursor().executemany(
        "INSERT INTO assets (code, class_code, kind, name, state, owner_department_id, h3, geom)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, ST_GeomFromText(%s, 4326))",
        rows,
    )


def _insert_incidents(conn: psycopg.Connection, rng: np.random.Generator) -> None:
    pts = _points(rng, 3000, 0.01)
    rows = []
    for i, (lon, lat) in enumerate(pts.tolist()):
        reported = NOW - timedelta(days=int(rng.integers(1, 300)))
        deadline = NOW + timedelta(hours=float(rng.uniform(-200, 200)))
        status = STATUSES[i % len(STATUSES)]
        rows.append(
            (
                CATEGORIES[i % len(CATEGORIES)],
                status,
                i % 4,
                cell(lon, lat),
                reported,
                deadline,
                shapely.Point(lon, lat).wkt,
            )
        )
    conn.cursor().executemany(
        "INSERT INTO incidents (category_code, status, rework_count, h3, reported_at, deadline,"
        " geom) VALUES (%s, %s, %s, %s, %s, %s, ST_GeomFromText(%s, 4326))",
        rows,
    )


def _insert_grid(conn: psycopg.Connection) -> None:
    box = h3.LatLngPoly(
        [(22.535, 114.035), (22.535, 114.065), (22.565, 114.065), (22.565, 114.035)]
    )
    rows = []
    for c in sorted(h3.h3shape_to_cells(box, 10)):
        ring = [(lng, lat) for lat, lng in h3.cell_to_boundary(c)]
        rows.append(
            (
                h3.str_to_int(c),
                10,
                1,
                h3.cell_area(c, unit="m^2"),
                1 + h3.str_to_int(c) % 3,
                shapely.Polygon(ring).wkt,
            )
        )
    conn.cursor().executemany(
        "INSERT INTO grid_cells (h3, res, district_id, area_m2, inspector_id, geom) "
        "VALUES (%s, %s, %s, %s, %s, ST_GeomFromText(%s, 4326))",
        rows,
    )


def _insert_sensors(conn: psycopg.Connection, rng: np.random.Generator) -> None:
    rows = []
    for i, (lon, lat) in enumerate(_points(rng, 50, 0.01).tolist()):
        rows.append(
            (
                i + 1,
                f"S{i:04d}",
                "air_quality",
                f'{{"pm25": {i * 1.5}}}',
                ("normal", "warning", "alarm")[i % 3],
                cell(lon, lat),
                shapely.Point(lon, lat).wkt,
            )
        )
    conn.cursor().executemany(
        "INSERT INTO sensors (id, code, kind, latest, alarm_state, h3, geom) "
        "VALUES (%s, %s, %s, %s::jsonb, %s, %s, ST_GeomFromText(%s, 4326))",
        rows,
    )


def make_city(admin_url: str, name: str) -> str:
    """A fresh database holding the tile test city; its URL."""
    url = create_database(admin_url, name)
    rng = np.random.default_rng(20261124)
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO districts (id, code, name, name_en, geom) VALUES "
            "(1, '440304', '福田区', 'Futian', ST_Multi(ST_MakeEnvelope(113.98, 22.50, 114.05,"
            " 22.60, 4326))), (2, '440303', '罗湖区', 'Luohu', ST_Multi(ST_MakeEnvelope(114.05,"
            " 22.50, 114.12, 22.60, 4326)))"
        )
        conn.execute("INSERT INTO users (id, name) VALUES (1, 'a'), (2, 'b'), (3, 'c')")
        _insert_assets(conn, rng)
        _insert_incidents(conn, rng)
        _insert_grid(conn)
        _insert_sensors(conn, rng)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")
    return url


def app_key(url: str, role: str = "app") -> dict[str, str]:
    """The Authorization header of a new key with ``role`` in the database at ``url``."""
    with psycopg.connect(url, autocommit=True) as conn:
        return {"Authorization": f"Bearer {create_key(conn, role, f'tiles-{role}')}"}
