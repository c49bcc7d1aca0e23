"""Every path that writes assets, incidents and sensors stores the cell that contains the
row's point at res 5–11 (``h3`` and ``h3_<res>``): the features API, the incident report,
the sensor registry, the import pipeline, the demo city, and the backfill of rows written
without them. Each stored cell is checked against ``h3.latlng_to_cell`` of the point (a
line's or polygon's point on surface by shapely), for points 1–4 m from cell edges."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import h3
import numpy as np
import psycopg
import pytest
import shapely
from alembic import command
from fastapi.testclient import TestClient

from etl.demo.loader import load_demo
from etl.imports.options import ImportOptions
from etl.imports.vector import import_file
from layers.db.cell_levels import fill_cell_levels
from layers.db.migrate import alembic_config
from tests.helpers import (
    CELL_RES,
    INCIDENT_CENTRE,
    cell,
    edge_points,
    make_key,
    stored_cells_ok,
    write_file,
)
from tests.incidents.conftest import build_city

COLUMNS = ["h3" if r == 10 else f"h3_{r}" for r in CELL_RES]


def stored(url: str, table: str, where: str = "true", params: tuple = ()) -> list:
    """(geometry, {column: cell}) of the rows of ``table`` matching ``where``."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            f"SELECT ST_AsBinary(geom), {', '.join(COLUMNS)} FROM {table} WHERE {where}"
            " ORDER BY id",
            params,
        ).fetchall()
    return [(shapely.from_wkb(r[0]), dict(zip(COLUMNS, r[1:], strict=True))) for r in rows]


def assert_all_right(rows: list) -> None:
    """Every row's stored cells are those of its point."""
    assert rows
    wrong = [(g.wkt, cells) for g, cells in rows if not stored_cells_ok(g, cells)]
    assert not wrong, wrong[:3]


@pytest.fixture(scope="module")
def url(new_database) -> str:
    """The incident test city (districts, inspectors, a disk of grid cells)."""
    url = new_database("cityhex_cell_writers")
    build_city(url)
    return url


@pytest.fixture(scope="module")
def http(url: str) -> Iterator[TestClient]:
    from spatial_api.app import create_app

    with TestClient(create_app(url)) as client:
        yield client


@pytest.fixture(scope="module")
def pts() -> np.ndarray:
    """Points near the edges of cells at res 5–11 around the city's centre, in the grid."""
    return edge_points(np.random.default_rng(5), INCIDENT_CENTRE, per_edge=1, ring=0)


def feature(code: str, geometry: shapely.Geometry) -> dict:
    return {
        "type": "Feature",
        "geometry": shapely.geometry.mapping(geometry),
        "properties": {"code": code, "kind": "lamp"},
    }


def test_features_api_writes_points_lines_polygons_and_moves(http, url, pts) -> None:
    admin = make_key(url, "admin")
    (x, y), (x2, y2) = pts[0], pts[1]
    geoms = [
        *(shapely.Point(p) for p in pts[:12].tolist()),
        shapely.LineString([(x, y), (x + 0.003, y + 0.001), (x + 0.004, y + 0.004)]),
        shapely.Polygon([(x, y), (x + 0.002, y), (x + 0.002, y + 0.003), (x, y + 0.001)]),
    ]
    ids = []
    for i, g in enumerate(geoms):
        r = http.post("/collections/assets/items", json=feature(f"440301{i:010d}", g),
                      headers=admin)  # fmt: skip
        assert r.status_code == 201, r.text
        ids.append(int(r.headers["Location"].rsplit("/", 1)[1]))
    path = f"/collections/assets/items/{ids[0]}"
    etag = http.get(path).headers["ETag"]
    moved = {"geometry": shapely.geometry.mapping(shapely.Point(x2, y2))}
    patch = {**admin, "If-Match": etag, "Content-Type": "application/merge-patch+json"}
    r = http.patch(path, json=moved, headers=patch)
    assert r.status_code == 200, r.text
    rows = stored(url, "assets", "id = ANY(%s)", (ids,))
    assert len(rows) == len(geoms) and rows[0][0].equals(shapely.Point(x2, y2))
    assert_all_right(rows)


def test_incident_reports_store_the_cells_of_their_point(http, url, pts) -> None:
    key = make_key(url, "app")
    for lon, lat in pts[-24:].tolist():  # near edges at res 8–11: inside the grid
        r = http.post("/incidents", json={"category": "0107", "lon": lon, "lat": lat},
                      headers=key)  # fmt: skip
        assert r.status_code == 201, r.text
    assert_all_right(stored(url, "incidents"))


def test_sensors_store_their_cells_when_made_and_moved(http, url, pts) -> None:
    admin = make_key(url, "admin")
    for i, (lon, lat) in enumerate(pts[:6].tolist()):
        body = {"code": f"W-{i}", "kind": "noise", "lon": lon, "lat": lat,
                "measures": {"db": {"unit": "dB", "min": 0, "max": 200}}}  # fmt: skip
        r = http.post("/sensors", json=body, headers=admin)
        assert r.status_code == 201, r.text
    lon, lat = pts[7]
    r = http.patch("/sensors/W-0", json={"lon": lon, "lat": lat}, headers=admin)
    assert r.status_code == 200, r.text
    rows = stored(url, "sensors", "code LIKE 'W-%%'")
    assert rows[0][0].equals(shapely.Point(lon, lat))
    assert_all_right(rows)


def test_imports_store_the_cells_of_each_row(url, pts, tmp_path: Path) -> None:
    n = len(pts)
    lines = [shapely.LineString([p, p + 0.002]) for p in pts[: n // 2]]
    geoms = np.array([*shapely.points(pts[n // 2 :]), *lines], dtype=object)
    fields = {
        "code": np.array([f"440302{9000000000 + i}" for i in range(n)], dtype=object),
        "kind": np.array(["lamp"] * n, dtype=object),
    }
    path = write_file(tmp_path / "assets.gpkg", geoms, fields)
    assert import_file(url, path, ImportOptions(layer="assets")).written == n
    assert_all_right(stored(url, "assets", "code LIKE '4403029%%'"))


def test_rows_written_without_cells_are_backfilled(url, pts) -> None:
    res10 = [cell(lon, lat) for lon, lat in pts.tolist()]
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO assets (code, class_code, kind, h3, geom) SELECT '4403038' ||"
            " lpad(i::text, 9, '0'), '0101', 'lamp', c, ST_SetSRID(ST_MakePoint(x, y), 4326)"
            " FROM unnest(%s::float8[], %s::float8[], %s::bigint[]) WITH ORDINALITY"
            " AS t(x, y, c, i)",
            (pts[:, 0].tolist(), pts[:, 1].tolist(), res10),
        )
        before = conn.execute(
            "SELECT count(*) FROM assets WHERE code LIKE '4403038%%' AND h3_8 IS NULL"
        ).fetchone()[0]
        assert before == len(pts)
        assert fill_cell_levels(conn, "assets") >= len(pts)
    assert_all_right(stored(url, "assets", "code LIKE '4403038%%'"))


def test_the_demo_city_stores_the_cells_of_every_row(new_database) -> None:
    demo = new_database("cityhex_cell_writers_demo")
    assert load_demo(demo, 0.01, progress=False).loaded
    for table in ("assets", "incidents", "sensors"):
        assert_all_right(stored(demo, table))


def test_migration_0015_fills_the_rows_already_there(new_database, pts) -> None:
    url = new_database("cityhex_cell_writers_migration")
    command.downgrade(alembic_config(url), "0013_audit")
    lines = [shapely.LineString([p, p + 0.003]).wkt for p in pts]
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO assets (code, class_code, kind, geom) SELECT '4403037' ||"
            " lpad(i::text, 9, '0'), '0101', 'pipe', ST_GeomFromText(g, 4326)"
            " FROM unnest(%s::text[]) WITH ORDINALITY AS t(g, i)",
            (lines,),
        )
        conn.execute(
            "INSERT INTO sensors (code, kind, geom) SELECT 'M-' || i, 'noise',"
            " ST_SetSRID(ST_MakePoint(x, y), 4326)"
            " FROM unnest(%s::float8[], %s::float8[]) WITH ORDINALITY AS t(x, y, i)",
            (pts[:, 0].tolist(), pts[:, 1].tolist()),
        )
    command.upgrade(alembic_config(url), "head")
    for table in ("assets", "sensors"):
        rows = stored(url, table)
        assert len(rows) == len(pts)
        assert all(cells[c] == want for g, cells in rows for c, want in level_cells_of(g).items())


def level_cells_of(geom: shapely.Geometry) -> dict[str, int]:
    """The cells at res 5–9 and 11 of the geometry's point (point on surface by shapely)."""
    point = geom if geom.geom_type == "Point" else shapely.point_on_surface(geom)
    return {
        f"h3_{r}": h3.str_to_int(h3.latlng_to_cell(point.y, point.x, r))
        for r in CELL_RES
        if r != 10
    }


@pytest.mark.parametrize("res", [6, 9, 11])
def test_assets_are_analysed_by_point_on_surface(http, url, res: int) -> None:
    r = http.get("/analytics/h3", params={"layer": "assets", "res": res})
    assert r.status_code == 200, r.text
    got = {row["cell"]: row["count"] for row in r.json()["cells"]}
    with psycopg.connect(url) as conn:
        geoms = [
            shapely.from_wkb(g) for (g,) in conn.execute("SELECT ST_AsBinary(geom) FROM assets")
        ]
    kinds = {g.geom_type for g in geoms}
    assert {"Point", "LineString", "Polygon"} <= kinds
    points = [shapely.point_on_surface(g) for g in geoms]
    assert got == Counter(h3.latlng_to_cell(p.y, p.x, res) for p in points)
