"""Fixtures every test folder can use: the throwaway PostgreSQL, databases cloned from one
migrated template, the app (``client``), API keys (``key``) and the tile city.

PostgreSQL starts only when a test asks for a database, through any fixture below that needs
one: ``tests/unit`` (and any pure test elsewhere) runs without it. The cluster is made by the
same code as ``cityhex db start``, in a throwaway folder, on a free loopback port. The
migrations of ``cityhex migrate`` run once, into the template database ``cityhex_template``;
every database a test gets is a copy of it (``CREATE DATABASE … TEMPLATE``), which takes a
fraction of the time migrating takes.

Tests that drive an outside program carry a marker naming it (``ogrinfo``, ``mosquitto``,
``style_validator``, ``subprocess``, ``browser``; see pyproject.toml); each of them also counts
as ``external``, so ``pytest -m "not external"`` leaves them all out.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import h3
import numpy as np
import psycopg
import pytest
import shapely
from fastapi.testclient import TestClient

from layers.db.cell_levels import fill_cell_levels
from layers.db.embedded import EmbeddedCluster, ReplicaCluster, free_port
from layers.db.settings import storage_settings
from layers.incidents.workflow import STATES
from tests.helpers import CENTER, cell, create_database, make_key

FAST_CONF = {"fsync": "off", "full_page_writes": "off", "synchronous_commit": "off"}
TEMPLATE = "cityhex_template"
SHARED = "cityhex_test"
NO_DATABASE = "postgresql://no-database-fixture@127.0.0.1:9/none"
"""CITYHEX_DATABASE_URL until a test asks for a database: a pure test that reaches for one
fails at once instead of starting CityHex's own embedded cluster in ``.cityhex/``."""
TOOLS = ("ogrinfo", "mosquitto", "style_validator", "subprocess", "browser")
_home: list[Path] = []
_versions: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    """A CITYHEX_HOME of the session's own (the catalog.d imports write to; the cluster's
    folder if one starts), and no database yet."""
    home = Path(tempfile.mkdtemp(prefix="cityhex-test-", dir="/tmp"))
    os.chmod(home, 0o755)
    os.environ["CITYHEX_HOME"] = str(home)
    os.environ["CITYHEX_DATABASE_URL"] = NO_DATABASE
    storage_settings.cache_clear()
    _home.append(home)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the session's folder."""
    for home in _home:
        shutil.rmtree(home, ignore_errors=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test marked with an outside tool is also ``external``."""
    for item in items:
        if any(item.get_closest_marker(tool) for tool in TOOLS):
            item.add_marker(pytest.mark.external)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say which PostgreSQL and PostGIS the tests ran against, if they needed one."""
    for line in _versions:
        terminalreporter.write_line(line)


# --- the cluster and its databases -----------------------------------------------------------


def _seal(admin_url: str, name: str) -> None:
    """Make ``name`` a template nobody connects to (so it can always be copied)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false')


@pytest.fixture(scope="session")
def admin_url() -> Iterator[str]:
    """Start the session's cluster; the URL of its maintenance database. The template is
    migrated here, and CITYHEX_DATABASE_URL points at ``db_url`` from now on."""
    cluster = EmbeddedCluster(_home[0], port=free_port())
    url = cluster.start(extra_conf=FAST_CONF)
    try:
        template = create_database(url, TEMPLATE)
        with psycopg.connect(template) as conn:
            pg, postgis = conn.execute(
                "SELECT current_setting('server_version'), postgis_lib_version()"
            ).fetchone()
        _seal(url, TEMPLATE)
        shared = create_database(url, SHARED, TEMPLATE)
        os.environ["CITYHEX_DATABASE_URL"] = shared
        storage_settings.cache_clear()
        _versions.append(f"PostgreSQL {pg}, PostGIS {postgis} ({shared})")
        yield url
    finally:
        os.environ["CITYHEX_DATABASE_URL"] = NO_DATABASE
        storage_settings.cache_clear()
        cluster.stop()


@pytest.fixture(scope="session")
def replica(admin_url: str) -> Iterator[ReplicaCluster]:
    """A streaming replica of the session's cluster, made as ``cityhex db replica start``
    makes one (pg_basebackup -R through a replication slot) and started; it follows every
    database of the primary (``replica.url(name)``). Removed with its slot at the end."""
    standby = ReplicaCluster(_home[0], EmbeddedCluster(_home[0]), port=free_port())
    standby.start()
    try:
        yield standby
    finally:
        standby.drop()


@pytest.fixture(scope="session")
def new_database(admin_url: str) -> Callable[..., str]:
    """``new_database(name)``: a fresh migrated database (a copy of the template); its URL.
    ``template=`` copies another sealed template instead (a city built once)."""

    def make(name: str, template: str = TEMPLATE) -> str:
        return create_database(admin_url, name, template)

    return make


@pytest.fixture(scope="session")
def db_url(admin_url: str) -> str:
    """The shared migrated test database (empty at the start; tests add to it)."""
    return admin_url.rsplit("/", 1)[0] + f"/{SHARED}"


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit psycopg connection to the test database."""
    with psycopg.connect(db_url, autocommit=True) as c:
        yield c


@pytest.fixture(scope="session")
def client(db_url: str) -> Iterator[TestClient]:
    """The CityHex app on the test database, in process."""
    from spatial_api.app import create_app

    with TestClient(create_app(db_url)) as c:
        yield c


@pytest.fixture(scope="session")
def key(db_url: str) -> Callable[..., dict[str, str]]:
    """``key(role)`` makes an API key with that role in the test database and returns its
    Authorization header (``key(role, inspector_id)`` for a key speaking for a user)."""

    def make(role: str, inspector_id: int | None = None) -> dict[str, str]:
        return make_key(db_url, role, inspector_id)

    return make


# --- the tile city: tiles/ and styles/ ------------------------------------------------------
# Hand-made with numpy and the h3 package (no CityHex code writes it), so the tests compare
# tiles against PostGIS and textbook formulas, not against the tile code. Built once into a
# template; each module gets a copy, so what one module changes no other sees.

STATUSES = STATES
CATEGORIES = ("0101", "0102", "0201", "0301", "0401")
NOW = datetime.now(UTC)


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
                cell(*shapely.point_on_surface(line).coords[0]),
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
                cell(*shapely.point_on_surface(poly).coords[0]),
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


@pytest.fixture(scope="session")
def tiles_template(admin_url: str, new_database: Callable[..., str]) -> str:
    """The tile city, built once into a sealed template; its name."""
    name = "cityhex_tiles_template"
    url = new_database(name)
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
        for table in ("assets", "incidents", "sensors"):
            fill_cell_levels(conn, table)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")
    _seal(admin_url, name)
    return name


@pytest.fixture(scope="session")
def tiles_city(new_database: Callable[..., str], tiles_template: str) -> Callable[[str], str]:
    """``tiles_city(name)``: a copy of the tile city in a new database ``name``; its URL."""

    def make(name: str) -> str:
        return new_database(name, template=tiles_template)

    return make
