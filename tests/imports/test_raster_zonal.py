"""Raster zonal statistics on grid cells: the sum over the cells is the raster's own total,
a hot pixel lands in the cell pyproj and h3 put it in, means of a flat raster are flat."""

from __future__ import annotations

from pathlib import Path

import h3
import numpy as np
import psycopg
import pyproj
import pytest
import rasterio
import shapely
from rasterio.transform import Affine
from typer.testing import CliRunner

from etl.imports.raster_zonal import zonal_stats
from gis.errors import BadRequest, Unprocessable
from gis.hexgrid import cell_area_m2, cell_polygon, cover_cells
from layers.db.settings import storage_settings
from spatial_api.cli import app

UTM = 32650
ORIGIN = (196_000.0, 2_498_000.0)  # UTM 50N easting/northing near Futian, Shenzhen
PIXEL = 25.0


@pytest.fixture(scope="module")
def url(new_database) -> str:
    """A database with a res-10 grid over a box that holds every test raster."""
    url = new_database("cityhex_etl_raster")
    to_lonlat = pyproj.Transformer.from_crs(UTM, 4326, always_xy=True)
    west, north = to_lonlat.transform(ORIGIN[0] - 3000, ORIGIN[1] + 3000)
    east, south = to_lonlat.transform(ORIGIN[0] + 5000, ORIGIN[1] - 5000)
    cells = sorted(cover_cells(shapely.box(west, south, east, north), 10))
    with psycopg.connect(url) as conn:
        conn.cursor().executemany(
            "INSERT INTO grid_cells (h3, res, area_m2, geom) VALUES (%s, 10, %s, "
            "ST_GeomFromText(%s, 4326))",
            [(c, cell_area_m2(c), cell_polygon(c).wkt) for c in cells],
        )
    return url


def write_raster(
    path: Path,
    data: np.ndarray,
    crs: int | None,
    origin: tuple[float, float],
    pixel: float,
    nodata: float | None = None,
) -> Path:
    """A one-band GeoTIFF of ``data`` with its top-left corner at ``origin``."""
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=data.shape[0],
        width=data.shape[1],
        count=1,
        dtype=data.dtype,
        crs=f"EPSG:{crs}" if crs else None,
        transform=Affine(pixel, 0, origin[0], 0, -pixel, origin[1]),
        nodata=nodata,
    ) as out:
        out.write(data, 1)
    return path


def cell_values(url: str, prop: str) -> dict[int, float]:
    """The property of every grid cell that has it."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT h3, (properties->>%s)::float8 FROM grid_cells WHERE properties ? %s",
            (prop, prop),
        ).fetchall()
    return dict(rows)


def test_sum_over_the_cells_is_the_rasters_total(url: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    data = rng.integers(0, 100, size=(90, 120)).astype(np.float32)
    data[10:20, 30:50] = -1  # nodata
    path = write_raster(tmp_path / "pop.tif", data, UTM, ORIGIN, PIXEL, nodata=-1)
    total = float(data[data >= 0].sum())

    result = zonal_stats(url, path, "sum", "population")

    values = cell_values(url, "population")
    assert sum(values.values()) == pytest.approx(total, rel=1e-9)
    assert result.pixels == int((data >= 0).sum()) and result.cells_with_data == len(values)
    assert len(values) > 100


def test_hot_pixel_lands_in_its_cell_and_max_finds_it(url: str, tmp_path: Path) -> None:
    data = np.ones((60, 60), dtype=np.float32)
    row, col = 17, 42
    data[row, col] = 1000.0
    path = write_raster(tmp_path / "hot.tif", data, UTM, ORIGIN, PIXEL)
    x, y = ORIGIN[0] + (col + 0.5) * PIXEL, ORIGIN[1] - (row + 0.5) * PIXEL
    lon, lat = pyproj.Transformer.from_crs(UTM, 4326, always_xy=True).transform(x, y)
    expected = h3.str_to_int(h3.latlng_to_cell(lat, lon, 10))

    zonal_stats(url, path, "max", "peak")

    values = cell_values(url, "peak")
    assert values[expected] == 1000.0
    assert [c for c, v in values.items() if v == 1000.0] == [expected]


def test_mean_of_a_flat_raster_is_flat_and_coarse_pixels_are_shared(
    url: str, tmp_path: Path
) -> None:
    coarse = 0.004  # degrees: pixels far larger than a res-10 cell
    lon0, lat0 = pyproj.Transformer.from_crs(UTM, 4326, always_xy=True).transform(*ORIGIN)
    data = np.full((3, 4), 7.5, dtype=np.float64)
    path = write_raster(tmp_path / "flat.tif", data, 4326, (lon0, lat0), coarse)

    zonal_stats(url, path, "mean", "flat")
    means = cell_values(url, "flat")
    assert len(means) > data.size and set(means.values()) == {7.5}

    zonal_stats(url, path, "sum", "flat_sum")
    assert sum(cell_values(url, "flat_sum").values()) == pytest.approx(7.5 * data.size)


def test_rerun_replaces_values_and_cells_without_data_lose_them(url: str, tmp_path: Path) -> None:
    data = np.ones((40, 40), dtype=np.float32)
    zonal_stats(url, write_raster(tmp_path / "a.tif", data, UTM, ORIGIN, PIXEL), "sum", "rerun")
    first = cell_values(url, "rerun")
    moved = (ORIGIN[0] + 2000, ORIGIN[1] - 2000)
    zonal_stats(url, write_raster(tmp_path / "b.tif", data, UTM, moved, PIXEL), "sum", "rerun")
    second = cell_values(url, "rerun")
    assert sum(second.values()) == pytest.approx(data.size)
    assert not set(first) & set(second)


def test_bad_rasters_and_options_are_refused(url: str, tmp_path: Path) -> None:
    data = np.ones((5, 5), dtype=np.float32)
    no_crs = write_raster(tmp_path / "nocrs.tif", data, None, ORIGIN, PIXEL)
    with pytest.raises(Unprocessable, match="no CRS"):
        zonal_stats(url, no_crs, "sum", "x")
    good = write_raster(tmp_path / "ok.tif", data, UTM, ORIGIN, PIXEL)
    with pytest.raises(BadRequest, match="--stat"):
        zonal_stats(url, good, "median", "x")
    big = write_raster(tmp_path / "big.tif", np.ones((200, 200), np.float32), UTM, ORIGIN, 5)
    broken = tmp_path / "broken.tif"
    broken.write_bytes(big.read_bytes()[: big.stat().st_size // 2])  # pixels cut off
    with pytest.raises(Unprocessable, match="cannot read"):
        zonal_stats(url, broken, "sum", "x")
    assert cell_values(url, "x") == {}


def test_cli_zonal(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = np.full((8, 8), 2.0, dtype=np.float32)
    path = write_raster(tmp_path / "cli.tif", data, UTM, ORIGIN, PIXEL)
    monkeypatch.setenv("CITYHEX_DATABASE_URL", url)
    storage_settings.cache_clear()
    try:
        result = CliRunner().invoke(
            app, ["raster", "zonal", str(path), "--stat", "sum", "--as", "cli_sum"]
        )
    finally:
        monkeypatch.undo()
        storage_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert sum(cell_values(url, "cli_sum").values()) == pytest.approx(128.0)
