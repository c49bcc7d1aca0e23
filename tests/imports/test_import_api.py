"""POST /collections/{layer}/import: admins import files over HTTP; everyone else is turned
away; bad files are a 4xx JSON error and write nothing."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import pytest
import shapely
from fastapi.testclient import TestClient

from etl.imports.options import ImportOptions
from spatial_api.app import create_app
from tests.helpers import lamp_fields, lonlat_points, make_key, scalar, write_file

COUNT = "SELECT count(*) FROM assets"


@pytest.fixture(scope="module")
def client(url: str) -> Iterator[TestClient]:
    """The app on this module's database."""
    with TestClient(create_app(url)) as c:
        yield c


def key(url: str, role: str) -> dict[str, str]:
    """The Authorization header of a new key with ``role``."""
    return make_key(url, role, name=f"api-{role}")


def upload(*paths: Path) -> list[tuple[str, tuple[str, bytes]]]:
    """Multipart parts for the files."""
    return [("file", (p.name, p.read_bytes())) for p in paths]


def test_admin_imports_a_file_and_gets_the_report(
    url: str, client: TestClient, tmp_path: Path
) -> None:
    lon, lat = lonlat_points(6, seed=21)
    path = write_file(tmp_path / "lamps.gpkg", shapely.points(lon, lat), lamp_fields(6, 1))
    before = scalar(url, COUNT)
    response = client.post(
        "/collections/assets/import", files=upload(path), headers=key(url, "admin")
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["read"], body["written"], body["rejected_count"]) == (6, 6, 0)
    assert scalar(url, COUNT) == before + 6
    assert (
        scalar(url, "SELECT updated_by FROM assets WHERE code = '4403040117000001'")
        == "admin:api-admin"
    )


def test_shapefile_parts_with_options(url: str, client: TestClient, tmp_path: Path) -> None:
    lon, lat = lonlat_points(4, seed=22)
    fields = lamp_fields(4, 101)
    fields["TYPE"] = fields.pop("kind")
    shp = write_file(tmp_path / "lamps.shp", shapely.points(lon, lat), fields, epsg=None)
    parts = [shp.with_suffix(s) for s in (".shp", ".shx", ".dbf")]
    response = client.post(
        "/collections/assets/import",
        files=upload(*parts),
        data={"src_crs": "EPSG:4326", "map": "TYPE=kind", "mode": "upsert", "key": "code"},
        headers=key(url, "admin"),
    )
    assert response.status_code == 201, response.text
    assert response.json()["inserted"] == 4
    assert scalar(url, "SELECT kind FROM assets WHERE code = '4403040117000101'") == "street_lamp"
    again = client.post(
        "/collections/assets/import",
        files=upload(*parts),
        data={"src_crs": "EPSG:4326", "map": "TYPE=kind", "mode": "upsert", "key": "code"},
        headers=key(url, "admin"),
    )
    assert again.json()["updated"] == 4
    feature = scalar(url, "SELECT id FROM assets WHERE code = '4403040117000101'")
    history = client.get(
        f"/collections/assets/items/{feature}/history", headers=key(url, "editor")
    ).json()
    ops = [(v["op"], v["actor"]) for v in history["versions"]]
    assert ops == [("update", "admin:api-admin")]


@pytest.mark.parametrize(("role", "status"), [(None, 401), ("editor", 403), ("app", 403)])
def test_only_admins_may_import(
    url: str, client: TestClient, tmp_path: Path, role: str | None, status: int
) -> None:
    lon, lat = lonlat_points(2, seed=23)
    path = write_file(tmp_path / "x.geojson", shapely.points(lon, lat), lamp_fields(2, 201))
    before = scalar(url, COUNT)
    headers = key(url, role) if role else {}
    response = client.post("/collections/assets/import", files=upload(path), headers=headers)
    assert response.status_code == status
    assert response.json()["status"] == status
    assert scalar(url, COUNT) == before


def test_bad_files_and_options_are_4xx_and_write_nothing(
    url: str, client: TestClient, tmp_path: Path
) -> None:
    lon, lat = lonlat_points(50, seed=24)
    good = write_file(tmp_path / "good.geojson", shapely.points(lon, lat), lamp_fields(50, 301))
    truncated = tmp_path / "cut.geojson"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    admin = key(url, "admin")
    before = scalar(url, COUNT)
    cases = [
        ({"files": upload(truncated)}, 422, "unreadable_file"),
        ({"files": upload(good), "data": {"mode": "merge"}}, 400, "invalid_mode"),
        ({"files": upload(good), "data": {"src_crs": "EPSG:999999"}}, 400, "unknown_crs"),
        ({"files": upload(good.with_suffix(".geojson"), truncated)}, 400, "invalid_upload"),
        ({"files": upload(good)}, 404, "unknown_layer"),
    ]
    for index, (kwargs, status, code) in enumerate(cases):
        layer = "nope" if index == len(cases) - 1 else "assets"
        response = client.post(f"/collections/{layer}/import", headers=admin, **kwargs)
        assert response.status_code == status, response.text
        assert response.json()["code"] == code
    assert scalar(url, COUNT) == before


def test_dry_run_answers_200_and_writes_nothing(
    url: str, client: TestClient, tmp_path: Path
) -> None:
    lon, lat = lonlat_points(3, seed=25)
    path = write_file(tmp_path / "d.fgb", shapely.points(lon, lat), lamp_fields(3, 401))
    before = scalar(url, COUNT)
    response = client.post(
        "/collections/assets/import",
        files=upload(path),
        data={"dry_run": "true"},
        headers=key(url, "admin"),
    )
    assert response.status_code == 200 and response.json()["written"] == 3
    assert scalar(url, COUNT) == before


def test_a_zipped_shapefile_with_prj(url: str, client: TestClient, tmp_path: Path) -> None:
    lon, lat = lonlat_points(5, seed=26)
    shp = write_file(
        tmp_path / "zipped.shp", shapely.points(lon, lat), lamp_fields(5, 501), epsg=32650
    )
    archive = tmp_path / "lamps.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for suffix in (".shp", ".shx", ".dbf", ".prj"):
            z.write(shp.with_suffix(suffix), shp.with_suffix(suffix).name)
    response = client.post(
        "/collections/assets/import", files=upload(archive), headers=key(url, "admin")
    )
    assert response.status_code == 201, response.text
    assert "32650" in response.json()["crs"]
    x = scalar(url, "SELECT ST_X(geom) FROM assets WHERE code = '4403040117000501'")
    assert abs(x - lon[0]) < 1e-7


def test_the_api_documents_every_import_option(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    body = client.get("/openapi.json").json()["paths"]["/collections/{layer}/import"]["post"]
    ref = body["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
    documented = set(schemas[ref.rsplit("/", 1)[1]]["properties"])
    options = {f.name for f in fields(ImportOptions)} - {"layer", "actor", "field_map"}
    assert documented == options | {"map", "file"}
