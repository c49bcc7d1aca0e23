"""Kernel density rasters: the GeoTIFF's CRS, bounds and hottest pixel on a planted pattern,
the kernel's mass and peak, and the PNG overlay."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import h3
import numpy as np
import psycopg
import pytest
import rasterio
from pyproj import Transformer

from tests.helpers import copy_incidents, make_key

BBOX = (114.00, 22.50, 114.10, 22.60)
DENSE = (114.07, 22.57)
SPARSE = (114.02, 22.53)
DECOY = (114.04, 22.58)
LOADED = datetime(2025, 5, 1, tzinfo=UTC)
UTM_50N = 32650  # 114.05° E lies in UTM zone floor((114.05 + 180) / 6) + 1 = 50, north


@pytest.fixture(scope="module")
def db(new_database) -> str:
    """A database of its own with the planted pattern."""
    url = new_database("cityhex_analytics_kde")
    rng = random.Random(4)
    rows = [("0101", rng.gauss(DENSE[0], 0.001), rng.gauss(DENSE[1], 0.001)) for _ in range(400)]
    rows += [("0101", rng.gauss(SPARSE[0], 0.003), rng.gauss(SPARSE[1], 0.003)) for _ in range(150)]
    rows += [
        ("0101", rng.uniform(BBOX[0], BBOX[2]), rng.uniform(BBOX[1], BBOX[3])) for _ in range(300)
    ]
    rows += [
        ("0102", rng.gauss(DECOY[0], 0.0005), rng.gauss(DECOY[1], 0.0005)) for _ in range(2000)
    ]
    copy_incidents(url, [(code, LOADED, lon, lat) for code, lon, lat in rows])
    return url


@pytest.fixture(scope="module")
def headers(db: str) -> dict[str, str]:
    """An app key's Authorization header."""
    return make_key(db, "app", name="kde")


def kde_params(**extra: object) -> dict[str, object]:
    bbox = ",".join(map(str, BBOX))
    return {"layer": "incidents", "bbox": bbox, "cell_m": 50, "bandwidth_m": 150, **extra}


def test_geotiff_has_crs_bounds_and_hottest_pixel_at_the_dense_cluster(http, headers) -> None:
    resp = http.get("/analytics/kde", params=kde_params(category="0101"), headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "image/tiff"
    to_utm = Transformer.from_crs(4326, UTM_50N, always_xy=True)
    minx, miny, maxx, maxy = to_utm.transform_bounds(*BBOX, densify_pts=50)
    with rasterio.MemoryFile(resp.content) as mem, mem.open() as ds:
        assert ds.crs.to_epsg() == UTM_50N
        assert ds.dtypes == ("float32",) and ds.count == 1
        assert ds.compression.name.lower() == "deflate"
        assert (ds.transform.a, ds.transform.e) == (50.0, -50.0)
        left, bottom, right, top = ds.bounds
        assert left == pytest.approx(minx, abs=0.5) and top == pytest.approx(maxy, abs=0.5)
        assert maxx - 0.5 <= right < maxx + 50 and miny - 50 < bottom <= miny + 0.5
        data = ds.read(1)
        row, col = np.unravel_index(np.argmax(data), data.shape)
        x, y = ds.xy(row, col)
    lon, lat = Transformer.from_crs(UTM_50N, 4326, always_xy=True).transform(x, y)
    assert h3.great_circle_distance((lat, lon), (DENSE[1], DENSE[0]), unit="m") < 100
    decoy_x, decoy_y = to_utm.transform(*DECOY)
    decoy_value = data[int((top - decoy_y) // 50), int((decoy_x - left) // 50)]
    assert decoy_value < data.max() / 20, "the category filter must leave the decoy out"


def test_without_the_filter_the_decoy_is_the_hottest(http, headers) -> None:
    resp = http.get("/analytics/kde", params=kde_params(), headers=headers)
    with rasterio.MemoryFile(resp.content) as mem, mem.open() as ds:
        data = ds.read(1)
        row, col = np.unravel_index(np.argmax(data), data.shape)
        lon, lat = Transformer.from_crs(UTM_50N, 4326, always_xy=True).transform(*ds.xy(row, col))
    assert h3.great_circle_distance((lat, lon), (DECOY[1], DECOY[0]), unit="m") < 100
    assert int(resp.headers["x-input-count"]) == 2850


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_png_overlay_is_transparent_where_empty_and_placed_by_its_bounds(http, headers) -> None:
    resp = http.get("/analytics/kde", params=kde_params(format="png"), headers=headers)
    assert resp.status_code == 200 and resp.headers["content-type"] == "image/png"
    bounds = [float(v) for v in resp.headers["x-image-bounds"].split(",")]
    assert bounds == pytest.approx(list(BBOX), abs=1e-6)
    with rasterio.MemoryFile(resp.content) as mem, mem.open() as ds:
        assert ds.count == 4
        alpha = ds.read(4)
    assert alpha.min() == 0 and alpha.max() > 200


def test_kde_needs_a_key_for_incidents(http) -> None:
    assert http.get("/analytics/kde", params=kde_params()).status_code == 401


def test_binned_kde_equals_the_point_formula_within_the_binning_bound(db, http, headers) -> None:
    """The raster against the Gaussian summed over the points themselves at every pixel
    centre. The binned KDE moves each point to its res-11 cell's centre, then to its pixel's
    centre: at most delta = (farthest point from its res-11 centre) + cell_m / sqrt(2). So
    at a pixel |binned - exact| <= sum_i delta * max |K'(r)| over r in [d_i - delta, d_i +
    delta] (K'(r) = -r / h^2 K(r), largest at r = h), plus 0.1 % for float32."""
    h, cell = 150.0, 50.0
    resp = http.get("/analytics/kde", params=kde_params(category="0101"), headers=headers)
    assert resp.status_code == 200, resp.text
    with psycopg.connect(db) as conn:
        lon, lat = np.array(
            conn.execute(
                "SELECT ST_X(geom), ST_Y(geom) FROM incidents WHERE category_code = '0101'"
            ).fetchall()
        ).T
    centres = [
        h3.cell_to_latlng(h3.latlng_to_cell(a, o, 11)) for o, a in zip(lon, lat, strict=True)
    ]
    moved = max(
        h3.great_circle_distance((a, o), c, unit="m")
        for o, a, c in zip(lon, lat, centres, strict=True)
    )
    delta = moved + cell / np.sqrt(2)
    px, py = Transformer.from_crs(4326, UTM_50N, always_xy=True).transform(lon, lat)
    with rasterio.MemoryFile(resp.content) as mem, mem.open() as ds:
        data = ds.read(1).astype(np.float64)
        cols, rows = np.meshgrid(np.arange(ds.width), np.arange(ds.height))
        xs, ys = ds.xy(rows.ravel(), cols.ravel())
    xs, ys = np.asarray(xs), np.asarray(ys)

    def kernel(r: np.ndarray) -> np.ndarray:
        return np.exp(-0.5 * (r / h) ** 2) / (2 * np.pi * h * h) * 1e6

    exact, bound = np.zeros(len(xs)), np.zeros(len(xs))
    for start in range(0, len(xs), 2000):
        d = np.hypot(xs[start : start + 2000, None] - px, ys[start : start + 2000, None] - py)
        exact[start : start + 2000] = kernel(d).sum(axis=1)
        steepest = np.clip(h, np.maximum(d - delta, 0), d + delta)
        bound[start : start + 2000] = (delta * steepest / h**2 * kernel(steepest)).sum(axis=1)
    error = np.abs(data.ravel() - exact)
    assert (error <= bound + 1e-3 * exact.max()).all()
    assert exact.max() == pytest.approx(data.max(), rel=0.2)  # the bound leaves it close
