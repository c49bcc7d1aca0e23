"""`cityhex export mbtiles|pmtiles`: an inspector's patrol area offline. GDAL opens the
MBTiles file, and every tile in either file is byte for byte the tile the server sends."""

from __future__ import annotations

import gzip
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import h3
import pytest
import shapely
from fastapi.testclient import TestClient
from pmtiles.reader import MmapSource, Reader, all_tiles
from pyproj import Transformer

from tests.helpers import CENTER, make_key, tile_box, tile_of

LAYERS = "grid,assets,incidents"
MINZOOM, MAXZOOM = 13, 16
TO_3857 = Transformer.from_crs(4326, 3857, always_xy=True)


pytestmark = pytest.mark.subprocess


@pytest.fixture(scope="module")
def patrol() -> list[str]:
    """An inspector's patrol area: a cell and its ring of neighbours at resolution 9."""
    centre = h3.latlng_to_cell(CENTER[1], CENTER[0], 9)
    return sorted(h3.grid_disk(centre, 1))


def cityhex(city: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CITYHEX_DATABASE_URL": city}
    return subprocess.run(
        [sys.executable, "-m", "spatial_api", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def patrol_tiles(cells: list[str]) -> set[tuple[int, int, int]]:
    """Every tile of the zoom range meeting the cells, by plain geometry."""
    area = shapely.union_all(
        [
            shapely.Polygon([TO_3857.transform(lng, lat) for lat, lng in h3.cell_to_boundary(c)])
            for c in cells
        ]
    )
    lon, lat = CENTER
    found = set()
    for z in range(MINZOOM, MAXZOOM + 1):
        _, cx, cy = tile_of(lon, lat, z)
        for x in range(cx - 3, cx + 4):
            for y in range(cy - 3, cy + 4):
                if area.intersects(shapely.box(*tile_box(z, x, y))):
                    found.add((z, x, y))
    return found


def mbtiles_tiles(path: Path) -> dict[tuple[int, int, int], bytes]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT zoom_level, tile_column, tile_row, tile_data FROM tiles")
        return {(z, x, (1 << z) - 1 - r): gzip.decompress(d) for z, x, r, d in rows}


def pmtiles_tiles(path: Path) -> dict[tuple[int, int, int], bytes]:
    with open(path, "rb") as f:
        return {zxy: gzip.decompress(d) for zxy, d in all_tiles(Reader(MmapSource(f)).get_bytes)}


@pytest.mark.parametrize("fmt,read", [("mbtiles", mbtiles_tiles), ("pmtiles", pmtiles_tiles)])
def test_export_holds_the_served_tiles_of_the_patrol_area(
    city: str, web: TestClient, patrol: list[str], tmp_path: Path, fmt: str, read
) -> None:
    out = tmp_path / f"patrol.{fmt}"
    done = cityhex(
        city,
        "export",
        fmt,
        "--layers",
        LAYERS,
        "--cells",
        ",".join(patrol),
        "--minzoom",
        str(MINZOOM),
        "--maxzoom",
        str(MAXZOOM),
        "--role",
        "app",
        "-o",
        str(out),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    tiles = read(out)
    key = make_key(city, "app")
    served = {}
    for z, x, y in patrol_tiles(patrol):
        r = web.get(f"/tiles/{LAYERS}/{z}/{x}/{y}.mvt", headers=key)
        assert r.status_code in (200, 204)
        if r.status_code == 200:
            served[(z, x, y)] = r.content
    assert set(tiles) == set(served) and len(served) > 10
    assert all(tiles[t] == served[t] for t in served)


@pytest.mark.ogrinfo
def test_gdal_opens_the_mbtiles_file(city: str, patrol: list[str], tmp_path: Path) -> None:
    out = tmp_path / "patrol.mbtiles"
    done = cityhex(
        city,
        "export",
        "mbtiles",
        "--layers",
        LAYERS,
        "--cells",
        ",".join(patrol),
        "--minzoom",
        str(MINZOOM),
        "--maxzoom",
        str(MAXZOOM),
        "-o",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    info = subprocess.run(
        ["ogrinfo", "-ro", "-so", "-al", str(out)], capture_output=True, text=True, timeout=120
    )
    assert info.returncode == 0, info.stderr
    for layer in LAYERS.split(","):
        assert f"Layer name: {layer}" in info.stdout
    counts = [
        int(line.split(":")[1])
        for line in info.stdout.splitlines()
        if line.startswith("Feature Count:")
    ]
    assert len(counts) == 3 and all(n > 0 for n in counts)
    assert "Extent:" in info.stdout and "Mercator" in info.stdout


@pytest.mark.parametrize(
    "args,word",
    [
        (["--bbox", "114,22.5,114.1,22.6", "--cells", "8a411caa3117fff"], "exactly one"),
        ([], "exactly one"),
        (["--cells", "notacell"], "H3 cell"),
        (["--bbox", "114.1,22.5,114,22.6"], "bbox"),
        (["--bbox", "114,22.5,114.1,22.6", "--minzoom", "17", "--maxzoom", "12"], "zooms"),
        (["--bbox", "-170,-80,170,80", "--minzoom", "0", "--maxzoom", "14"], "tiles"),
        (["--bbox", "10,10,10.01,10.01"], "nothing written"),
    ],
)
def test_bad_exports_say_why_and_write_nothing(
    city: str, tmp_path: Path, args: list[str], word: str
) -> None:
    out = tmp_path / "bad.mbtiles"
    done = cityhex(city, "export", "mbtiles", "--layers", LAYERS, *args, "-o", str(out))
    assert done.returncode == 1
    assert word.lower() in " ".join((done.stdout + done.stderr).split()).lower()
    assert not out.exists()
