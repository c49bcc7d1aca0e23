"""Building the grid: a concave boundary with a hole, in a projected CRS, covered with no gap
and no stray cell; districts by largest overlap; rebuilds keep assignments; bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import h3
import numpy as np
import pytest
import shapely
from pyproj import Transformer
from typer.testing import CliRunner

from layers.db.settings import storage_settings
from spatial_api.cli import app as cli
from tests.helpers import GridCity, hex_polygon

PROJECTED = "EPSG:4547"  # CGCS2000 / 3-degree Gauss-Kruger CM 114E
TO_PROJECTED = Transformer.from_crs("EPSG:4326", PROJECTED, always_xy=True)
TO_LONLAT = Transformer.from_crs(PROJECTED, "EPSG:4326", always_xy=True)


def c_shape() -> shapely.Polygon:
    """A C-shaped (concave) lon/lat polygon with a round hole in its spine."""
    outer = shapely.Polygon(
        [
            (114.000, 22.500),
            (114.060, 22.500),
            (114.060, 22.514),
            (114.016, 22.516),
            (114.015, 22.534),
            (114.060, 22.536),
            (114.060, 22.550),
            (114.000, 22.550),
        ]
    )
    hole = shapely.Point(114.0075, 22.525).buffer(0.004, quad_segs=16)
    return shapely.Polygon(outer.exterior.coords, [hole.exterior.coords])


def projected(shape: shapely.Geometry) -> shapely.Geometry:
    """``shape`` densified and written in the projected CRS."""
    dense = shapely.segmentize(shape, 0.001)
    return shapely.transform(dense, lambda xy: np.column_stack(TO_PROJECTED.transform(*xy.T)))


def lonlat(shape: shapely.Geometry) -> shapely.Geometry:
    """``shape`` from the projected CRS back to lon/lat (the reference boundary)."""
    return shapely.transform(shape, lambda xy: np.column_stack(TO_LONLAT.transform(*xy.T)))


@pytest.fixture(scope="module")
def city(grid_city) -> Iterator[GridCity]:
    with grid_city("cityhex_grid_build") as c:
        west = shapely.Polygon(
            [(113.99, 22.49), (114.035, 22.49), (114.025, 22.56), (113.99, 22.56)]
        )
        east = shapely.Polygon(
            [(114.035, 22.49), (114.07, 22.49), (114.07, 22.56), (114.025, 22.56)]
        )
        c.add_district("440301", "West", west)
        c.add_district("440302", "East", east)
        yield c


@pytest.fixture
def use_db(city: GridCity, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CITYHEX_DATABASE_URL", city.url)
    storage_settings.cache_clear()
    yield
    storage_settings.cache_clear()


def stored(city: GridCity) -> dict[str, tuple[int | None, float, int]]:
    """Every stored cell: (district id, area m², res)."""
    rows = city.rows("SELECT h3, district_id, area_m2, res FROM grid_cells")
    return {h3.int_to_str(c): (d, a, r) for c, d, a, r in rows}


def check_cover(city: GridCity, boundary: shapely.Geometry, res: int) -> set[str]:
    """The stored cells cover ``boundary`` entirely, each overlaps it, none is stored twice."""
    count, distinct = city.rows("SELECT count(*), count(DISTINCT h3) FROM grid_cells")[0]
    assert count == distinct
    cells = stored(city)
    assert {r for _, _, r in cells.values()} == {res}
    polys = np.array([hex_polygon(c) for c in cells])
    gap = boundary.difference(shapely.union_all(polys))
    assert gap.area <= boundary.area * 1e-9, f"uncovered area {gap.area}"
    overlap = shapely.area(shapely.intersection(polys, boundary))
    assert (overlap > 0).all(), f"{int((overlap <= 0).sum())} stored cells miss the boundary"
    stored_geom = city.rows("SELECT h3, ST_AsText(geom) FROM grid_cells LIMIT 50")
    for cell, wkt in stored_geom:
        assert shapely.from_wkt(wkt).equals_exact(hex_polygon(h3.int_to_str(cell)), 1e-9)
    return set(cells)


def test_cli_build_covers_concave_boundary_with_hole(
    city: GridCity, use_db: None, tmp_path: Path
) -> None:
    path = tmp_path / "c_shape.geojson"
    feature = {
        "type": "Feature",
        "properties": {"name": "C"},
        "geometry": shapely.geometry.mapping(projected(c_shape())),
    }
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    result = CliRunner().invoke(
        cli, ["grid", "build", "--boundary", str(path), "--src-crs", PROJECTED, "--res", "10"]
    )
    assert result.exit_code == 0, result.output
    boundary = lonlat(projected(c_shape()))
    cells = check_cover(city, boundary, 10)
    hole_centre = h3.latlng_to_cell(22.525, 114.0075, 10)
    assert hole_centre not in cells
    inside_arm = h3.latlng_to_cell(22.507, 114.05, 10)
    assert inside_arm in cells
    notch = h3.latlng_to_cell(22.525, 114.05, 10)
    assert notch not in cells


def test_cells_carry_district_of_largest_overlap_and_true_area(city: GridCity) -> None:
    districts = {
        d: shapely.from_wkt(w) for d, w in city.rows("SELECT id, ST_AsText(geom) FROM districts")
    }
    cells = stored(city)
    assert cells
    checked = 0
    for cell, (district, area, _) in cells.items():
        assert area == pytest.approx(h3.cell_area(cell, unit="m^2"), rel=1e-9)
        poly = hex_polygon(cell)
        shares = {d: poly.intersection(g).area / poly.area for d, g in districts.items()}
        ranked = sorted(shares.values(), reverse=True)
        if ranked[0] - ranked[1] > 1e-3:
            assert district == max(shares, key=shares.get), cell
            checked += 1
    assert checked > len(cells) * 0.9
    assert len({d for d, _, _ in cells.values()}) == 2


def test_rebuild_keeps_assignments_and_reports_added_and_dropped(city: GridCity) -> None:
    before = stored(city)
    inspector = city.add_users(1)[0]
    kept_cell = h3.latlng_to_cell(22.545, 114.005, 10)
    gone_cell = h3.latlng_to_cell(22.507, 114.055, 10)
    city.execute(
        "UPDATE grid_cells SET inspector_id = %s WHERE h3 = ANY(%s)",
        (inspector, [h3.str_to_int(kept_cell), h3.str_to_int(gone_cell)]),
    )
    changed = (
        c_shape()
        .difference(shapely.box(114.045, 22.49, 114.07, 22.52))
        .union(shapely.box(114.0, 22.55, 114.02, 22.56))
    )
    r = city.client.post(
        "/grid/build",
        headers=city.key("admin"),
        json={"boundary": shapely.geometry.mapping(changed), "res": 10},
    )
    assert r.status_code == 200, r.text
    report = r.json()
    after = check_cover(city, changed, 10)
    assert set(report["added"]) == after - set(before)
    assert set(report["dropped"]) == set(before) - after
    assert report["added_count"] > 0 and report["dropped_count"] > 0
    assert report["cells"] == len(after)
    grid = city.grid()
    assert grid[kept_cell] == inspector
    assert gone_cell not in grid
    released = city.rows(
        "SELECT from_inspector_id, to_inspector_id, note FROM grid_assignments WHERE h3 = %s",
        (h3.str_to_int(gone_cell),),
    )
    assert released == [(inspector, None, "cell dropped by grid rebuild")]


def test_build_over_districts_and_bbox(city: GridCity, use_db: None) -> None:
    result = CliRunner().invoke(cli, ["grid", "build", "--districts", "--res", "9"])
    assert result.exit_code == 0, result.output
    union = shapely.union_all(
        [shapely.from_wkt(w) for (w,) in city.rows("SELECT ST_AsText(geom) FROM districts")]
    )
    check_cover(city, union, 9)
    r = city.client.post(
        "/grid/build", headers=city.key("admin"), json={"bbox": "114.0,22.5,114.03,22.52", "res": 9}
    )
    assert r.status_code == 200, r.text
    check_cover(city, shapely.box(114.0, 22.5, 114.03, 22.52), 9)


def snapshot(city: GridCity) -> tuple:
    return (
        sorted(city.rows("SELECT h3, res, district_id, inspector_id FROM grid_cells")),
        city.value("SELECT count(*) FROM grid_assignments"),
    )


BAD_BUILDS = [
    ({"bbox": "114.1,22.5,114.0,22.6"}, 400, "invalid_bbox"),
    ({"bbox": "114.0,22.5,114.1"}, 400, "invalid_bbox"),
    ({"bbox": "114.0,22.5,114.1,22.6", "res": 16}, 400, "invalid_parameter"),
    ({"bbox": "0,-80,180,80", "res": 10}, 422, "grid_too_large"),
    ({"boundary": {"type": "Point", "coordinates": [114, 22.5]}}, 400, "invalid_boundary"),
    ({"boundary": {"type": "Polygon", "coordinates": [[1, 2]]}}, 400, "invalid_boundary"),
    ({"boundary": shapely.geometry.mapping(projected(c_shape()))}, 422, "not_lonlat"),
    (
        {"boundary": shapely.geometry.mapping(c_shape()), "src_crs": "EPSG:99999"},
        400,
        "invalid_crs",
    ),
    ({"bbox": "114.0,22.5,114.1,22.6", "districts": True}, 400, "invalid_source"),
    ({}, 400, "invalid_source"),
    ({"bbox": "114.0,22.5,114.1,22.6", "colour": "red"}, 400, "invalid_parameter"),
]


@pytest.mark.parametrize(("body", "status", "code"), BAD_BUILDS)
def test_bad_build_is_refused_and_writes_nothing(
    city: GridCity, body: dict, status: int, code: str
) -> None:
    before = snapshot(city)
    r = city.client.post("/grid/build", headers=city.key("admin"), json=body)
    assert r.status_code == status, r.text
    assert r.json()["code"] == code
    assert snapshot(city) == before


def test_build_needs_admin(city: GridCity) -> None:
    body = {"bbox": "114.0,22.5,114.01,22.51"}
    assert city.client.post("/grid/build", json=body).status_code == 401
    assert (
        city.client.post("/grid/build", json=body, headers=city.key("dispatcher")).status_code
        == 403
    )


@pytest.mark.parametrize(
    "args",
    [
        ["--boundary", "/nonexistent/boundary.geojson"],
        ["--bbox", "1,2,3"],
        ["--bbox", "114,22.5,114.1,22.6", "--districts"],
        ["--bbox", "114,22.5,114.1,22.6", "--res", "16"],
        [],
    ],
)
def test_bad_cli_build_fails_and_writes_nothing(
    city: GridCity, use_db: None, args: list[str]
) -> None:
    before = snapshot(city)
    result = CliRunner().invoke(cli, ["grid", "build", *args])
    assert result.exit_code == 1, result.output
    assert snapshot(city) == before
