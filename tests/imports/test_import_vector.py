"""Vector import: every format and CRS lands in EPSG:4326 where pyproj puts it, with its H3
cell, typed and extra properties, modes, dry runs and change notices."""

from __future__ import annotations

from pathlib import Path

import h3
import numpy as np
import orjson
import psycopg
import pytest
import shapely
from typer.testing import CliRunner

from etl.imports.options import ImportOptions
from etl.imports.report import ImportReport
from etl.imports.vector import import_file
from gis.errors import BadRequest, Conflict, Unprocessable
from layers.db.settings import storage_settings
from spatial_api.cli import app
from tests.helpers import lamp_fields, lonlat_points, scalar, write_file

N = 40


def assets_with_prefix(url: str, prefix: str) -> list[tuple]:
    """(code, lon, lat, h3, name, properties, version) of assets whose code starts so."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT code, ST_X(geom), ST_Y(geom), h3, name, properties, version FROM assets "
            "WHERE code LIKE %s ORDER BY code",
            (prefix + "%",),
        ).fetchall()


@pytest.mark.parametrize(
    ("suffix", "epsg", "serial"),
    [(".geojson", 4326, 1), (".gpkg", 3857, 101), (".shp", 32650, 201), (".fgb", 4490, 301)],
)
def test_import_lands_where_pyproj_puts_it(
    url: str, tmp_path: Path, suffix: str, epsg: int, serial: int
) -> None:
    lon, lat = lonlat_points(N, seed=serial)
    fields = lamp_fields(N, first_serial=serial)
    path = write_file(tmp_path / f"lamps{suffix}", shapely.points(lon, lat), fields, epsg)
    before = scalar(url, "SELECT count(*) FROM assets")

    report = import_file(url, path, ImportOptions(layer="assets"))

    assert (report.read, report.written, report.inserted) == (N, N, N)
    assert scalar(url, "SELECT count(*) FROM assets") == before + N
    rows = {r[0]: r for r in assets_with_prefix(url, "4403040117")}
    for i, code in enumerate(fields["code"]):
        _, x, y, cell, name, props, version = rows[code]
        assert abs(x - lon[i]) < 1e-7 and abs(y - lat[i]) < 1e-7  # ~1 cm
        assert cell == h3.str_to_int(h3.latlng_to_cell(lat[i], lon[i], 10))
        assert name == f"lamp {i}" and version == 1
        assert props["pole"] == f"P-{i}"
        assert props["height_m"] == pytest.approx(fields["height_m"][i])


def test_import_announces_the_changed_extent(url: str, tmp_path: Path) -> None:
    lon, lat = lonlat_points(5, seed=9)
    path = write_file(tmp_path / "few.geojson", shapely.points(lon, lat), lamp_fields(5, 901))
    with psycopg.connect(url, autocommit=True) as listener:
        listener.execute("LISTEN cityhex_changes")
        import_file(url, path, ImportOptions(layer="assets"))
        notice = next(listener.notifies(timeout=5, stop_after=1))
    payload = orjson.loads(notice.payload)
    assert payload["layer"] == "assets"
    west, south, east, north = payload["bboxes"][0]
    assert west <= lon.min() and east >= lon.max() and south <= lat.min() and north >= lat.max()


def test_upsert_updates_matching_codes_and_inserts_the_rest(url: str, tmp_path: Path) -> None:
    lon, lat = lonlat_points(10, seed=3)
    first = lamp_fields(10, 501)
    import_file(
        url,
        write_file(tmp_path / "a.gpkg", shapely.points(lon, lat), first),
        ImportOptions(layer="assets"),
    )
    second = lamp_fields(10, 506)  # codes 506..515: 506..510 exist
    second["name"] = np.array([f"renamed {i}" for i in range(10)], dtype=object)
    second.pop("pole")
    path = write_file(tmp_path / "b.gpkg", shapely.points(lon + 0.001, lat), second)

    report = import_file(url, path, ImportOptions(layer="assets", mode="upsert", key="code"))

    assert (report.updated, report.inserted) == (5, 5)
    rows = {r[0]: r for r in assets_with_prefix(url, "440304011700050")}
    rows.update({r[0]: r for r in assets_with_prefix(url, "440304011700051")})
    assert len(rows) == 15
    updated = rows["4403040117000506"]
    assert updated[4] == "renamed 0" and updated[6] == 2
    assert updated[5]["pole"] == "P-5"  # extra properties merged, not replaced
    assert abs(updated[1] - (lon[0] + 0.001)) < 1e-9
    assert rows["4403040117000515"][6] == 1
    with psycopg.connect(url) as conn:
        history = conn.execute(
            "SELECT h.version, h.op, h.before->'properties'->>'name', "
            "h.after->'properties'->>'name', h.actor FROM feature_history h "
            "JOIN assets a ON h.layer = 'assets' AND h.feature_id = a.id::text "
            "WHERE a.code = '4403040117000506'"
        ).fetchall()
    assert history == [(2, "update", "lamp 5", "renamed 0", "import")]


def test_append_of_an_existing_code_is_refused_whole(url: str, tmp_path: Path) -> None:
    lon, lat = lonlat_points(3, seed=4)
    fields = lamp_fields(3, 601)
    import_file(
        url,
        write_file(tmp_path / "a.fgb", shapely.points(lon, lat), fields),
        ImportOptions(layer="assets"),
    )
    again = lamp_fields(3, 603)  # 603 exists, 604 and 605 do not
    before = scalar(url, "SELECT count(*) FROM assets")
    with pytest.raises(Conflict, match=r"feature 1.*4403040117000603"):
        import_file(
            url,
            write_file(tmp_path / "b.fgb", shapely.points(lon, lat), again),
            ImportOptions(layer="assets"),
        )
    assert scalar(url, "SELECT count(*) FROM assets") == before


def test_dry_run_reports_and_writes_nothing(url: str, tmp_path: Path) -> None:
    lon, lat = lonlat_points(7, seed=5)
    path = write_file(tmp_path / "dry.geojson", shapely.points(lon, lat), lamp_fields(7, 701))
    before = scalar(url, "SELECT count(*) FROM assets")
    report = import_file(url, path, ImportOptions(layer="assets", dry_run=True))
    assert report.dry_run and report.written == 7
    assert scalar(url, "SELECT count(*) FROM assets") == before


def test_map_renames_fields_and_missing_required_field_is_named(url: str, tmp_path: Path) -> None:
    lon, lat = lonlat_points(4, seed=6)
    fields = lamp_fields(4, 801)
    renamed = {"ASSET_NO": fields["code"], "TYPE": fields["kind"], "NAME": fields["name"]}
    path = write_file(tmp_path / "renamed.gpkg", shapely.points(lon, lat), renamed)
    with pytest.raises(BadRequest, match=r"needs kind.*--map FIELD=kind"):
        import_file(url, path, ImportOptions(layer="assets"))
    report = import_file(
        url,
        path,
        ImportOptions(
            layer="assets", field_map={"ASSET_NO": "code", "TYPE": "kind", "NAME": "name"}
        ),
    )
    assert report.written == 4
    row = assets_with_prefix(url, fields["code"][0])[0]
    assert row[4] == "lamp 0"
    assert (
        scalar(url, "SELECT class_code FROM assets WHERE code = %s", (fields["code"][0],)) == "0117"
    )  # taken from the code's class digits


def test_assets_without_codes_get_the_next_serials_of_their_division(
    url: str, tmp_path: Path
) -> None:
    lon, lat = lonlat_points(3, seed=7)
    fields = {
        "class_code": np.array(["0115"] * 3, dtype=object),
        "kind": np.array(["fire_hydrant"] * 3, dtype=object),
    }
    path = write_file(tmp_path / "hydrants.geojson", shapely.points(lon, lat), fields)
    with pytest.raises(Unprocessable, match="--division"):
        import_file(url, path, ImportOptions(layer="assets"))
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO assets (code, class_code, kind, geom) VALUES "
            "('4403050115000041', '0115', 'fire_hydrant', 'SRID=4326;POINT(114 22.5)')"
        )
    import_file(url, path, ImportOptions(layer="assets", division="440305"))
    codes = [r[0] for r in assets_with_prefix(url, "4403050115")]
    assert codes == ["4403050115000041", "4403050115000042", "4403050115000043", "4403050115000044"]


WEST = shapely.box(113.9, 22.5, 114.0, 22.6)
EAST = shapely.MultiPolygon(
    [shapely.box(114.0, 22.5, 114.1, 22.6), shapely.box(114.2, 22.5, 114.3, 22.6)]
)
DISTRICT_FIELDS = {
    "adcode": np.array(["440305", "440304"], dtype=object),
    "NAME": np.array(["南山区", "福田区"], dtype=object),
}
DISTRICT_OPTIONS = ImportOptions(layer="districts", field_map={"adcode": "code", "NAME": "name"})


@pytest.fixture(scope="module")
def districts(url: str, tmp_path_factory: pytest.TempPathFactory) -> ImportReport:
    """Nanshan (one part) and Futian (two parts) imported from a GeoPackage."""
    folder = tmp_path_factory.mktemp("districts")
    path = write_file(folder / "districts.gpkg", np.array([WEST, EAST]), DISTRICT_FIELDS, 4326)
    return import_file(url, path, DISTRICT_OPTIONS)


def test_districts_become_multipolygons_with_their_division_codes(
    url: str, tmp_path: Path, districts: ImportReport
) -> None:
    report = districts
    assert report.written == 2
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT code, name, GeometryType(geom), ST_NumGeometries(geom), "
            "ST_Area(geom) FROM districts ORDER BY code"
        ).fetchall()
    assert rows[0][:4] == ("440304", "福田区", "MULTIPOLYGON", 2)
    assert rows[1][:4] == ("440305", "南山区", "MULTIPOLYGON", 1)
    assert rows[1][4] == pytest.approx(WEST.area)
    bad = {**DISTRICT_FIELDS, "adcode": np.array(["4403", "440306"], dtype=object)}
    before = scalar(url, "SELECT count(*) FROM districts")
    with pytest.raises(Unprocessable, match="feature 1: code '4403' is not a 6-digit"):
        path = write_file(tmp_path / "bad.gpkg", np.array([WEST, EAST]), bad)
        import_file(url, path, DISTRICT_OPTIONS)
    assert scalar(url, "SELECT count(*) FROM districts") == before


def test_imported_districts_feed_grid_build(
    url: str, districts: ImportReport, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CITYHEX_DATABASE_URL", url)
    storage_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["grid", "build", "--districts", "--res", "8"])
    finally:
        monkeypatch.delenv("CITYHEX_DATABASE_URL")
        storage_settings.cache_clear()
    assert result.exit_code == 0, result.output
    with psycopg.connect(url) as conn:
        rows = dict(
            conn.execute(
                "SELECT d.code, count(*) FROM grid_cells g "
                "JOIN districts d ON d.id = g.district_id GROUP BY d.code"
            ).fetchall()
        )
    assert set(rows) == {"440304", "440305"}
    assert rows["440304"] > rows["440305"] > 0  # Futian has two parts, Nanshan one


def test_extra_properties_keep_their_json_types(url: str, tmp_path: Path) -> None:
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [114.05, 22.54]},
            "properties": {
                "code": f"440304011700098{i}",
                "kind": "street_lamp",
                "spec": {"watts": 150 + i, "led": True},
                "lumens": 12000 + i,
                "ratio": 0.5 + i,
                "smart": i == 1,
                "note": None if i else "first",
            },
        }
        for i in range(2)
    ]
    path = tmp_path / "nested.geojson"
    path.write_text(orjson.dumps({"type": "FeatureCollection", "features": features}).decode())
    import_file(url, path, ImportOptions(layer="assets"))
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT properties FROM assets WHERE code IN "
            "('4403040117000980', '4403040117000981') ORDER BY code"
        ).fetchall()
    assert [r[0] for r in rows] == [
        {
            "spec": {"watts": 150, "led": True},
            "lumens": 12000,
            "ratio": 0.5,
            "smart": False,
            "note": "first",
        },
        {"spec": {"watts": 151, "led": True}, "lumens": 12001, "ratio": 1.5, "smart": True},
    ]
