"""What the tests import: independent checks (written with h3, pyproj, shapely and plain
formulas, never with the CityHex code under test), writers of test files, and the outside
processes some tests drive (a ``cityhex serve`` child, a Mosquitto broker).

Databases and the test cities are fixtures, not imports: see ``conftest.py`` here and in each
folder. ``City`` and ``GridCity`` below are only what those fixtures hand a test.
"""

from __future__ import annotations

import getpass
import io
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import h3
import httpx
import numpy as np
import psycopg
import pyogrio
import pyproj
import shapely
from fastapi.testclient import TestClient

from layers.db.embedded import free_port
from layers.db.keys import create_key
from layers.db.migrate import migrate

# --- databases: new ones, keys and single values ----------------------------------------------


def create_database(admin_url: str, name: str, template: str | None = None) -> str:
    """A fresh database on a cluster: a copy of ``template``, or without one a new database
    with PostGIS and the migrated schema in it; its URL. (Tests take theirs from the
    ``new_database`` fixture, which copies a template migrated once.)"""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        tmpl = f' TEMPLATE "{template}" STRATEGY FILE_COPY' if template else ""
        conn.execute(f'CREATE DATABASE "{name}"{tmpl}')
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    if not template:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        migrate(url)
    return url


def make_key(url: str, role: str, user_id: int | None = None, name: str | None = None) -> dict:
    """The Authorization header of a new API key with ``role`` in the database at ``url``
    (speaking for user ``user_id``, if given)."""
    with psycopg.connect(url, autocommit=True) as conn:
        token = create_key(conn, role, name or f"test-{role}", user_id)
    return {"Authorization": f"Bearer {token}"}


def scalar(url: str, sql: str, params: tuple = ()) -> Any:
    """The single value ``sql`` returns."""
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchone()[0]


@dataclass
class City:
    """A test city's database and the app serving it in process."""

    url: str
    client: TestClient

    def key(self, role: str, user_id: int | None = None) -> dict[str, str]:
        """An Authorization header for a new key of ``role`` (speaking for ``user_id``)."""
        return make_key(self.url, role, user_id, f"{role}-{user_id or 'any'}")

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

    def department_id(self, code: str) -> int:
        """The id of the department with ``code``."""
        return self.value("SELECT id FROM departments WHERE code = %s", (code,))

    def category_department(self, category: str) -> int:
        """The department of ``category``, read straight from the table."""
        return self.value(
            "SELECT department_id FROM incident_categories WHERE code = %s", (category,)
        )


class GridCity(City):
    """A city the grid tests fill themselves: districts, users, then a grid."""

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


# --- the incident city (tests/incidents/conftest.py builds it) -------------------------------
# Two districts side by side, split at ``SPLIT_LON``; a disk of H3 cells around
# ``INCIDENT_CENTRE``; each cell's inspector is one of four users chosen by the cell's
# position, so a test can say independently who should get a report.

INCIDENT_CENTRE = (114.05, 22.54)
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
    return h3.latlng_to_cell(INCIDENT_CENTRE[1], INCIDENT_CENTRE[0], 10)


def expected_inspector(lon: float, lat: float) -> int | None:
    """The inspector the city gives the cell of (lon, lat), computed from the cell's centre."""
    cell = h3.latlng_to_cell(lat, lon, 10)
    if h3.grid_distance(cell, centre_cell()) > RING:
        return None
    clat, clon = h3.cell_to_latlng(cell)
    return (101 if clon < SPLIT_LON else 103) + (1 if clat >= INCIDENT_CENTRE[1] else 0)


def district_of(lon: float, lat: float) -> int:
    """District 1 west of the split, 2 east of it (by the cell's centre)."""
    _, clon = h3.cell_to_latlng(h3.latlng_to_cell(lat, lon, 10))
    return 1 if clon < SPLIT_LON else 2


# --- tiles: the tile city's centre and textbook tile arithmetic ------------------------------

CENTER = (114.05, 22.55)
"""The centre of the tile city (the ``tiles_city`` fixture)."""
R = 6378137.0
TO_3857 = pyproj.Transformer.from_crs(4326, 3857, always_xy=True)


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


# --- h3 checks and analytics formulas --------------------------------------------------------


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


def direct_gi_star(cells: list[str], values: list[float], k: int) -> list[float]:
    """Gi* of every cell, straight from Getis & Ord (1995) with binary weights, self included:

    G*_i = (sum_j w_ij x_j - X * sum_j w_ij) / (S * sqrt((n sum_j w_ij^2 - (sum_j w_ij)^2) / (n-1)))
    with X the mean and S = sqrt(sum_j x_j^2 / n - X^2).
    """
    n = len(cells)
    mean = sum(values) / n
    s = math.sqrt(sum(v * v for v in values) / n - mean * mean)
    out = []
    for ci in cells:
        sum_wx = sum_w = sum_w2 = 0.0
        for cj, xj in zip(cells, values, strict=True):
            w = 1.0 if h3.grid_distance(ci, cj) <= k else 0.0
            sum_wx += w * xj
            sum_w += w
            sum_w2 += w * w
        num = sum_wx - mean * sum_w
        den = s * math.sqrt((n * sum_w2 - sum_w * sum_w) / (n - 1))
        out.append(num / den)
    return out


def two_sided(z: float) -> float:
    """P(|Z| >= |z|) for a standard normal Z."""
    return math.erfc(abs(z) / math.sqrt(2))


def formula(x: float, y: float, sites: list[tuple[float, float, float]], power: float) -> float:
    """sum(v_i / d_i^p) / sum(1 / d_i^p), or v_i at a site."""
    num = den = 0.0
    for sx, sy, v in sites:
        d = math.hypot(x - sx, y - sy)
        if d == 0:
            return v
        num += v / d**power
        den += 1 / d**power
    return num / den


CELL_RES = range(5, 12)
"""The resolutions whose cells point layers store."""
M_PER_DEG = 111_320.0


def edge_points(
    rng: np.random.Generator, centre: tuple[float, float], per_edge: int = 4, ring: int = 1
) -> np.ndarray:
    """Lon/lat points 1–4 m either side of the edges of the cells within ``ring`` of the
    cell of ``centre`` at every resolution 5–11: where the cell that contains a point and
    the ancestor of its finer cell disagree most often."""
    out = []
    for res in CELL_RES:
        for cell in h3.grid_disk(h3.latlng_to_cell(centre[1], centre[0], res), ring):
            bound = h3.cell_to_boundary(cell)
            for (alat, alng), (blat, blng) in zip(bound, bound[1:] + bound[:1], strict=True):
                for _ in range(per_edge):
                    t = rng.uniform(0.05, 0.95)
                    lat, lng = alat + t * (blat - alat), alng + t * (blng - alng)
                    coslat = math.cos(math.radians(lat))
                    ex, ey = (blng - alng) * coslat, blat - alat
                    norm = math.hypot(ex, ey)
                    d = rng.choice([-1.0, 1.0]) * rng.uniform(1.0, 4.0) / M_PER_DEG
                    out.append((lng - d * ey / norm / coslat, lat + d * ex / norm))
    return np.array(out)


def stored_cells_ok(geom: shapely.Geometry, row: dict[str, int | None]) -> bool:
    """Whether ``row`` (column name → stored cell) holds, in ``h3`` and every ``h3_<res>``,
    the cell that contains the geometry's point (a line's or polygon's point on surface)."""
    point = geom if geom.geom_type == "Point" else shapely.point_on_surface(geom)
    want = {
        ("h3" if r == 10 else f"h3_{r}"): h3.str_to_int(h3.latlng_to_cell(point.y, point.x, r))
        for r in CELL_RES
    }
    return row == want


def copy_incidents(url: str, rows: list[tuple[str, datetime, float, float]]) -> None:
    """COPY incidents (category, reported_at, lon, lat) with their cells at res 5–11 from h3
    (``h3`` at res 10, ``h3_<res>`` at the others)."""
    buf = io.StringIO()
    for code, ts, lon, lat in rows:
        cells = "\t".join(str(h3.str_to_int(h3.latlng_to_cell(lat, lon, r))) for r in CELL_RES)
        buf.write(f"{code}\treported\t{ts.isoformat()}\t{cells}\tSRID=4326;POINT({lon} {lat})\n")
    columns = ", ".join("h3" if r == 10 else f"h3_{r}" for r in CELL_RES)
    with (
        psycopg.connect(url, autocommit=True) as conn,
        conn.cursor().copy(
            f"COPY incidents (category_code, status, reported_at, {columns}, geom) FROM STDIN"
        ) as copy,
    ):
        copy.write(buf.getvalue())


# --- files for the imports -----------------------------------------------------------------

FUTIAN = (114.0579, 22.5431)  # the centre of the imported points, in Futian, Shenzhen
DRIVERS = {".geojson": "GeoJSON", ".gpkg": "GPKG", ".fgb": "FlatGeobuf", ".shp": "ESRI Shapefile"}


def lonlat_points(n: int, seed: int = 1, spread: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random lon/lat points around the centre."""
    rng = np.random.default_rng(seed)
    return (
        FUTIAN[0] + rng.uniform(-spread, spread, n),
        FUTIAN[1] + rng.uniform(-spread, spread, n),
    )


def to_crs(geoms: np.ndarray, epsg: int) -> np.ndarray:
    """Lon/lat geometries with coordinates in EPSG:``epsg`` (pyproj, x/y order)."""
    if epsg == 4326:
        return geoms
    move = pyproj.Transformer.from_crs(4326, epsg, always_xy=True)
    return shapely.transform(geoms, lambda c: np.column_stack(move.transform(c[:, 0], c[:, 1])))


def write_file(
    path: Path,
    geoms_lonlat: np.ndarray,
    fields: dict[str, np.ndarray],
    epsg: int | None = 4326,
    layer: str | None = None,
) -> Path:
    """Write lon/lat geometries, stored in EPSG:``epsg`` (None: no CRS at all), and fields."""
    geoms = to_crs(geoms_lonlat, epsg or 4326)
    types = set(shapely.get_type_id(geoms).tolist())
    kind = shapely.get_type_id(geoms[0]) if len(types) == 1 else None
    names = [
        "Point",
        "LineString",
        "LinearRing",
        "Polygon",
        "MultiPoint",
        "MultiLineString",
        "MultiPolygon",
    ]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="'crs' was not provided")
        pyogrio.raw.write(
            path,
            shapely.to_wkb(geoms),
            list(fields.values()),
            list(fields),
            layer=layer,
            driver=DRIVERS[path.suffix],
            geometry_type=names[kind] if kind is not None else "Unknown",
            crs=f"EPSG:{epsg}" if epsg else None,
        )
    return path


def lamp_fields(n: int, first_serial: int = 1) -> dict[str, np.ndarray]:
    """Asset fields of ``n`` street lamps with valid 16-digit codes."""
    return {
        "code": np.array(
            [f"4403040117{s:06d}" for s in range(first_serial, first_serial + n)], dtype=object
        ),
        "class_code": np.array(["0117"] * n, dtype=object),
        "kind": np.array(["street_lamp"] * n, dtype=object),
        "name": np.array([f"lamp {i}" for i in range(n)], dtype=object),
        "height_m": np.linspace(6.0, 12.0, n),
        "pole": np.array([f"P-{i}" for i in range(n)], dtype=object),
    }


# --- outside processes ---------------------------------------------------------------------


@contextmanager
def running_server(
    database_url: str,
    workers: int = 1,
    env: dict[str, str] | None = None,
) -> Iterator[str]:
    """Run ``cityhex serve`` as a child process; yield its base URL; stop it after."""
    port = free_port()
    child_env = {**os.environ, "CITYHEX_DATABASE_URL": database_url, **(env or {})}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "spatial_api",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {proc.stdout.read() if proc.stdout else ''}")
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not become healthy in 60 s")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


BINARY = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


class Mosquitto:
    """One broker process, restartable on the same port with the same persistence."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {folder}/\n"
            "max_queued_messages 1000000\n"
            "max_inflight_messages 0\n"
            f"user {getpass.getuser()}\n"
            f"log_dest file {folder}/mosquitto.log\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The broker as ``cityhex ingest mqtt --broker`` takes it."""
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the broker and wait until it accepts connections."""
        self.proc = subprocess.Popen([BINARY, "-c", str(self.conf)], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port}")

    def stop(self) -> None:
        """Stop the broker cleanly (it saves its persistence file)."""
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def restart(self) -> None:
        """Stop and start again on the same port with the same persistence."""
        self.stop()
        self.start()


@contextmanager
def running_broker() -> Iterator[Mosquitto]:
    """A started broker in a temporary folder; stopped and removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="cityhex-mqtt-", dir="/tmp"))
    broker = Mosquitto(folder)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(folder, ignore_errors=True)
