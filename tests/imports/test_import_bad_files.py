"""Bad files give clear errors and write nothing: broken geometries (unless repaired or
skipped), no CRS, wrong property types, broken asset rules, truncated files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import shapely

from etl.imports.options import ImportOptions
from etl.imports.vector import import_file
from gis.errors import BadRequest, CityHexError, Unprocessable
from tests.helpers import (
    lamp_fields,
    lonlat_points,
    scalar,
    write_file,
)

COUNT = "SELECT count(*) FROM assets"
BOWTIE = shapely.from_wkt(
    "POLYGON ((114.00 22.50, 114.01 22.51, 114.01 22.50, 114.00 22.51, 114.00 22.50))"
)


def shapes_with_a_bowtie(serial: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Four areas, the third a self-intersecting bow tie."""
    boxes = [shapely.box(114 + i / 100, 22.5, 114.005 + i / 100, 22.505) for i in range(4)]
    boxes[2] = BOWTIE
    fields = lamp_fields(4, serial)
    fields["class_code"] = np.array(["0405"] * 4, dtype=object)
    fields["code"] = np.array(
        [f"4403040405{s:06d}" for s in range(serial, serial + 4)], dtype=object
    )
    fields["kind"] = np.array(["green_area"] * 4, dtype=object)
    return np.array(boxes, dtype=object), fields


def test_broken_geometry_is_refused_by_default(url: str, tmp_path: Path) -> None:
    geoms, fields = shapes_with_a_bowtie(1)
    path = write_file(tmp_path / "bowtie.geojson", geoms, fields)
    before = scalar(url, COUNT)
    with pytest.raises(
        Unprocessable, match="feature 3: invalid geometry: Self-intersection"
    ) as caught:
        import_file(url, path, ImportOptions(layer="assets"))
    assert caught.value.code == "invalid_geometry"
    assert caught.value.details == [
        {"row": "feature 3", "reason": "invalid geometry: Self-intersection[114.005 22.505]"}
    ]
    assert scalar(url, COUNT) == before


def test_broken_geometry_repaired_or_skipped_on_request(url: str, tmp_path: Path) -> None:
    geoms, fields = shapes_with_a_bowtie(11)
    path = write_file(tmp_path / "bowtie.gpkg", geoms, fields)
    repaired = import_file(url, path, ImportOptions(layer="assets", invalid="repair"))
    assert (repaired.written, len(repaired.repaired), repaired.rejected) == (4, 1, [])
    assert repaired.repaired[0].row == "feature 3"
    code = fields["code"][2]
    assert scalar(url, "SELECT ST_IsValid(geom) FROM assets WHERE code = %s", (code,))
    assert scalar(
        url, "SELECT ST_Area(geom) FROM assets WHERE code = %s", (code,)
    ) == pytest.approx(shapely.make_valid(BOWTIE).area)

    geoms, fields = shapes_with_a_bowtie(21)
    path = write_file(tmp_path / "bowtie2.gpkg", geoms, fields)
    skipped = import_file(url, path, ImportOptions(layer="assets", invalid="skip"))
    assert skipped.written == 3 and [p.row for p in skipped.rejected] == ["feature 3"]
    assert "Self-intersection" in skipped.rejected[0].reason
    assert scalar(url, "SELECT count(*) FROM assets WHERE code = %s", (fields["code"][2],)) == 0


def test_a_file_without_crs_needs_src_crs(url: str, tmp_path: Path) -> None:
    lon, lat = lonlat_points(5, seed=31)
    path = write_file(
        tmp_path / "noprj.shp", shapely.points(lon, lat), lamp_fields(5, 101), epsg=None
    )
    assert not path.with_suffix(".prj").exists()
    before = scalar(url, COUNT)
    with pytest.raises(Unprocessable, match="--src-crs") as caught:
        import_file(url, path, ImportOptions(layer="assets"))
    assert caught.value.code == "missing_crs"
    assert scalar(url, COUNT) == before
    report = import_file(url, path, ImportOptions(layer="assets", src_crs="EPSG:4326"))
    assert report.written == 5


def test_wrong_property_types_name_field_and_row(url: str, tmp_path: Path) -> None:
    lon, lat = lonlat_points(4, seed=32)
    fields = lamp_fields(4, 201)
    fields["owner_department_id"] = np.array(["1", "2", "gd", "4.5"], dtype=object)
    path = write_file(tmp_path / "types.geojson", shapely.points(lon, lat), fields)
    before = scalar(url, COUNT)
    with pytest.raises(Unprocessable) as caught:
        import_file(url, path, ImportOptions(layer="assets"))
    assert "feature 3: owner_department_id: 'gd' is not an integer" in caught.value.message
    assert "feature 4: owner_department_id: '4.5' is not an integer" in caught.value.message
    assert scalar(url, COUNT) == before


def test_asset_rules_are_checked_row_by_row(url: str, tmp_path: Path) -> None:
    lon, lat = lonlat_points(4, seed=33)
    fields = lamp_fields(4, 301)
    fields["code"][1] = "44030401170003"  # 14 digits
    fields["class_code"][2] = "0101"  # does not match the code
    fields["state"] = np.array(["intact", "damaged", None, "stolen"], dtype=object)
    path = write_file(tmp_path / "rules.gpkg", shapely.points(lon, lat), fields)
    before = scalar(url, COUNT)
    with pytest.raises(Unprocessable) as caught:
        import_file(url, path, ImportOptions(layer="assets"))
    rows = {(d["row"], d["reason"].split(" ")[0]) for d in caught.value.details}
    assert rows == {("feature 2", "code"), ("feature 3", "class_code"), ("feature 4", "state")}
    assert scalar(url, COUNT) == before


def test_upsert_keys_must_be_present_and_unique(url: str, tmp_path: Path) -> None:
    lon, lat = lonlat_points(3, seed=34)
    fields = lamp_fields(3, 401)
    fields["code"][2] = fields["code"][0]
    path = write_file(tmp_path / "dupes.geojson", shapely.points(lon, lat), fields)
    with pytest.raises(
        Unprocessable, match="feature 3: key code = '4403040117000401' repeats feature 1"
    ):
        import_file(url, path, ImportOptions(layer="assets", mode="upsert", key="code"))
    with pytest.raises(BadRequest, match="--key"):
        import_file(url, path, ImportOptions(layer="assets", mode="upsert", key="serial"))


@pytest.mark.parametrize("suffix", [".geojson", ".gpkg", ".fgb", ".shp"])
def test_truncated_files_are_refused_whole(url: str, tmp_path: Path, suffix: str) -> None:
    lon, lat = lonlat_points(3000, seed=35)
    path = write_file(tmp_path / f"full{suffix}", shapely.points(lon, lat), lamp_fields(3000, 1001))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    before = scalar(url, COUNT)
    with pytest.raises(Unprocessable) as caught:
        import_file(url, path, ImportOptions(layer="assets"))
    assert caught.value.code in ("unreadable_file", "invalid_geometry")
    assert "truncated" in caught.value.message or "damaged" in caught.value.message
    assert scalar(url, COUNT) == before


def test_coordinates_in_the_wrong_crs_are_caught(url: str, tmp_path: Path) -> None:
    lon, lat = lonlat_points(3, seed=36)
    utm = write_file(tmp_path / "utm.gpkg", shapely.points(lon, lat), lamp_fields(3, 501), 32650)
    with pytest.raises(Unprocessable, match="is --src-crs right"):
        import_file(url, utm, ImportOptions(layer="assets", src_crs="EPSG:4326"))


def test_empty_files_unknown_layers_and_many_layers(url: str, tmp_path: Path) -> None:
    empty = write_file(tmp_path / "empty.gpkg", np.array([], dtype=object), {}, 4326)
    with pytest.raises(Unprocessable, match="no features"):
        import_file(url, empty, ImportOptions(layer="assets"))
    lon, lat = lonlat_points(2, seed=37)
    two = tmp_path / "two.gpkg"
    write_file(two, shapely.points(lon, lat), lamp_fields(2, 601), layer="first")
    write_file(two, shapely.points(lon, lat), lamp_fields(2, 611), layer="second")
    with pytest.raises(BadRequest, match=r"first, second.*--source-layer"):
        import_file(url, two, ImportOptions(layer="assets"))
    report = import_file(url, two, ImportOptions(layer="assets", source_layer="second"))
    assert report.written == 2
    with pytest.raises(CityHexError, match="no layer 'lamps'"):
        import_file(url, two, ImportOptions(layer="lamps", source_layer="first"))
    with pytest.raises(BadRequest, match="no such file"):
        import_file(url, tmp_path / "missing.gpkg", ImportOptions(layer="assets"))
