"""A real client: GDAL's OGC API Features driver lists the collections of a running server
and reads every feature of a layer, as many as the table holds."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from layers.catalog.registry import load_catalog
from tests.helpers import running_server

pytestmark = [
    pytest.mark.ogrinfo,
    pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="needs GDAL (gdal-bin)"),
]
N_ASSETS = 1_234


@pytest.fixture(scope="module")
def server(new_database) -> Iterator[tuple[str, str]]:
    url = new_database("cityhex_ogr")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO assets (code, class_code, kind, properties, geom) "
            "SELECT '44030401' || lpad(mod(i, 3)::text, 2, '0') || lpad(i::text, 6, '0'), "
            "'01' || lpad(mod(i, 3)::text, 2, '0'), 'lamp', jsonb_build_object('height', i), "
            "ST_SetSRID(ST_MakePoint(114 + mod(i, 97) * 0.001, 22.5 + (i / 97) * 0.001), 4326) "
            "FROM generate_series(1, %s) i",
            (N_ASSETS,),
        )
        conn.execute(
            "INSERT INTO districts (code, name, geom) VALUES ('440304', '福田区', "
            "ST_Multi(ST_MakeEnvelope(114.0, 22.5, 114.1, 22.6, 4326)))"
        )
    with running_server(url) as base:
        yield url, base


def test_ogrinfo_lists_the_public_collections(server: tuple[str, str]) -> None:
    _, base = server
    out = subprocess.run(
        ["ogrinfo", "-ro", "-so", f"OAPIF:{base}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    listed = {
        line.split(":")[1].split("(")[0].strip()
        for line in out.splitlines()
        if line[:1].isdigit() and ":" in line
    }
    assert listed == {layer.id for layer in load_catalog() if layer.public}


def test_ogrinfo_counts_the_table(server: tuple[str, str]) -> None:
    url, base = server
    out = subprocess.run(
        ["ogrinfo", "-ro", "-so", f"OAPIF:{base}", "assets"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    with psycopg.connect(url) as conn:
        count = conn.execute("SELECT count(*) FROM assets").fetchone()[0]
    assert f"Feature Count: {count}" in out
    assert "Geometry: Geometry Collection" in out  # assets may hold any geometry


def test_ogr2ogr_reads_every_feature(server: tuple[str, str], tmp_path: Path) -> None:
    url, base = server
    target = tmp_path / "assets.geojson"
    subprocess.run(
        ["ogr2ogr", "-f", "GeoJSON", str(target), f"OAPIF:{base}", "assets"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    features = json.loads(target.read_text())["features"]
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT code, ST_X(geom), ST_Y(geom) FROM assets").fetchall()
    assert len(features) == len(rows) == N_ASSETS
    stored = {code: (x, y) for code, x, y in rows}
    for feature in features:
        x, y = feature["geometry"]["coordinates"]
        assert (x, y) == pytest.approx(stored[feature["properties"]["code"]], abs=1e-8)
