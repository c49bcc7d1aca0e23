"""Vector tiles against PostGIS: the right features, attributes and coordinates; composite
tiles in one round trip; errors as 4xx JSON; ETag, 304 and cache status."""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime

import mapbox_vector_tile
import numpy as np
import psycopg
import pytest
import shapely
from fastapi.testclient import TestClient
from shapely import wkb

from layers.catalog.registry import load_catalog
from tests.helpers import CENTER, TO_3857, R, make_key, tile_box, tile_of

EXTENT = 4096
MARGIN = 64 / 4096
ZOOMS = (13, 14, 15, 16, 17)


@pytest.fixture(scope="module")
def reader(city: str) -> dict[str, str]:
    """An app key (reads the non-public incident layer)."""
    return make_key(city, "app")


def decode(body: bytes) -> dict:
    """The tile's layers, y pointing down as in the tile grid."""
    return mapbox_vector_tile.decode(body, default_options={"y_coord_down": True})


def rows(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def mercator_shapes(url: str, table: str, key: str = "id") -> dict[int, shapely.Geometry]:
    """Every row's geometry in EPSG:3857, transformed here with pyproj from the stored 4326."""
    out = {}
    for fid, raw in rows(url, f"SELECT {key}, ST_AsBinary(geom) FROM {table}"):
        geom = wkb.loads(bytes(raw))
        out[fid] = shapely.transform(geom, lambda c: _to_3857(c))
    return out


def _to_3857(coords: np.ndarray) -> np.ndarray:
    x, y = TO_3857.transform(coords[:, 0], coords[:, 1])
    return np.column_stack([x, y])


def expected_ids(
    shapes: dict[int, shapely.Geometry], z: int, x: int, y: int
) -> tuple[set[int], set[int]]:
    """(ids intersecting the tile widened by the buffer, ids too close to that edge to call:
    within one tile unit of it)."""
    area = shapely.box(*tile_box(z, x, y, MARGIN))
    unit = (tile_box(z, x, y)[2] - tile_box(z, x, y)[0]) / EXTENT
    inside = {i for i, g in shapes.items() if g.intersects(area)}
    edge = {i for i, g in shapes.items() if g.distance(area.exterior) < unit}
    return inside, edge


def clustered_ids(shapes: dict[int, shapely.Geometry], z: int, layer: str) -> set[int]:
    """Ids shown inside a cluster at zoom ``z``: those whose 16-pixel cell (a tile four zooms
    deeper, holding their box centre) holds more than the layer's ``cluster_cell_max``."""
    limit = load_catalog().get(layer).cluster_cell_max
    size = 2 * math.pi * R / 2 ** (z + 4)
    cells = {}
    for i, g in shapes.items():
        minx, miny, maxx, maxy = g.bounds
        cells[i] = (
            math.floor(((minx + maxx) / 2 + math.pi * R) / size),
            math.floor((math.pi * R - (miny + maxy) / 2) / size),
        )
    counts = Counter(cells.values())
    return {i for i, c in cells.items() if limit and counts[c] > limit}


def tiles_around(z: int) -> list[tuple[int, int, int]]:
    """The tile at the city centre and its eight neighbours."""
    cz, cx, cy = tile_of(*CENTER, z)
    return [(cz, cx + dx, cy + dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]


@pytest.mark.parametrize(
    "layer,table,key",
    [
        ("assets", "assets", "id"),
        ("incidents", "incidents", "id"),
        ("grid", "grid_cells", "h3"),
        ("sensors", "sensors", "id"),
        ("districts", "districts", "id"),
    ],
)
def test_tile_ids_are_the_features_meeting_the_buffered_envelope(
    web: TestClient, city: str, reader: dict, layer: str, table: str, key: str
) -> None:
    shapes = mercator_shapes(city, table, key)
    checked = 0
    for z in ZOOMS:
        for t in tiles_around(z):
            r = web.get(f"/tiles/{layer}/{t[0]}/{t[1]}/{t[2]}.mvt", headers=reader)
            assert r.status_code in (200, 204), r.text
            feats = decode(r.content).get(layer, {"features": []})["features"]
            got = {f["id"] for f in feats if set(f["properties"]) != {"count"}}  # not clusters
            inside, edge = expected_ids(shapes, *t)
            assert got - edge == inside - edge - clustered_ids(shapes, t[0], layer), (layer, t)
            checked += len(inside)
    assert checked >= len(ZOOMS) * 9  # every tile of the test holds features


def test_point_attributes_and_coordinates_round_trip(web: TestClient, city: str) -> None:
    z, x, y = tile_of(*CENTER, 15)
    feats = decode(web.get(f"/tiles/assets/{z}/{x}/{y}.mvt").content)["assets"]["features"]
    db = {
        r[0]: r
        for r in rows(
            city,
            (
                "SELECT id, code, class_code, kind, name, state, owner_department_id, version, "
                "updated_at, "
                "ST_X(geom), ST_Y(geom) FROM assets WHERE GeometryType(geom) = 'POINT'"
            ),
        )
    }
    minx, _, maxx, maxy = tile_box(z, x, y)
    unit = (maxx - minx) / EXTENT
    points = [f for f in feats if f["geometry"]["type"] == "Point"]
    assert len(points) > 50
    for f in points:
        _, code, cls, kind, name, state, owner, version, updated, lon, lat = db[f["id"]]
        want = {
            "code": code,
            "class_code": cls,
            "kind": kind,
            "state": state,
            "owner_department_id": owner,
            "version": version,
        }
        if name is not None:
            want["name"] = name
        props = dict(f["properties"])
        assert datetime.fromisoformat(props.pop("updated_at")) == updated
        assert props == want
        px, py = f["geometry"]["coordinates"]
        mx, my = TO_3857.transform(lon, lat)
        assert abs(minx + px * unit - mx) <= unit and abs(maxy - py * unit - my) <= unit


def test_lines_and_polygons_are_clipped_and_simplified_within_a_pixel(
    web: TestClient, city: str
) -> None:
    z, x, y = tile_of(*CENTER, 14)
    feats = decode(web.get(f"/tiles/assets/{z}/{x}/{y}.mvt").content)["assets"]["features"]
    shapes = mercator_shapes(city, "assets")
    minx, _, maxx, maxy = tile_box(z, x, y)
    unit = (maxx - minx) / EXTENT
    clip = shapely.box(*tile_box(z, x, y, MARGIN))
    polys = [f for f in feats if f["geometry"]["type"] in ("Polygon", "LineString")]
    assert len(polys) >= 10
    for f in polys:
        tile_geom = shapely.transform(
            shapely.geometry.shape(f["geometry"]),
            lambda c: _tile_to_mercator(c, minx, maxy, unit),
        )
        truth = shapes[f["id"]].intersection(clip)
        assert tile_geom.hausdorff_distance(truth) <= 2 * unit, f["id"]


def _tile_to_mercator(coords: np.ndarray, minx: float, maxy: float, unit: float) -> np.ndarray:
    return np.column_stack([minx + coords[:, 0] * unit, maxy - coords[:, 1] * unit])


def test_grid_cells_carry_their_hex_string_and_incidents_their_overdue_flag(
    web: TestClient, city: str, reader: dict
) -> None:
    z, x, y = tile_of(*CENTER, 15)
    # the inspector of a cell is for keys with a staff role (issue 19, defect 6)
    tile = web.get(f"/tiles/grid/{z}/{x}/{y}.mvt", headers=reader).content
    grid = decode(tile)["grid"]["features"]
    inspector = dict(rows(city, "SELECT h3, inspector_id FROM grid_cells"))
    for f in grid:
        assert f["properties"]["cell"] == format(f["id"], "x")
        assert f["properties"]["inspector_id"] == inspector[f["id"]]
    body = web.get(f"/tiles/incidents/{z}/{x}/{y}.mvt", headers=reader).content
    overdue = dict(
        rows(
            city,
            (
                "SELECT id, deadline < now() AND status NOT IN ('closed', 'cancelled', 'parked') "
                "FROM incidents"
            ),
        )
    )
    feats = [f for f in decode(body)["incidents"]["features"] if "count" not in f["properties"]]
    assert any(f["properties"]["overdue"] for f in feats)
    for f in feats:
        assert f["properties"]["overdue"] == overdue[f["id"]]


def test_composite_tile_is_one_round_trip_with_a_layer_each(web: TestClient, reader: dict) -> None:
    z, x, y = tile_of(*CENTER, 15)
    service = web.app.state.tiles
    calls = []
    real = service.pool

    class Counting:
        async def fetchrow(self, *args: object) -> object:
            calls.append(args[0])
            return await real.fetchrow(*args)

    service.pool = Counting()
    try:
        path = f"/tiles/assets,incidents,grid,incidents_hex/{z}/{x}/{y}.mvt?from=2000-01-01"
        body = web.get(path, headers=reader).content
    finally:
        service.pool = real
    assert len(calls) == 1
    layers = decode(body)
    assert list(layers) == ["assets", "incidents", "grid", "incidents_hex"]
    for name in ("assets", "grid", "incidents"):
        alone = decode(
            web.get(f"/tiles/{name}/{z}/{x}/{y}.mvt?from=2000-01-01", headers=reader).content
        )[name]
        assert by_id(alone) == by_id(layers[name])


def by_id(layer: dict) -> dict:
    """A decoded layer's features by id."""
    return {f["id"]: f for f in layer["features"]}


def test_ogc_alias_serves_the_same_bytes(web: TestClient) -> None:
    z, x, y = tile_of(*CENTER, 14)
    a = web.get(f"/tiles/assets/{z}/{x}/{y}.mvt")
    b = web.get(f"/collections/assets/tiles/WebMercatorQuad/{z}/{x}/{y}")
    assert a.status_code == b.status_code == 200
    assert a.content == b.content and a.headers["etag"] == b.headers["etag"]


@pytest.mark.parametrize(
    "path,status,code",
    [
        ("/tiles/nowhere/14/1/1.mvt", 404, "unknown_layer"),
        ("/tiles/assets,nowhere/14/1/1.mvt", 404, "unknown_layer"),
        ("/tiles/districts_hex/14/1/1.mvt", 404, "unknown_layer"),
        ("/tiles/assets/23/0/0.mvt", 400, "invalid_tile"),
        ("/tiles/assets/-1/0/0.mvt", 400, "invalid_tile"),
        ("/tiles/assets/3/8/0.mvt", 400, "invalid_tile"),
        ("/tiles/assets/3/0/-1.mvt", 400, "invalid_tile"),
        ("/tiles/assets/x/0/0.mvt", 400, "invalid_parameter"),
        ("/tiles/assets/3/0/0.5.mvt", 400, "invalid_parameter"),
        ("/tiles/assets,,grid/3/0/0.mvt", 400, "invalid_layers"),
        ("/tiles/assets,assets/3/0/0.mvt", 400, "invalid_layers"),
        ("/tiles/assets/14/1/1.mvt?from=yesterday", 400, "invalid_parameter"),
        ("/tiles/assets/14/1/1.mvt?from=2026-02-01&to=2026-01-01", 400, "invalid_parameter"),
        ("/tiles/assets/14/1/1.mvt?properties=code,nothing", 400, "invalid_parameter"),
        ("/tiles/assets/14/1/1.mvt?category=a%20b", 400, "invalid_parameter"),
        ("/tiles/assets/14/1/1.mvt?filter-lang=sql", 400, "invalid_parameter"),
        ("/tiles/incidents/14/1/1.mvt", 401, "unauthorized"),
        ("/collections/nowhere/tiles/WebMercatorQuad/1/0/0", 404, "unknown_layer"),
        ("/tiles/nowhere/tilejson.json", 404, "unknown_layer"),
    ],
)
def test_bad_requests_are_4xx_json(web: TestClient, path: str, status: int, code: str) -> None:
    r = web.get(path)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == status and body["code"] == code and body["message"]


def test_etag_revalidation_and_cache_status(web: TestClient) -> None:
    z, x, y = tile_of(*CENTER, 16)
    path = f"/tiles/assets/{z}/{x + 1}/{y}.mvt?properties=code,state"
    first = web.get(path)
    second = web.get(path)
    assert first.headers["x-cache"] == "miss" and second.headers["x-cache"] == "hit"
    assert first.content == second.content and first.headers["etag"] == second.headers["etag"]
    assert "must-revalidate" in first.headers["cache-control"]
    etag = first.headers["etag"]
    assert etag.startswith('"') and len(etag) > 10
    unchanged = web.get(path, headers={"If-None-Match": etag})
    assert unchanged.status_code == 304 and not unchanged.content
    assert unchanged.headers["etag"] == etag
    assert web.get(path, headers={"If-None-Match": '"other"'}).status_code == 200


def test_empty_tiles_are_204_and_layers_outside_their_zooms_are_empty(web: TestClient) -> None:
    assert web.get("/tiles/assets/2/0/0.mvt").status_code == 204  # below minzoom
    z, x, y = tile_of(0.0, 0.0, 14)  # no data in the Gulf of Guinea
    assert web.get(f"/tiles/assets/{z}/{x}/{y}.mvt").status_code == 204
