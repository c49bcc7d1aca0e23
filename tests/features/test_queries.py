"""Spatial queries against brute force: geodesic distances from pyproj.Geod, shapes from
shapely; the limits answer with a clear 4xx."""

from __future__ import annotations

import random
from collections.abc import Iterator

import psycopg
import pytest
import shapely
from fastapi.testclient import TestClient
from pyproj import Geod

from layers.db.keys import create_key

GEOD = Geod(ellps="WGS84")
rng = random.Random(5)
POINTS = [(114.0 + rng.uniform(0, 0.2), 22.45 + rng.uniform(0, 0.2)) for _ in range(600)]
# near 60°N a degree east is half a degree north: planar and true order disagree
NORTH = [(10.0, 60.0080 + i * 0.00001) for i in range(100)]
EAST = (10.015, 60.0)
SQUARES = [shapely.box(114.0 + i * 0.02, 22.5, 114.01 + i * 0.02, 22.51) for i in range(8)]


def _code(i: int) -> str:
    return f"44030401{1 + i % 5:02d}{i:06d}"


@pytest.fixture(scope="module")
def qdb(new_database) -> str:
    url = new_database("cityhex_queries")
    rows = [
        (_code(i), f"01{1 + i % 5:02d}", ["lamp", "manhole"][i % 2], x, y)
        for i, (x, y) in enumerate([*POINTS, *NORTH, EAST])
    ]
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO assets (code, class_code, kind, geom) VALUES "
            "(%s, %s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326))",
            rows,
        )
        cur.executemany(
            "INSERT INTO districts (code, name, geom) VALUES (%s, %s, "
            "ST_Multi(ST_GeomFromText(%s, 4326)))",
            [(f"4403{i:02d}", f"d{i}", s.wkt) for i, s in enumerate(SQUARES)],
        )
    return url


@pytest.fixture(scope="module")
def api(qdb: str) -> Iterator[TestClient]:
    from spatial_api.app import create_app

    with TestClient(create_app(qdb)) as c:
        yield c


def _metres(lon: float, lat: float, x: float, y: float) -> float:
    return GEOD.inv(lon, lat, x, y)[2]


def _coords(feature: dict) -> tuple[float, float]:
    return tuple(feature["geometry"]["coordinates"])  # type: ignore[return-value]


def _rounded(point: tuple[float, float]) -> tuple[float, float]:
    return round(point[0], 8), round(point[1], 8)


@pytest.mark.parametrize(
    ("lon", "lat", "k"), [(114.1, 22.55, 10), (114.003, 22.451, 25), (114.2, 22.65, 1)]
)
def test_nearest_matches_brute_force_geodesic(
    api: TestClient, lon: float, lat: float, k: int
) -> None:
    r = api.get("/query/nearest", params={"layer": "assets", "lon": lon, "lat": lat, "k": k})
    assert r.status_code == 200, r.text
    got = r.json()["features"]
    truth = sorted(_metres(lon, lat, x, y) for x, y in POINTS)[:k]
    assert [f["properties"]["distance_m"] for f in got] == pytest.approx(truth, abs=0.01)
    for f in got:
        assert _metres(lon, lat, *_coords(f)) == pytest.approx(
            f["properties"]["distance_m"], abs=0.01
        )


def test_nearest_is_exact_where_planar_order_is_wrong(api: TestClient) -> None:
    r = api.get("/query/nearest", params={"layer": "assets", "lon": 10.0, "lat": 60.0, "k": 1})
    (feature,) = r.json()["features"]
    assert _coords(feature) == pytest.approx(EAST)
    assert feature["properties"]["distance_m"] == pytest.approx(_metres(10, 60, *EAST), abs=0.01)


def test_nearest_with_max_m_and_filter(api: TestClient) -> None:
    lon, lat = 114.1, 22.55
    r = api.get(
        "/query/nearest",
        params={
            "layer": "assets",
            "lon": lon,
            "lat": lat,
            "k": 50,
            "max_m": 2500,
            "filter": "kind = 'lamp'",
        },
    )
    got = r.json()["features"]
    truth = sorted(
        d
        for i, (x, y) in enumerate(POINTS)
        if (d := _metres(lon, lat, x, y)) <= 2500 and i % 2 == 0
    )[:50]
    assert [f["properties"]["distance_m"] for f in got] == pytest.approx(truth, abs=0.01)
    assert all(f["properties"]["kind"] == "lamp" for f in got)


def test_within_matches_brute_force(api: TestClient) -> None:
    lon, lat, radius = 114.08, 22.52, 1800.0
    r = api.get(
        "/query/within", params={"layer": "assets", "lon": lon, "lat": lat, "radius_m": radius}
    )
    body = r.json()
    inside = sorted(d for x, y in POINTS if (d := _metres(lon, lat, x, y)) <= radius)
    assert body["limited"] is False
    assert [f["properties"]["distance_m"] for f in body["features"]] == pytest.approx(
        inside, abs=0.01
    )


def test_intersects_one_collection_per_layer(api: TestClient) -> None:
    shape = shapely.Polygon([(114.005, 22.49), (114.07, 22.49), (114.07, 22.56), (114.005, 22.49)])
    r = api.post(
        "/query/intersects",
        json={"layers": ["assets", "districts"], "geometry": shapely.geometry.mapping(shape)},
    )
    assert r.status_code == 200, r.text
    layers = r.json()["layers"]
    got = {_rounded(_coords(f)) for f in layers["assets"]["features"]}
    assert got == {_rounded(p) for p in POINTS if shape.intersects(shapely.Point(p))}
    assert layers["districts"]["numberReturned"] == sum(s.intersects(shape) for s in SQUARES)


def test_intersects_in_lat_lon_crs(api: TestClient) -> None:
    shape = shapely.box(22.5, 114.0, 22.6, 114.1)  # lat/lon axis order of EPSG:4326
    r = api.post(
        "/query/intersects",
        json={"layers": "assets", "crs": "EPSG:4326", "geometry": shapely.geometry.mapping(shape)},
    )
    expected = sum(114.0 <= x <= 114.1 and 22.5 <= y <= 22.6 for x, y in POINTS)
    assert r.json()["layers"]["assets"]["numberReturned"] == expected


@pytest.mark.parametrize(
    ("path", "params", "status", "named"),
    [
        ("/query/nearest", {"layer": "assets", "lon": 114, "lat": 22, "k": 0}, 400, "k must"),
        ("/query/nearest", {"layer": "assets", "lon": 114, "lat": 22, "k": 5000}, 400, "k must"),
        ("/query/nearest", {"layer": "assets", "lon": 214, "lat": 22}, 400, "lon/lat"),
        ("/query/nearest", {"layer": "assets", "lon": 114, "lat": 22, "max_m": -1}, 400, "max_m"),
        ("/query/nearest", {"layer": "nope", "lon": 114, "lat": 22}, 404, "nope"),
        ("/query/nearest", {"layer": "incidents", "lon": 114, "lat": 22}, 401, "key"),
        (
            "/query/nearest",
            {"layer": "assets", "lon": 114, "lat": 22, "filter": "kind ="},
            400,
            "filter",
        ),
        (
            "/query/within",
            {"layer": "assets", "lon": 114, "lat": 22, "radius_m": 0},
            400,
            "radius_m",
        ),
        (
            "/query/within",
            {"layer": "assets", "lon": 114, "lat": 22, "radius_m": 90000},
            400,
            "radius_m",
        ),
        ("/query/within", {"layer": "assets", "lon": "east", "lat": 22, "radius_m": 9}, 400, "lon"),
    ],
)
def test_query_limits_are_clear_4xx(
    api: TestClient, path: str, params: dict, status: int, named: str
) -> None:
    r = api.get(path, params=params)
    assert r.status_code == status, r.text
    assert named in r.json()["message"]


@pytest.mark.parametrize(
    ("body", "status", "named"),
    [
        (
            {
                "layers": ["assets"],
                "geometry": shapely.geometry.mapping(shapely.box(113, 22, 115, 24)),
            },
            422,
            "km²",
        ),
        (
            {
                "layers": ["assets"],
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [
                        [
                            [114.0, 22.5],
                            [114.01, 22.51],
                            [114.01, 22.5],
                            [114.0, 22.51],
                            [114.0, 22.5],
                        ]
                    ],
                },
            },
            422,
            "Self-intersection",
        ),
        ({"layers": ["assets"], "geometry": {"type": "Blob"}}, 422, "Blob"),
        ({"layers": [], "geometry": {"type": "Point", "coordinates": [114, 22]}}, 400, "layers"),
        ({"geometry": {"type": "Point", "coordinates": [114, 22]}}, 400, "layers"),
        (
            {
                "layers": ["assets"],
                "geometry": {"type": "Point", "coordinates": [114, 22]},
                "crs": "EPSG:1",
            },
            400,
            "CRS",
        ),
    ],
)
def test_intersects_bad_input(api: TestClient, body: dict, status: int, named: str) -> None:
    r = api.post("/query/intersects", json=body)
    assert r.status_code == status, r.text
    assert named in r.json()["message"]


def test_non_readable_layer_in_intersects(api: TestClient, qdb: str) -> None:
    body = {
        "layers": ["assets", "incidents"],
        "geometry": {"type": "Point", "coordinates": [114, 22]},
    }
    assert api.post("/query/intersects", json=body).status_code == 401
    with psycopg.connect(qdb, autocommit=True) as conn:
        token = create_key(conn, "app", "q")
    r = api.post("/query/intersects", json=body, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json()["layers"]["incidents"]["numberReturned"] == 0
