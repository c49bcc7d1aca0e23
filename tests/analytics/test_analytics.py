"""/analytics over HTTP on a real PostGIS: aggregation, hotspots, time series, comparisons,
roles and bad input. Expected values come from the h3 package and plain Python counting."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import h3
import psycopg
import pytest
from fastapi.testclient import TestClient

from layers.catalog.registry import load_catalog
from tests.helpers import copy_incidents, direct_gi_star, make_key, two_sided

START = datetime(2025, 3, 1, tzinfo=UTC)
CODES = ["0101", "0102", "0402", "0504"]
HOT_CODE = "0601"
GRID_PARENT = h3.latlng_to_cell(22.60, 114.10, 7)


@pytest.fixture(scope="module")
def db(new_database) -> str:
    """A database of its own, so other developers' rows never change the expected counts."""
    return new_database("cityhex_analytics")


@pytest.fixture(scope="module")
def incidents(db: str) -> list[tuple[str, datetime, float, float]]:
    """3,000 incidents around 114.05, 22.54 (half in two clusters) over 60 days."""
    rng = random.Random(42)
    rows = []
    for i in range(3000):
        if i % 2:
            cx, cy = rng.choice([(114.03, 22.53), (114.08, 22.56)])
            lon, lat = rng.gauss(cx, 0.004), rng.gauss(cy, 0.004)
        else:
            lon, lat = rng.uniform(113.98, 114.12), rng.uniform(22.48, 22.60)
        ts = START + timedelta(seconds=rng.randrange(60 * 86400))
        rows.append((rng.choice(CODES), ts, lon, lat))
    copy_incidents(db, rows)
    return rows


@pytest.fixture(scope="module")
def grid(db: str) -> list[str]:
    """The unit grid: the 343 res-10 cells under one res-7 cell."""
    cells = sorted(h3.cell_to_children(GRID_PARENT, 10))
    with psycopg.connect(db, autocommit=True) as conn:
        for c in cells:
            ring = ", ".join(f"{lng} {lat}" for lat, lng in h3.cell_to_boundary(c))
            first = h3.cell_to_boundary(c)[0]
            conn.execute(
                "INSERT INTO grid_cells (h3, res, area_m2, geom) VALUES (%s, 10, %s,"
                " ST_GeomFromText(%s, 4326))",
                (
                    h3.str_to_int(c),
                    h3.cell_area(c, unit="m^2"),
                    f"POLYGON(({ring}, {first[1]} {first[0]}))",
                ),
            )
    return cells


@pytest.fixture(scope="module")
def hot_incidents(db: str, grid: list[str]) -> dict[str, int]:
    """HOT_CODE incidents in a few res-9 cells of the grid: count per res-9 cell."""
    rng = random.Random(8)
    res9 = sorted(h3.cell_to_children(GRID_PARENT, 9))
    planted = {res9[0]: 30, res9[1]: 22, res9[2]: 18, res9[20]: 3, res9[40]: 1}
    rows = []
    for cell, n in planted.items():
        lat, lon = h3.cell_to_latlng(cell)
        for _ in range(n):
            ts = START + timedelta(hours=rng.randrange(24 * 30))
            rows.append((HOT_CODE, ts, lon + rng.uniform(-1e-4, 1e-4), lat))
    copy_incidents(db, rows)
    return planted


@pytest.fixture(scope="module")
def auth(db: str):
    """``auth(role)``: an Authorization header for a new key with ``role``."""

    def make(role: str) -> dict[str, str]:
        return make_key(db, role, name=f"analytics-{role}")

    return make


def api_counts(http: TestClient, headers: dict[str, str], **params: object) -> dict[str, int]:
    resp = http.get("/analytics/h3", params={"layer": "incidents", **params}, headers=headers)
    assert resp.status_code == 200, resp.text
    return {row["cell"]: row["count"] for row in resp.json()["cells"]}


def cell_of(lon: float, lat: float, res: int) -> str:
    """The cell a row counts in: the cell that contains its point at ``res``."""
    return h3.latlng_to_cell(lat, lon, res)


def expected_counts(rows: list[tuple[str, datetime, float, float]], res: int) -> Counter:
    return Counter(cell_of(lon, lat, res) for _, _, lon, lat in rows)


@pytest.mark.parametrize("res", [5, 6, 7, 8, 9, 10, 11])
def test_counts_per_cell_match_the_h3_package(http, auth, incidents, res: int) -> None:
    got = api_counts(http, auth("app"), res=res, category=",".join(CODES))
    assert got == expected_counts(incidents, res)


def test_density_divides_by_the_true_cell_area(http, auth, incidents) -> None:
    resp = http.get(
        "/analytics/h3",
        params={"layer": "incidents", "res": 8, "metric": "density", "category": ",".join(CODES)},
        headers=auth("dispatcher"),
    )
    body = resp.json()
    assert body["total"] == len(incidents)
    for row in body["cells"]:
        area = h3.cell_area(row["cell"], unit="km^2")
        assert row["density"] == pytest.approx(row["count"] / area, rel=1e-9)


def test_period_category_and_bbox_filters(http, auth, incidents) -> None:
    lo, hi = START + timedelta(days=10), START + timedelta(days=25)
    bbox = (114.0, 22.5, 114.06, 22.55)
    chosen = [
        r
        for r in incidents
        if lo <= r[1] < hi
        and (r[0].startswith("01") or r[0] == "0402")
        and bbox[0] <= r[2] <= bbox[2]
        and bbox[1] <= r[3] <= bbox[3]
    ]
    got = api_counts(
        http,
        auth("inspector"),
        res=9,
        category="01,0402",
        bbox=",".join(map(str, bbox)),
        **{"from": lo.isoformat(), "to": hi.isoformat()},
    )
    assert got == expected_counts(chosen, 9)


def test_geojson_features_are_the_cell_polygons(http, auth, incidents) -> None:
    resp = http.get(
        "/analytics/h3",
        params={"layer": "incidents", "res": 7, "format": "geojson", "category": ",".join(CODES)},
        headers=auth("app"),
    )
    assert resp.headers["content-type"].startswith("application/geo+json")
    features = resp.json()["features"]
    assert {f["id"]: f["properties"]["count"] for f in features} == expected_counts(incidents, 7)
    for f in features:
        ring = f["geometry"]["coordinates"][0]
        expected = [v for lat, lng in h3.cell_to_boundary(f["id"]) for v in (lng, lat)]
        got = [v for point in ring[: len(expected) // 2] for v in point]
        assert got == pytest.approx(expected)


def test_timeseries_counts_per_local_day(http, auth, incidents) -> None:
    tz = ZoneInfo("Asia/Shanghai")
    lo, hi = datetime(2025, 3, 5, tzinfo=tz), datetime(2025, 3, 19, tzinfo=tz)
    resp = http.get(
        "/analytics/timeseries",
        params={
            "layer": "incidents",
            "interval": "day",
            "tz": "Asia/Shanghai",
            "category": ",".join(CODES),
            "from": lo.isoformat(),
            "to": hi.isoformat(),
        },
        headers=auth("app"),
    )
    assert resp.status_code == 200, resp.text
    buckets = resp.json()["buckets"]
    expected = Counter(r[1].astimezone(tz).date() for r in incidents if lo <= r[1] < hi)
    assert len(buckets) == 14
    for b in buckets:
        start = datetime.fromisoformat(b["start"])
        assert start.astimezone(tz).hour == 0
        assert b["count"] == expected.get(start.astimezone(tz).date(), 0)


def test_timeseries_of_one_cell_by_week(http, auth, incidents) -> None:
    cell = h3.latlng_to_cell(22.53, 114.03, 8)
    resp = http.get(
        "/analytics/timeseries",
        params={
            "layer": "incidents",
            "interval": "week",
            "cell": cell,
            "from": "2025-03-03T00:00:00Z",
            "to": "2025-04-28T00:00:00Z",
            "category": ",".join(CODES),
        },
        headers=auth("app"),
    )
    body = resp.json()
    in_cell = [r for r in incidents if cell_of(r[2], r[3], 8) == cell]
    lo = datetime(2025, 3, 3, tzinfo=UTC)
    expected = Counter(
        (r[1] - lo) // timedelta(weeks=1) for r in in_cell if lo <= r[1] < lo + timedelta(weeks=8)
    )
    assert [b["count"] for b in body["buckets"]] == [expected.get(i, 0) for i in range(8)]
    assert body["total"] > 0


def test_comparison_of_two_periods(http, auth, incidents) -> None:
    a = (START, START + timedelta(days=20))
    b = (START + timedelta(days=20), START + timedelta(days=60))
    resp = http.get(
        "/analytics/timeseries/compare",
        params={
            "layer": "incidents",
            "res": 7,
            "category": ",".join(CODES),
            "a_from": a[0].isoformat(),
            "a_to": a[1].isoformat(),
            "b_from": b[0].isoformat(),
            "b_to": b[1].isoformat(),
        },
        headers=auth("app"),
    )
    assert resp.status_code == 200, resp.text
    count_a = expected_counts([r for r in incidents if a[0] <= r[1] < a[1]], 7)
    count_b = expected_counts([r for r in incidents if b[0] <= r[1] < b[1]], 7)
    rows = {row["cell"]: row for row in resp.json()["cells"]}
    assert set(rows) == set(count_a) | set(count_b)
    for cell, row in rows.items():
        na, nb = count_a.get(cell, 0), count_b.get(cell, 0)
        assert (row["count_a"], row["count_b"], row["change"]) == (na, nb, nb - na)
        assert row["ratio"] == (pytest.approx(nb / na) if na else None)
        assert row["rate_ratio"] == (pytest.approx((nb / 40) / (na / 20)) if na else None)


def test_hotspots_are_zero_filled_over_the_grid(http, auth, hot_incidents) -> None:
    resp = http.get(
        "/analytics/hotspots",
        params={"layer": "incidents", "res": 9, "k": 1, "category": HOT_CODE},
        headers=auth("dispatcher"),
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    study = sorted(h3.cell_to_children(GRID_PARENT, 9))
    assert body["study_area"] == "grid" and body["n_cells"] == len(study) == 49
    values = [float(hot_incidents.get(c, 0)) for c in study]
    expected = dict(zip(study, direct_gi_star(study, values, 1), strict=True))
    for row in body["cells"]:
        assert row["count"] == hot_incidents.get(row["cell"], 0)
        assert row["z"] == pytest.approx(expected[row["cell"]], rel=1e-9, abs=1e-12)
        assert row["p"] == pytest.approx(two_sided(expected[row["cell"]]), rel=1e-9, abs=1e-15)
    hottest = max(body["cells"], key=lambda r: r["z"])
    assert hottest["hotspot"].startswith("hot") and hottest["gi_bin"] > 0


def test_refresh_stores_the_hotspot_layer(http, auth, db, hot_incidents) -> None:
    params = {"layer": "incidents", "res": 9, "k": 1, "category": HOT_CODE}
    assert http.post("/analytics/hotspots/refresh", params=params).status_code == 401
    denied = http.post("/analytics/hotspots/refresh", params=params, headers=auth("inspector"))
    assert denied.status_code == 403
    resp = http.post("/analytics/hotspots/refresh", params=params, headers=auth("dispatcher"))
    assert resp.status_code == 200, resp.text
    listed = http.get(
        "/analytics/hotspots", params={**params, "significant_only": True}, headers=auth("app")
    ).json()["cells"]
    assert resp.json()["stored"] == len(listed) > 0
    with psycopg.connect(db) as conn:
        stored = conn.execute(
            "SELECT cell, gi_bin, z, ST_Y(ST_Centroid(geom)), ST_X(ST_Centroid(geom)),"
            " ST_SRID(geom_3857) FROM hotspot_cells WHERE layer = 'incidents'"
        ).fetchall()
    assert {r[0]: r[1] for r in stored} == {c["cell"]: c["gi_bin"] for c in listed}
    for cell, _, _, lat, lon, srid in stored:
        assert h3.latlng_to_cell(lat, lon, 9) == cell and srid == 3857
    layer = load_catalog().get("hotspots")
    assert layer.table == "hotspot_cells" and layer.geometry_3857_column == "geom_3857"


def test_incidents_need_a_key_but_public_layers_do_not(http, auth, incidents) -> None:
    params = {"layer": "incidents", "res": 8}
    resp = http.get("/analytics/h3", params=params)
    assert resp.status_code == 401 and resp.json()["code"] == "unauthorized"
    for role in ("app", "inspector", "editor", "dispatcher", "admin"):
        assert http.get("/analytics/h3", params=params, headers=auth(role)).status_code == 200
    assert http.get("/analytics/h3", params={"layer": "sensors", "res": 8}).status_code == 200


BAD_REQUESTS = [
    ("/analytics/h3", {"layer": "incidents", "res": 4}, 400),
    ("/analytics/h3", {"layer": "incidents", "res": 12}, 400),
    ("/analytics/h3", {"layer": "incidents", "res": "x"}, 400),
    ("/analytics/h3", {"layer": "nowhere"}, 404),
    ("/analytics/h3", {"layer": "grid"}, 400),
    ("/analytics/h3", {"layer": "incidents", "category": "9999"}, 404),
    ("/analytics/h3", {"layer": "incidents", "category": "1;drop"}, 400),
    ("/analytics/h3", {"layer": "assets", "category": "0101"}, 400),
    ("/analytics/h3", {"layer": "incidents", "from": "2025-02-01", "to": "2025-01-01"}, 400),
    ("/analytics/h3", {"layer": "incidents", "from": "yesterday"}, 400),
    ("/analytics/h3", {"layer": "incidents", "metric": "mean"}, 400),
    ("/analytics/h3", {"layer": "incidents", "bbox": "1,2,3"}, 400),
    ("/analytics/h3", {"layer": "incidents", "bbox": "10,20,5,30"}, 400),
    ("/analytics/hotspots", {"layer": "incidents", "k": 0}, 400),
    ("/analytics/hotspots", {"layer": "incidents", "k": 6}, 400),
    ("/analytics/hotspots", {"layer": "incidents", "res": 11, "bbox": "100,40,120,60"}, 400),
    ("/analytics/kde", {"layer": "incidents"}, 400),
    ("/analytics/kde", {"layer": "incidents", "bbox": "113,22,115,23", "cell_m": 5}, 400),
    ("/analytics/kde", {"layer": "incidents", "bbox": "114,22.5,114.1,22.6", "cell_m": 0}, 400),
    (
        "/analytics/kde",
        {"layer": "incidents", "bbox": "114,22.5,114.1,22.6", "bandwidth_m": 1},
        400,
    ),
    (
        "/analytics/kde",
        {"layer": "incidents", "bbox": "114,22.5,114.1,22.6", "format": "jpg"},
        400,
    ),
    ("/analytics/idw", {"property": "pm25", "bbox": "114,22.5,114.1,22.6"}, 404),
    ("/analytics/idw", {"property": "pm 25!", "bbox": "114,22.5,114.1,22.6"}, 400),
    ("/analytics/idw", {"property": "pm25", "bbox": "114,22.5,114.1,22.6", "power": 9}, 400),
    ("/analytics/timeseries", {"layer": "incidents", "interval": "minute"}, 400),
    ("/analytics/timeseries", {"layer": "incidents", "interval": "day", "cell": "zz"}, 400),
    ("/analytics/timeseries", {"layer": "incidents", "interval": "day", "tz": "Mars/Base"}, 400),
    (
        "/analytics/timeseries",
        {"layer": "incidents", "interval": "hour", "from": "2000-01-01", "to": "2025-01-01"},
        400,
    ),
    (
        "/analytics/timeseries",
        {"layer": "incidents", "interval": "day", "cell": h3.latlng_to_cell(22.5, 114, 4)},
        400,
    ),
    (
        "/analytics/timeseries",
        {"layer": "incidents", "interval": "day", "cell": "8a411c000007fff", "bbox": "1,2,3,4"},
        400,
    ),
    ("/analytics/timeseries/compare", {"layer": "incidents", "a_from": "2025-01-01"}, 400),
]


@pytest.mark.parametrize(("path", "params", "status"), BAD_REQUESTS)
def test_bad_input_is_a_clear_4xx(http, auth, path: str, params: dict, status: int) -> None:
    resp = http.get(path, params=params, headers=auth("admin"))
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["status"] == status and body["code"] and body["message"]


def test_cli_refresh_stores_the_same_cells(db, hot_incidents, monkeypatch) -> None:
    import typer
    from typer.testing import CliRunner

    from layers.db.settings import storage_settings
    from spatial_api.cli import analytics

    cli = typer.Typer()
    cli.add_typer(analytics.app, name="analytics")
    monkeypatch.setenv("CITYHEX_DATABASE_URL", db)
    storage_settings.cache_clear()
    try:
        args = ["analytics", "hotspots", "--layer", "incidents", "--category", HOT_CODE]
        result = CliRunner().invoke(cli, args)
        bad = CliRunner().invoke(cli, ["analytics", "hotspots", "--category", "9999"])
    finally:
        monkeypatch.undo()
        storage_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert bad.exit_code == 1 and "9999" in bad.output
    study = sorted(h3.cell_to_children(GRID_PARENT, 9))
    z = direct_gi_star(study, [float(hot_incidents.get(c, 0)) for c in study], 1)
    significant = {c for c, zi in zip(study, z, strict=True) if two_sided(zi) <= 0.10}
    with psycopg.connect(db) as conn:
        stored = {r[0] for r in conn.execute("SELECT cell FROM hotspot_cells")}
    assert stored == significant
