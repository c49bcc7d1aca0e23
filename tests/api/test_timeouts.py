"""Runaway queries: every request connection carries the statement timeout (503
``statement_timeout`` when it strikes), a request abandoned by its client is cancelled in the
database, and a filter past its cost bound is refused before it reaches the database.

The runaway query is the one the reliability probe sent: an anonymous CQL2 S_RELATE against a
large polygon, here 999 vertices (under the bound) lying outside the grid, so that every cell
is related to it and none matches. It runs against ``grid_x20``, a view that repeats each cell
of a 31,000-cell grid twenty times behind an optimisation fence: the work of a grid twenty
times the size without storing one, 15–20 s on this machine.
"""

from __future__ import annotations

import asyncio
import math
import os
import socket
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
import pytest
import shapely
from fastapi.testclient import TestClient
from sqlalchemy import text

from layers.db.engine import connect_sync, create_async_engine
from layers.db.settings import storage_settings
from layers.grid.build import build_from
from tests.helpers import running_server, tile_of
from tiles.settings import tile_settings

SLOW_LAYER = """
[layers.grid_x20]
title = "The grid, twenty times over"
table = "grid_x20"
id_column = "id"
id_type = "h3"
geometry_type = "Polygon"
public = true
editable = false
"""
SLOW_VIEW = (
    "CREATE VIEW grid_x20 AS SELECT id, geom FROM "
    "(SELECT g.h3 AS id, g.geom FROM grid_cells g, generate_series(1, 20) k OFFSET 0) s"
)
RELATE = "T*F**F***"
RUNAWAY = "ST_Relate"
"""What the runaway statement shows in pg_stat_activity."""


def circle(n: int, lon: float, lat: float, r: float = 0.05) -> str:
    """A WKT polygon of ``n`` positions (the last closing the ring) around (lon, lat)."""
    points = [
        f"{lon + r * math.cos(2 * math.pi * i / (n - 1)):.3f} "
        f"{lat + r * math.sin(2 * math.pi * i / (n - 1)):.3f}"
        for i in range(n - 1)
    ]
    return "POLYGON((" + ", ".join([*points, points[0]]) + "))"


def relate_filter(vertices: int, lon: float = 113.5, lat: float = 22.6) -> str:
    """The probe's filter with a polygon of ``vertices`` (away from the grid by default)."""
    return f"S_RELATE(geometry, {circle(vertices, lon, lat)}, '{RELATE}')"


@pytest.fixture(scope="module")
def slow_city(
    new_database: Callable[..., str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database with a 31,000-cell grid and the grid_x20 view, published as a layer
    through CITYHEX_CATALOG for this module's tests; its URL."""
    url = new_database("cityhex_timeouts")
    build_from(url, shapely.box(114.0, 22.5, 114.2, 22.7), 10, "test")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SLOW_VIEW)
    catalog = tmp_path_factory.mktemp("timeouts") / "slow.toml"
    catalog.write_text(SLOW_LAYER)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CITYHEX_CATALOG", str(catalog))
        yield url


@contextmanager
def app_with(url: str, env: dict[str, str]) -> Iterator[TestClient]:
    """The app on ``url`` in process, made with the settings ``env`` adds."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        storage_settings.cache_clear()
        tile_settings.cache_clear()
        try:
            from spatial_api.app import create_app

            with TestClient(create_app(url)) as client:
                yield client
        finally:
            storage_settings.cache_clear()
            tile_settings.cache_clear()


def active_runaways(conn: psycopg.Connection) -> int:
    """How many statements relating geometries run in the database now."""
    return conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s "
        "AND pid <> pg_backend_pid()",
        (f"%{RUNAWAY}%",),
    ).fetchone()[0]


def test_every_request_connection_carries_the_statement_timeout(slow_city: str) -> None:
    env = {"CITYHEX_STATEMENT_TIMEOUT_MS": "1234", "CITYHEX_JOB_STATEMENT_TIMEOUT_MS": "98765"}
    show = "SHOW statement_timeout"
    with app_with(slow_city, env) as client:
        state = client.app.state

        async def request_paths() -> list[str]:
            async with state.engine.connect() as conn:
                main = (await conn.execute(text(show))).scalar_one()
            lookup = await state.grid_lookup_pool.fetchval(show)
            tiles = await state.tiles.pool.fetchval(show)
            return [main, lookup, tiles]

        assert client.portal.call(request_paths) == ["1234ms", "1234ms", "1234ms"]

        async def command_line() -> str:
            engine = create_async_engine(slow_city, pool_size=1, job=True)
            try:
                async with engine.connect() as conn:
                    return (await conn.execute(text(show))).scalar_one()
            finally:
                await engine.dispose()

        assert asyncio.run(command_line()) == "98765ms"
        with connect_sync(slow_city) as conn:
            assert conn.execute(show).fetchone()[0] == "98765ms"
    with app_with(slow_city, {"CITYHEX_TILE_STATEMENT_TIMEOUT_MS": "4321"}) as client:
        assert client.portal.call(client.app.state.tiles.pool.fetchval, show) == "4321ms"


def test_a_runaway_filter_answers_503_at_the_statement_timeout(slow_city: str) -> None:
    flt = relate_filter(999)
    with app_with(slow_city, {"CITYHEX_STATEMENT_TIMEOUT_MS": "500"}) as client:
        for path, params in (
            ("/collections/grid_x20/items", {"filter": flt}),
            ("/tiles/grid_x20/{}/{}/{}.mvt".format(*tile_of(114.1, 22.6, 8)), {"filter": flt}),
        ):
            start = time.monotonic()
            r = client.get(path, params=params)
            took = time.monotonic() - start
            assert r.status_code == 503, (path, r.text)
            body = r.json()
            assert (body["status"], body["code"]) == (503, "statement_timeout")
            assert "canceling statement" not in body["message"], body
            assert took < 5, f"{path} answered after {took:.1f} s"
        # the pools are fine afterwards
        assert client.get("/collections/grid/items", params={"limit": 1}).status_code == 200
        tile = "/tiles/grid/{}/{}/{}.mvt".format(*tile_of(114.1, 22.6, 14))
        assert client.get(tile).status_code == 200


def test_the_reported_filter_is_refused_on_every_path_before_the_database(
    client: TestClient,
) -> None:
    flt = relate_filter(1_100, 114.1, 22.6)
    assert len(flt) < 20_000
    tile = "/tiles/grid/{}/{}/{}.mvt".format(*tile_of(114.1, 22.6, 14))
    point = {"layer": "grid", "lon": 114.1, "lat": 22.6, "radius_m": 500}
    for path, params in (
        ("/collections/grid/items", {"filter": flt}),
        (tile, {"filter": flt}),
        ("/query/within", {**point, "filter": flt}),
    ):
        r = client.get(path, params=params)
        assert r.status_code == 400, (path, r.text)
        body = r.json()
        assert body["code"] == "filter_too_complex"
        assert body["details"] == {"bound": "vertices", "value": 1_100, "limit": 1_000}


@pytest.mark.subprocess
def test_a_request_abandoned_by_its_client_is_cancelled_in_the_database(slow_city: str) -> None:
    path = "/collections/grid_x20/items?" + urllib.parse.urlencode({"filter": relate_filter(999)})
    env = {
        "CITYHEX_STATEMENT_TIMEOUT_MS": "60000",
        "CITYHEX_CATALOG": os.environ["CITYHEX_CATALOG"],
    }
    with (
        running_server(slow_city, env=env) as base,
        psycopg.connect(slow_city, autocommit=True) as db,
    ):
        host, port = urllib.parse.urlsplit(base).hostname, urllib.parse.urlsplit(base).port
        client = socket.create_connection((host, port))
        client.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        deadline = time.monotonic() + 10
        while not active_runaways(db):
            assert time.monotonic() < deadline, "the runaway statement never started"
            time.sleep(0.05)
        time.sleep(1.0)
        assert active_runaways(db) == 1, "the statement should still be running"
        client.close()
        left = time.monotonic()
        while active_runaways(db):
            assert time.monotonic() - left < 2, "the statement ran on after the client left"
            time.sleep(0.05)
        print(f"cancelled {time.monotonic() - left:.2f} s after the client left")
        idle_in_transaction = db.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'"
        ).fetchone()[0]
        assert idle_in_transaction == 0
        with socket.create_connection((host, port)) as again:
            again.sendall(
                f"GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
            )
            assert again.recv(64).startswith(b"HTTP/1.1 200")
