"""CSV import: lon/lat columns by their usual names (degrees, EPSG:4326), x/y and WKT with
--src-crs, types inferred for --create, and errors that name the line."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

import psycopg
import pyproj
import pytest

from etl.imports.options import ImportOptions
from etl.imports.vector import import_file
from gis.errors import BadRequest, Unprocessable
from layers.catalog.registry import load_catalog
from tests.helpers import lonlat_points, scalar

pytestmark = pytest.mark.usefixtures("own_catalog")


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    """A CSV file with a header line."""
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_lon_lat_csv_makes_a_layer_with_inferred_types(url: str, tmp_path: Path) -> None:
    lon, lat = lonlat_points(6, seed=51)
    rows = [
        [
            f"shop {i}",
            x,
            y,
            i,
            2.5 * i,
            "yes" if i % 2 else "no",
            f"2024-05-0{i + 1}T09:30:00+08:00",
            '内, "quoted"\ttab',
        ]
        for i, (x, y) in enumerate(zip(lon, lat, strict=True))
    ]
    path = write_csv(
        tmp_path / "shops.csv",
        ["name", "Longitude", "LAT", "staff", "rating", "open", "since", "note"],
        rows,
    )

    report = import_file(url, path, ImportOptions(layer="shops", create=True, time_field="since"))

    assert report.written == 6 and "degrees" in report.crs
    kinds = load_catalog().get("shops").properties
    assert kinds == {
        "name": "string",
        "staff": "integer",
        "rating": "number",
        "open": "boolean",
        "since": "datetime",
        "note": "string",
    }
    with psycopg.connect(url) as conn:
        got = conn.execute(
            "SELECT ST_X(geom), ST_Y(geom), staff, rating, open, since, note "
            "FROM shops ORDER BY staff"
        ).fetchall()
    for i, (x, y, staff, rating, is_open, since, note) in enumerate(got):
        assert (x, y) == (pytest.approx(lon[i], abs=1e-12), pytest.approx(lat[i], abs=1e-12))
        assert (staff, rating, is_open) == (i, 2.5 * i, bool(i % 2))
        assert since == datetime.fromisoformat(f"2024-05-0{i + 1}T09:30:00+08:00")
        assert note == '内, "quoted"\ttab'


def test_projected_x_y_csv_needs_and_uses_src_crs(url: str, tmp_path: Path) -> None:
    lon, lat = lonlat_points(4, seed=52)
    x, y = pyproj.Transformer.from_crs(4326, 32650, always_xy=True).transform(lon, lat)
    rows = [
        [f"4403040117{700 + i:06d}", "0117", "street_lamp", ex, ey]
        for i, (ex, ey) in enumerate(zip(x, y, strict=True))
    ]
    path = write_csv(tmp_path / "lamps.csv", ["code", "class_code", "kind", "X", "Y"], rows)
    with pytest.raises(Unprocessable, match="--src-crs"):
        import_file(url, path, ImportOptions(layer="assets"))
    import_file(url, path, ImportOptions(layer="assets", src_crs="EPSG:32650"))
    with psycopg.connect(url) as conn:
        got = conn.execute(
            "SELECT ST_X(geom), ST_Y(geom) FROM assets WHERE code LIKE "
            "'4403040117000%%' ORDER BY code"
        ).fetchall()
    for (gx, gy), ex, ey in zip(got, lon, lat, strict=True):
        assert abs(gx - ex) < 1e-7 and abs(gy - ey) < 1e-7


def test_wkt_csv_in_cgcs2000(url: str, tmp_path: Path) -> None:
    rows = [
        ["LINESTRING (114.0 22.5, 114.01 22.51)", "Shennan Road"],
        ["LINESTRING (114.02 22.5, 114.03 22.5, 114.03 22.52)", "Caitian Road"],
    ]
    path = write_csv(tmp_path / "roads.csv", ["WKT", "name"], rows)
    import_file(url, path, ImportOptions(layer="roads", create=True, src_crs="EPSG:4490"))
    assert load_catalog().get("roads").geometry_type == "LineString"
    assert scalar(url, "SELECT ST_NPoints(geom) FROM roads WHERE name = 'Caitian Road'") == 3


def test_csv_errors_name_the_line(url: str, tmp_path: Path) -> None:
    good = [["a", 114.0, 22.5], ["b", 114.1, 22.6]]
    bad_number = write_csv(tmp_path / "n.csv", ["name", "lon", "lat"], [*good, ["c", "east", 22.7]])
    with pytest.raises(Unprocessable, match="line 4: lon 'east' is not a number"):
        import_file(url, bad_number, ImportOptions(layer="pois", create=True))
    out_of_range = write_csv(
        tmp_path / "r.csv", ["name", "lng", "latitude"], [*good, ["c", 500000.0, 2500000.0]]
    )
    with pytest.raises(Unprocessable, match=r"line 4: .* is not a longitude/latitude"):
        import_file(url, out_of_range, ImportOptions(layer="pois", create=True))
    no_coordinates = write_csv(tmp_path / "c.csv", ["name", "east", "north"], good)
    with pytest.raises(BadRequest, match=r"no coordinate columns.*name, east, north"):
        import_file(url, no_coordinates, ImportOptions(layer="pois", create=True))
    named = import_file(
        url,
        no_coordinates,
        ImportOptions(
            layer="pois", create=True, lon_field="east", lat_field="north", src_crs="EPSG:4326"
        ),
    )
    assert named.written == 2
    bad_wkt = write_csv(
        tmp_path / "w.csv", ["geometry", "name"], [["POINT (114 22.5)", "a"], ["POINT (114", "b"]]
    )
    with pytest.raises(Unprocessable, match="line 3: geometry is not WKT"):
        import_file(url, bad_wkt, ImportOptions(layer="pois2", create=True, src_crs="EPSG:4326"))
    typed = write_csv(
        tmp_path / "t.csv",
        ["code", "kind", "owner_department_id", "lon", "lat"],
        [
            ["4403040117000901", "lamp", "1", 114.0, 22.5],
            ["4403040117000902", "lamp", "one", 114.0, 22.5],
        ],
    )
    with pytest.raises(Unprocessable, match="line 3: owner_department_id: 'one' is not an integer"):
        import_file(url, typed, ImportOptions(layer="assets"))
    assert scalar(url, "SELECT to_regclass('pois2')") is None
    assert scalar(url, "SELECT count(*) FROM assets WHERE code LIKE '44030401170009%%'") == 0
