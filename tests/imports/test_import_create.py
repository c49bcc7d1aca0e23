"""``import --create``: a new layer from a file's schema — typed columns, 4326 geometry and
its generated 3857 copy, GiST and H3 indexes, a catalog entry the API serves at once, the
time column; then append, replace and the refusals."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import mapbox_vector_tile
import numpy as np
import orjson
import psycopg
import pyproj
import pytest
import shapely
from fastapi.testclient import TestClient

from etl.imports.options import ImportOptions
from etl.imports.vector import import_file
from gis.errors import BadRequest, Conflict
from layers.catalog.registry import created_layers_dir, load_catalog
from layers.db.keys import create_key
from spatial_api.app import create_app
from tests.helpers import lonlat_points, running_server, scalar, write_file

N = 30
pytestmark = pytest.mark.usefixtures("own_catalog")


def tree_fields(n: int) -> dict[str, np.ndarray]:
    """Fields of every kind: integer, number, boolean, date-time, text, a non-ASCII name."""
    return {
        "tree_id": np.arange(1, n + 1, dtype=np.int64),
        "Height (m)": np.linspace(3.0, 20.0, n),
        "protected": np.array([i % 2 == 0 for i in range(n)]),
        "planted": np.array(
            [f"2020-03-{1 + i % 28:02d}T08:00:00" for i in range(n)], dtype="datetime64[ms]"
        ),
        "species": np.array([f"Ficus {i}" for i in range(n)], dtype=object),
        "树种": np.array(["榕树"] * n, dtype=object),
    }


def columns(url: str, table: str) -> dict[str, str]:
    """Column name → data type of a table."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s",
            (table,),
        ).fetchall()
    return dict(rows)


def test_create_makes_a_typed_indexed_published_layer(url: str, tmp_path: Path) -> None:
    lon, lat = lonlat_points(N, seed=41)
    path = write_file(tmp_path / "trees.gpkg", shapely.points(lon, lat), tree_fields(N), 4490)

    report = import_file(
        url,
        path,
        ImportOptions(layer="trees", create=True, time_field="planted", title="Street trees"),
    )

    assert report.created and report.written == N
    assert columns(url, "trees") == {
        "id": "bigint",
        "tree_id": "bigint",
        "height__m_": "double precision",
        "protected": "boolean",
        "planted": "timestamp with time zone",
        "species": "text",
        "properties": "jsonb",
        "version": "integer",
        "h3": "bigint",
        **{f"h3_{r}": "bigint" for r in (5, 6, 7, 8, 9, 11)},
        "geom": "USER-DEFINED",
        "geom_3857": "USER-DEFINED",
    }
    with psycopg.connect(url) as conn:
        indexes = " ".join(
            r[0]
            for r in conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE tablename = 'trees'"
            ).fetchall()
        )
        x, y, props, geom_type = conn.execute(
            "SELECT ST_X(geom_3857), ST_Y(geom_3857), properties, GeometryType(geom) "
            "FROM trees WHERE tree_id = 1"
        ).fetchone()
    assert "gist (geom)" in indexes and "gist (geom_3857)" in indexes
    assert "(h3)" in indexes and "(planted)" in indexes
    assert "(tile_key(geom_3857)) INCLUDE (geom_3857)" in indexes
    ex, ey = pyproj.Transformer.from_crs(4326, 3857, always_xy=True).transform(lon[0], lat[0])
    assert abs(x - ex) < 0.01 and abs(y - ey) < 0.01 and geom_type == "POINT"
    assert props == {"树种": "榕树"}
    layer = load_catalog().get("trees")
    assert (layer.title, layer.time_column, layer.geometry_type, layer.tile_key) == (
        "Street trees",
        "planted",
        "Point",
        True,
    )
    assert layer.properties["height__m_"] == "number" and not layer.public
    saved = tomllib.loads((created_layers_dir() / "trees.toml").read_text())
    assert saved["layers"]["trees"]["properties"]["protected"] == "boolean"


def test_the_new_layer_is_served_with_its_time_column(url: str) -> None:
    with TestClient(create_app(url)) as client:
        with psycopg.connect(url, autocommit=True) as conn:
            token = create_key(conn, "app", "trees-reader")
        headers = {"Authorization": f"Bearer {token}"}
        everything = client.get("/collections/trees/items?limit=100", headers=headers)
        march = client.get(
            "/collections/trees/items?limit=100&datetime=2020-03-01T00:00:00Z/2020-03-05T23:59:59Z",
            headers=headers,
        )
        anonymous = client.get("/collections/trees/items")
        tile = client.get("/tiles/trees/0/0/0.mvt", headers=headers)
    served = mapbox_vector_tile.decode(tile.content)["trees"]["features"]
    with psycopg.connect(url) as conn:
        ids = {r[0] for r in conn.execute("SELECT id FROM trees").fetchall()}
    assert {f["id"] for f in served} == ids and len(ids) == N
    assert everything.status_code == 200, everything.text
    assert len(everything.json()["features"]) == N
    days = [int(f["properties"]["planted"][8:10]) for f in march.json()["features"]]
    assert sorted(days) == sorted(d for d in (1 + i % 28 for i in range(N)) if d <= 5)
    assert anonymous.status_code == 401


def test_a_multipoint_layer_is_served_as_tiles(url: str, tmp_path: Path) -> None:
    lon, lat = lonlat_points(12, seed=44)
    groups = shapely.multipoints(np.column_stack([lon, lat]), indices=np.arange(12) // 3)
    path = write_file(tmp_path / "stops.geojson", groups, {"n": np.arange(4)})
    import_file(url, path, ImportOptions(layer="stops", create=True, public=True))
    assert load_catalog().get("stops").geometry_type == "MultiPoint"
    assert not load_catalog().get("stops").tile_key
    with TestClient(create_app(url)) as client:
        tile = client.get("/tiles/stops/0/0/0.mvt")
    assert tile.status_code == 200, tile.text
    served = mapbox_vector_tile.decode(tile.content)["stops"]["features"]
    assert sorted(f["properties"]["n"] for f in served) == [0, 1, 2, 3]
    assert {f["geometry"]["type"] for f in served} == {"MultiPoint"}


@pytest.mark.subprocess
def test_a_layer_created_by_another_process_is_served_without_a_restart(
    url: str, tmp_path: Path
) -> None:
    lon, lat = lonlat_points(5, seed=43)
    path = write_file(tmp_path / "benches.geojson", shapely.points(lon, lat), {})
    with psycopg.connect(url, autocommit=True) as conn:
        headers = {"Authorization": f"Bearer {create_key(conn, 'admin', 'bench-admin')}"}
    assert "benches" not in load_catalog()
    with running_server(url, workers=2) as base:
        assert httpx.get(f"{base}/collections/benches", headers=headers).status_code == 404
        subprocess.run(
            [sys.executable, "-m", "spatial_api", "import", str(path), "-l", "benches", "--create"],
            env={**os.environ, "CITYHEX_DATABASE_URL": url},
            check=True,
            capture_output=True,
        )
        # neither worker made the layer; each one serves it now (fresh connections spread
        # the requests over both)
        answers = {
            httpx.get(f"{base}/collections/benches/items", headers=headers).status_code
            for _ in range(20)
        }
    assert answers == {200}
    assert load_catalog().get("benches").tile_key


def test_append_and_replace_into_the_new_layer(url: str, tmp_path: Path) -> None:
    lon, lat = lonlat_points(5, seed=42)
    more = {
        "tree_id": np.arange(100, 105),
        "species": np.array(["Bauhinia"] * 5, dtype=object),
        "girth": np.full(5, 1.5),
    }
    added = import_file(
        url,
        write_file(tmp_path / "more.geojson", shapely.points(lon, lat), more),
        ImportOptions(layer="trees"),
    )
    assert added.written == 5 and scalar(url, "SELECT count(*) FROM trees") == N + 5
    assert scalar(url, "SELECT properties->>'girth' FROM trees WHERE tree_id = 100") == "1.5"

    with psycopg.connect(url, autocommit=True) as listener:
        listener.execute("LISTEN cityhex_changes")
        replaced = import_file(
            url, tmp_path / "more.geojson", ImportOptions(layer="trees", mode="replace")
        )
        notice = orjson.loads(next(listener.notifies(timeout=5, stop_after=1)).payload)
    assert (replaced.deleted, replaced.written) == (N + 5, 5)
    assert scalar(url, "SELECT count(*) FROM trees") == 5
    assert notice == {"layer": "trees", "bboxes": None}
    deleted = scalar(
        url,
        "SELECT count(*) FROM feature_history WHERE layer = 'trees' AND "
        "op = 'delete' AND before->'properties' ? 'species'",
    )
    assert deleted == N + 5


def test_polygons_make_a_multipolygon_layer(url: str, tmp_path: Path) -> None:
    single = shapely.box(114.0, 22.5, 114.01, 22.51)
    multi = shapely.MultiPolygon(
        [shapely.box(114.02, 22.5, 114.03, 22.51), shapely.box(114.04, 22.5, 114.05, 22.51)]
    )
    path = write_file(
        tmp_path / "parks.fgb",
        np.array([single, multi]),
        {"name": np.array(["a", "b"], dtype=object)},
        3857,
    )
    import_file(url, path, ImportOptions(layer="parks", create=True, public=True))
    assert load_catalog().get("parks").geometry_type == "MultiPolygon"
    assert load_catalog().get("parks").public
    assert scalar(url, "SELECT sum(ST_NumGeometries(geom)) FROM parks") == 3


def test_create_refusals_leave_no_trace(url: str, tmp_path: Path) -> None:
    lon, lat = lonlat_points(3, seed=43)
    path = write_file(tmp_path / "x.gpkg", shapely.points(lon, lat), tree_fields(3))
    with pytest.raises(Conflict, match="exists already"):
        import_file(url, path, ImportOptions(layer="trees", create=True))
    with pytest.raises(Conflict, match="exists already"):
        import_file(url, path, ImportOptions(layer="assets", create=True))
    with pytest.raises(BadRequest, match="cannot name a new layer"):
        import_file(url, path, ImportOptions(layer="Bad-Name", create=True))
    with pytest.raises(BadRequest, match="holds number values"):
        import_file(url, path, ImportOptions(layer="shrubs", create=True, time_field="Height (m)"))
    with pytest.raises(BadRequest, match="--time-field"):
        ImportOptions(layer="trees", time_field="planted")
    dry = import_file(url, path, ImportOptions(layer="shrubs", create=True, dry_run=True))
    assert dry.written == 3
    assert scalar(url, "SELECT to_regclass('shrubs')") is None
    assert "shrubs" not in load_catalog()
    assert not (created_layers_dir() / "shrubs.toml").exists()
