"""The patrol city: a real GPS track (tests/patrol/data, a walk recorded with a Garmin
receiver) moved by a fixed translation onto a grid of H3 res-10 cells made here with the h3
package, two inspectors sharing the grid at a meridian, and an app serving it.

Nothing here uses CityHex code to build the data: the tests compare what CityHex computes
with what shapely and h3 compute from the same track and cells.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import h3
import psycopg
import pytest
import shapely
from fastapi.testclient import TestClient

from layers.patrol.settings import patrol_settings
from tests.helpers import make_key

GPX = Path(__file__).parent / "data" / "cerknicko-jezero.gpx"
NS = "{http://www.topografix.com/GPX/1/0}"
ORIGIN = (114.03, 22.53)
"""Where the track's south-west corner is moved to."""
SPLIT_LON = 114.085
"""Cells whose centre lies east of it are inspector 1's, the others inspector 2's."""
BAD_EVERY = 23
"""Every 23rd fix is given an accuracy of 80 m (over the 50 m limit, so it is ignored)."""


@dataclass(frozen=True)
class Fix:
    """One fix of the test track."""

    ts: datetime
    lon: float
    lat: float
    accuracy_m: float

    def as_json(self) -> dict[str, object]:
        """The fix as POST /patrol/fixes takes it."""
        return {
            "ts": self.ts.isoformat(),
            "lon": self.lon,
            "lat": self.lat,
            "accuracy_m": self.accuracy_m,
        }


def load_track(start: datetime) -> list[Fix]:
    """The GPX track points, translated to ORIGIN, their times shifted to begin at ``start``."""
    root = ET.parse(GPX).getroot()
    points = [
        (
            float(p.get("lon")),
            float(p.get("lat")),
            datetime.fromisoformat(p.find(f"{NS}time").text.replace("Z", "+00:00")),
        )
        for p in root.iter(f"{NS}trkpt")
    ]
    dx = ORIGIN[0] - min(p[0] for p in points)
    dy = ORIGIN[1] - min(p[1] for p in points)
    shift = start - points[0][2]
    return [
        Fix(ts + shift, lon + dx, lat + dy, 80.0 if i % BAD_EVERY == BAD_EVERY - 1 else 8.0)
        for i, (lon, lat, ts) in enumerate(points)
    ]


@dataclass(frozen=True)
class PatrolCity:
    """The test city: its database, its app, the track and the cells (h3 int → polygon)."""

    url: str
    client: TestClient
    track: list[Fix]
    cells: dict[int, shapely.Polygon]
    owner: dict[int, int]

    def key(self, role: str, user_id: int | None = None) -> dict[str, str]:
        """An Authorization header for a new key of ``role`` (speaking for ``user_id``)."""
        return make_key(self.url, role, user_id, f"{role}-{user_id or 'any'}")

    def assigned(self, inspector: int) -> dict[int, shapely.Polygon]:
        """The cells of ``inspector``."""
        return {c: p for c, p in self.cells.items() if self.owner[c] == inspector}


def grid(track: list[Fix]) -> tuple[dict[int, shapely.Polygon], dict[int, int]]:
    """Res-10 cells over the track's box (with a margin), and each cell's inspector."""
    lons = [f.lon for f in track]
    lats = [f.lat for f in track]
    pad = 0.004
    box = h3.LatLngPoly(
        [
            (min(lats) - pad, min(lons) - pad),
            (min(lats) - pad, max(lons) + pad),
            (max(lats) + pad, max(lons) + pad),
            (max(lats) + pad, min(lons) - pad),
        ]
    )
    cells: dict[int, shapely.Polygon] = {}
    owner: dict[int, int] = {}
    for cell in h3.h3shape_to_cells(box, 10):
        ring = [(lng, lat) for lat, lng in h3.cell_to_boundary(cell)]
        key = h3.str_to_int(cell)
        cells[key] = shapely.Polygon(ring)
        owner[key] = 1 if h3.cell_to_latlng(cell)[1] > SPLIT_LON else 2
    return cells, owner


def build(url: str, cells: dict[int, shapely.Polygon], owner: dict[int, int]) -> None:
    """District, users (inspectors 1–3, 3 without cells) and the grid."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO districts (id, code, name, geom) VALUES (1, '440304', '福田区', "
            "ST_Multi(ST_MakeEnvelope(113.9, 22.4, 114.3, 22.7, 4326)))"
        )
        conn.execute(
            "INSERT INTO users (id, name, role, district_id) VALUES (1, '甲', 'inspector', 1), "
            "(2, '乙', 'inspector', 1), (3, '丙', 'inspector', 1)"
        )
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO grid_cells (h3, res, district_id, area_m2, inspector_id, geom) "
                "VALUES (%s, 10, 1, 15000, %s, ST_GeomFromText(%s, 4326))",
                [(c, owner[c], p.wkt) for c, p in cells.items()],
            )
        conn.execute("ANALYZE")


@pytest.fixture(scope="module")
def patrol_city(
    new_database: Callable[..., str], request: pytest.FixtureRequest
) -> Iterator[PatrolCity]:
    """A fresh patrol city for the module (the periodic off-post check of its app is set
    to an hour, so only the test drives detection)."""
    from spatial_api.app import create_app

    start = (datetime.now(UTC) - timedelta(hours=4)).replace(second=0, microsecond=0)
    track = load_track(start)
    cells, owner = grid(track)
    url = new_database(f"patrol_{request.module.__name__.rsplit('.', 1)[-1]}")
    build(url, cells, owner)
    os.environ["CITYHEX_OFF_POST_CHECK_SECONDS"] = "3600"
    patrol_settings.cache_clear()
    try:
        with TestClient(create_app(url)) as client:
            yield PatrolCity(url, client, track, cells, owner)
    finally:
        os.environ.pop("CITYHEX_OFF_POST_CHECK_SECONDS")
        patrol_settings.cache_clear()
