"""IDW: exact at a sensor, the weighted mean by the formula between sensors, and the raster
of each sensor's reading nearest to ``at`` within the window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
import pytest
import rasterio
from pyproj import Transformer

from tests.helpers import formula

AT = datetime(2025, 6, 10, 12, 0, tzinfo=UTC)
BBOX = (114.00, 22.50, 114.04, 22.54)
# code, lon, lat, readings of pm25 as (minutes from AT, value)
SENSORS = [
    ("s1", 114.005, 22.505, [(-50, 10.0), (5, 12.0), (90, 99.0)]),
    ("s2", 114.035, 22.505, [(-20, 40.0)]),
    ("s3", 114.020, 22.535, [(30, 25.0), (-31, 77.0)]),
    ("s4", 114.030, 22.525, [(0, 5.0)]),
    ("s5", 114.010, 22.530, [(-180, 500.0)]),  # outside the 60-minute window: left out
]
USED = {"s1": 12.0, "s2": 40.0, "s3": 25.0, "s4": 5.0}


@pytest.fixture(scope="module")
def db(new_database) -> str:
    """A database of its own with five sensors and their pm25 readings."""
    url = new_database("cityhex_analytics_idw")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT readings_ensure_partition(%s)", (AT.date(),))
        for i, (code, lon, lat, readings) in enumerate(SENSORS, start=1):
            conn.execute(
                "INSERT INTO sensors (id, code, kind, geom) VALUES"
                " (%s, %s, 'air', ST_SetSRID(ST_MakePoint(%s, %s), 4326))",
                (i, code, lon, lat),
            )
            for minutes, value in readings:
                conn.execute(
                    "INSERT INTO readings VALUES (%s, 'pm25', %s, %s)",
                    (i, AT + timedelta(minutes=minutes), value),
                )
    return url


def idw_params(**extra: object) -> dict[str, object]:
    return {
        "property": "pm25",
        "at": AT.isoformat(),
        "bbox": ",".join(map(str, BBOX)),
        "cell_m": 100,
        **extra,
    }


def test_raster_follows_the_formula_from_the_nearest_readings(http) -> None:
    resp = http.get("/analytics/idw", params=idw_params(power=2))
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-input-count"] == "4"
    to_utm = Transformer.from_crs(4326, 32650, always_xy=True)
    sites = [(*to_utm.transform(lon, lat), USED[code]) for code, lon, lat, _ in SENSORS[:4]]
    with rasterio.MemoryFile(resp.content) as mem, mem.open() as ds:
        assert ds.crs.to_epsg() == 32650 and ds.dtypes == ("float32",)
        data = ds.read(1)
        rng = np.random.default_rng(0)
        for row, col in zip(
            rng.integers(0, ds.height, 200), rng.integers(0, ds.width, 200), strict=True
        ):
            x, y = ds.xy(int(row), int(col))
            assert data[row, col] == pytest.approx(formula(x, y, sites, 2.0), rel=1e-5)
        for x, y, value in sites:
            row, col = ds.index(x, y)
            spread = max(USED.values()) - min(USED.values())
            assert data[row, col] == pytest.approx(value, abs=0.05 * spread)
    assert data.min() >= min(USED.values()) and data.max() <= max(USED.values())


def test_a_wider_window_takes_in_the_older_sensor(http) -> None:
    narrow = http.get("/analytics/idw", params=idw_params())
    wide = http.get("/analytics/idw", params=idw_params(window_minutes=240))
    assert wide.headers["x-input-count"] == "5" and narrow.headers["x-input-count"] == "4"


def test_png_and_errors(http) -> None:
    png = http.get("/analytics/idw", params=idw_params(format="png"))
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    later = http.get("/analytics/idw", params=idw_params(at="2025-06-20T00:00:00Z"))
    assert later.status_code == 422 and later.json()["code"] == "no_readings"
    latest = AT + timedelta(minutes=90)  # s1's last reading, the nearest to the later moment
    assert later.json()["details"] == {"nearest": latest.isoformat()}
    assert f"at={latest.isoformat()}" in later.json()["message"]
    retried = http.get("/analytics/idw", params=idw_params(at=latest.isoformat()))
    assert retried.status_code == 200
    earlier = http.get("/analytics/idw", params=idw_params(at="2025-01-01T00:00:00Z"))
    first = AT + timedelta(minutes=-180)  # s5's reading, the earliest of all
    assert earlier.json()["details"] == {"nearest": first.isoformat()}
    unknown = http.get("/analytics/idw", params=idw_params(property="no2"))
    assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_property"
