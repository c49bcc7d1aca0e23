"""The foundation: schema, h3_parent, keys and roles, errors, health."""

from __future__ import annotations

import random
import re

import h3
import psycopg
from fastapi import Depends
from fastapi.testclient import TestClient

from spatial_api.auth import Principal, require_role


def test_schema_has_every_table(conn: psycopg.Connection) -> None:
    rows = conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
    ).fetchall()
    names = {r[0] for r in rows}
    for table in (
        "assets",
        "incidents",
        "incident_transitions",
        "grid_cells",
        "grid_assignments",
        "departments",
        "users",
        "sensors",
        "readings",
        "feature_history",
        "api_keys",
        "incident_categories",
        "districts",
    ):
        assert table in names


def test_readings_partitioned_and_unique(conn: psycopg.Connection) -> None:
    conn.execute("SELECT readings_ensure_partition('2025-03-10')")
    conn.execute("INSERT INTO readings VALUES (1, 'pm25', '2025-03-10T00:00Z', 3.0)")
    try:
        conn.execute("INSERT INTO readings VALUES (1, 'pm25', '2025-03-10T00:00Z', 4.0)")
        raise AssertionError("duplicate reading was stored")
    except psycopg.errors.UniqueViolation:
        pass
    part = conn.execute(
        "SELECT tableoid::regclass::text FROM readings WHERE sensor_id = 1"
    ).fetchone()[0]
    assert part == "readings_2025_03"
    conn.execute("DELETE FROM readings")


def test_tile_hot_tables_have_indexed_3857_copy(conn: psycopg.Connection) -> None:
    conn.execute(
        "INSERT INTO incident_categories SELECT '9999', '99', '99', 't', 't', 't', 1, id "
        "FROM departments LIMIT 1"
    )
    conn.execute(
        "INSERT INTO incidents (category_code, status, reported_at, geom) VALUES "
        "('9999', 'reported', now(), ST_SetSRID(ST_MakePoint(114.05, 22.54), 4326))"
    )
    x, y = conn.execute(
        "SELECT ST_X(geom_3857), ST_Y(geom_3857) FROM incidents WHERE category_code = '9999'"
    ).fetchone()
    from pyproj import Transformer

    ex, ey = Transformer.from_crs(4326, 3857, always_xy=True).transform(114.05, 22.54)
    assert abs(x - ex) < 0.01 and abs(y - ey) < 0.01
    idx = conn.execute(
        "SELECT indexdef FROM pg_indexes WHERE tablename = 'incidents' AND indexdef LIKE "
        "'%gist (geom_3857)%'"
    ).fetchall()
    assert idx
    conn.execute("DELETE FROM incidents WHERE category_code = '9999'")
    conn.execute("DELETE FROM incident_categories WHERE code = '9999'")


def test_h3_parent_matches_h3_package(conn: psycopg.Connection) -> None:
    rng = random.Random(7)
    cells = []
    for _ in range(10_000):
        res = rng.randint(0, 15)
        cell = h3.latlng_to_cell(rng.uniform(-89, 89), rng.uniform(-180, 180), res)
        cells.append((h3.str_to_int(cell), res))
    pairs = [(c, r, p) for c, r in cells for p in range(0, r + 1)]
    rows = conn.execute(
        "SELECT h3_parent(c, p) FROM unnest(%s::bigint[], %s::int[]) AS t(c, p)",
        ([c for c, _, _ in pairs], [p for _, _, p in pairs]),
    ).fetchall()
    for (cell, _, parent_res), (got,) in zip(pairs, rows, strict=True):
        expected = h3.str_to_int(h3.cell_to_parent(h3.int_to_str(cell), parent_res))
        assert got == expected
    assert len(pairs) > 50_000
    # a coarser cell has no finer "parent"
    coarse = h3.str_to_int(h3.latlng_to_cell(22.5, 114.0, 5))
    assert conn.execute("SELECT h3_parent(%s, 6)", (coarse,)).fetchone()[0] is None
    assert conn.execute("SELECT h3_resolution(%s)", (coarse,)).fetchone()[0] == 5


def test_landing_health_metrics_openapi(client: TestClient) -> None:
    landing = client.get("/").json()
    assert {link["rel"] for link in landing["links"]} >= {"service-desc", "health", "metrics"}
    health = client.get("/healthz")
    assert health.status_code == 200
    assert health.json()["database"]["postgis"].startswith("3.")
    assert client.get("/openapi.json").json()["info"]["title"] == "CityHex"
    assert client.get("/docs").status_code == 200
    metrics = client.get("/metrics").text
    assert 'cityhex_http_requests_total{method="GET",route="/healthz",status="200"}' in metrics


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def test_landing_gives_a_browser_a_page_and_a_program_json(client: TestClient) -> None:
    json_links = {link["rel"]: link["href"] for link in client.get("/").json()["links"]}
    assert (
        client.get("/", headers={"Accept": "*/*"})
        .headers["content-type"]
        .startswith("application/json")
    )
    page = client.get("/", headers={"Accept": BROWSER_ACCEPT})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    hrefs = set(re.findall(r'href="([^"]+)"', page.text))
    for rel in ("service-doc", "styles", "data", "open-data"):
        assert json_links[rel] in hrefs, rel
    assert "接口文档" in page.text and "API documentation" in page.text
    assert not re.search(r'(src|href)="(https?:)?//(?!testserver)', page.text), "outside link"
    assert client.get("/?f=html").headers["content-type"].startswith("text/html")
    forced = client.get("/?f=json", headers={"Accept": BROWSER_ACCEPT})
    assert forced.json()["title"] == "CityHex"
    assert client.get("/?f=xml").status_code == 400


def test_errors_are_json(client: TestClient) -> None:
    res = client.get("/no/such/thing")
    assert res.status_code == 404
    assert res.json() == {"status": 404, "code": "not_found", "message": "Not Found"}
    res = client.post("/healthz")
    assert res.status_code == 405 and res.json()["code"] == "method_not_allowed"


def test_roles(client: TestClient, key) -> None:
    app = client.app

    @app.get("/_test/dispatch")
    async def dispatch_only(p: Principal = Depends(require_role("dispatcher"))) -> dict:
        return {"role": p.role}

    try:
        res = client.get("/_test/dispatch")
        assert res.status_code == 401 and res.json()["code"] == "unauthorized"
        res = client.get("/_test/dispatch", headers={"Authorization": "Bearer chx_wrong"})
        assert res.status_code == 401 and "unknown" in res.json()["message"]
        res = client.get("/_test/dispatch", headers={"Authorization": "Basic abc"})
        assert res.status_code == 401
        res = client.get("/_test/dispatch", headers=key("inspector"))
        assert res.status_code == 403 and res.json()["code"] == "forbidden"
        assert client.get("/_test/dispatch", headers=key("dispatcher")).json() == {
            "role": "dispatcher"
        }
        assert client.get("/_test/dispatch", headers=key("admin")).status_code == 200
    finally:
        app.router.routes = [
            r for r in app.router.routes if getattr(r, "path", "") != "/_test/dispatch"
        ]


def test_keys_stored_hashed(conn: psycopg.Connection, key) -> None:
    token = key("app")["Authorization"].split()[1]
    stored = [r[0] for r in conn.execute("SELECT key_hash FROM api_keys").fetchall()]
    assert token not in stored
    assert all(len(h) == 64 for h in stored)
