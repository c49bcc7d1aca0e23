"""Read replicas and several servers, for real: two ``cityhex serve`` processes on one tile
city, reading from a streaming replica of it (pg_basebackup through a slot), and nginx
round robin in front of both.

The checks are made against the databases themselves: what the primary holds (SQL), what
the replica holds (SQL on it), and what the replica is running (pg_stat_activity on it).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from string import Template

import h3
import httpx
import mapbox_vector_tile
import psycopg
import pytest

from layers.catalog.changes import publish_change_sync
from layers.catalog.registry import load_catalog
from layers.db.embedded import ReplicaCluster, free_port
from tests.helpers import cell, make_key, running_server, tile_box, tile_of

pytestmark = pytest.mark.subprocess

NOTICE_SETTLE = 0.3
"""Seconds allowed for a committed change's notice to reach the other server."""
LEVELS = (5, 6, 7, 8, 9, 11)
"""The resolutions stored beside ``h3`` (res 10) in ``h3_<res>`` (migration 0015)."""
MARGIN = 64 / 4096
CLUSTER_BELOW = load_catalog().get("assets").cluster_below
NGINX_TEMPLATE = Path(__file__).parents[2] / "docker" / "nginx.conf.template"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


@pytest.fixture(scope="module")
def city(tiles_city) -> str:
    """This module's copy of the tile city (on the primary)."""
    return tiles_city("replica_city")


@pytest.fixture(scope="module")
def standby(city: str, replica: ReplicaCluster) -> str:
    """The URL of the city on the replica, once the replica has replayed its making."""
    url = replica.url(city.rsplit("/", 1)[1])
    wait_replayed(city, url)
    return url


@pytest.fixture(scope="module")
def servers(city: str, standby: str) -> Iterator[tuple[str, str]]:
    """Two servers (A, B) on the city, both reading from the replica."""
    env = {"CITYHEX_REPLICA_URLS": standby, "CITYHEX_REPLICA_MAX_LAG_S": "5"}
    with running_server(city, env=env) as a, running_server(city, env=env) as b:
        for base in (a, b):
            wait_state(base, "up")
        yield a, b


@pytest.fixture(scope="module")
def editor(city: str) -> dict[str, str]:
    """An editor's Authorization header."""
    return make_key(city, "editor")


@pytest.fixture(scope="module")
def nginx(servers: tuple[str, str]) -> Iterator[str]:
    """nginx round robin in front of both servers, from docker/nginx.conf.template."""
    prefix = Path(tempfile.mkdtemp(prefix="cityhex-nginx-"))
    prefix.chmod(0o777)
    port = free_port()
    upstreams = "".join(f"        server {base.removeprefix('http://')};\n" for base in servers)
    conf = prefix / "nginx.conf"
    conf.write_text(
        Template(NGINX_TEMPLATE.read_text()).safe_substitute(
            NGINX_PORT=port, NGINX_PREFIX=str(prefix), NGINX_UPSTREAMS=upstreams.strip()
        )
    )
    proc = subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"])
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(prefix, ignore_errors=True)


# --- helpers ---------------------------------------------------------------------------------


def one(url: str, sql: str, params: tuple = ()) -> object:
    """The single value ``sql`` returns on the database at ``url``."""
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchone()[0]


def wait_replayed(primary: str, standby: str, timeout: float = 30) -> None:
    """Wait until the replica has replayed the primary's WAL as of now."""
    target = one(primary, "SELECT pg_current_wal_insert_lsn()::text")
    deadline = time.monotonic() + timeout
    while True:
        try:
            if one(standby, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)):
                return
        except psycopg.OperationalError:
            pass
        assert time.monotonic() < deadline, "the replica did not catch up"
        time.sleep(0.1)


def replica_state(base: str) -> str:
    """The replica's state in a server's /metrics."""
    text = httpx.get(base + "/metrics").text
    states = re.findall(r'cityhex_replica_state\{replica="[^"]+",state="(\w+)"\} 1\.0', text)
    assert len(states) == 1, text[-2000:]
    return states[0]


def wait_state(base: str, state: str, timeout: float = 20) -> None:
    """Wait until a server's /metrics show the replica in ``state``."""
    deadline = time.monotonic() + timeout
    while replica_state(base) != state:
        assert time.monotonic() < deadline, f"the replica did not become {state}"
        time.sleep(0.2)


def asset_ids(body: bytes) -> set[int]:
    """The ids of the assets a tile shows."""
    tile = mapbox_vector_tile.decode(body) if body else {}
    return {f["id"] for f in tile.get("assets", {"features": []})["features"]}


def in_tile(url: str, asset: int, t: tuple[int, int, int]) -> bool:
    """Whether the asset lies in the tile's buffered envelope, by SQL on ``url``."""
    return bool(
        one(
            url,
            "SELECT ST_Intersects(geom_3857, ST_MakeEnvelope(%s, %s, %s, %s, 3857)) "
            "FROM assets WHERE id = %s",
            (*tile_box(*t, MARGIN), asset),
        )
    )


def point_asset(city: str, skip: int) -> tuple[int, float, float]:
    """A point asset (id, lon, lat) whose code agrees with its class (so an edit may keep
    it), the ``skip``-th by id: each test moves its own."""
    with psycopg.connect(city) as conn:
        return conn.execute(
            "SELECT id, ST_X(geom), ST_Y(geom) FROM assets WHERE GeometryType(geom) = 'POINT' "
            "AND substr(code, 7, 4) = class_code ORDER BY id OFFSET %s LIMIT 1",
            (skip,),
        ).fetchone()


def patch_asset(
    base: str, key: dict, asset: int, lon: float, lat: float, name: str
) -> httpx.Response:
    """Move and rename an asset through a server's Features API (If-Match from a read)."""
    url = f"{base}/collections/assets/items/{asset}"
    etag = httpx.get(url, headers=key).headers["etag"]
    return httpx.patch(
        url,
        json={
            "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "properties": {"name": name},
        },
        headers={**key, "If-Match": etag, "Content-Type": "application/merge-patch+json"},
    )


def tile_path(t: tuple[int, int, int]) -> str:
    return f"/tiles/assets/{t[0]}/{t[1]}/{t[2]}.mvt"


def cell_count(base: str, key: dict, target: str) -> int:
    """The incidents a server's /analytics/h3 counts in the res-9 cell ``target``."""
    answer = httpx.get(
        f"{base}/analytics/h3", params={"layer": "incidents", "res": 9}, headers=key
    ).json()
    return sum(c["count"] for c in answer["cells"] if c["cell"] == target)


def replica_running(standby: str, application: str, like: str) -> bool:
    """Whether a CityHex connection named ``application`` on the replica's city database
    last ran a statement matching ``like``."""
    return bool(
        one(
            standby,
            "SELECT count(*) > 0 FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = %s AND query LIKE %s",
            (application, like),
        )
    )


# --- tests -----------------------------------------------------------------------------------


def test_reads_reach_the_replica_until_a_notice_says_it_is_behind(
    servers: tuple[str, str], city: str, standby: str
) -> None:
    a, _ = servers
    app = make_key(city, "app")
    wait_replayed(city, standby)
    asset, lon, lat = point_asset(city, 0)
    dest = (lon + 0.01, lat + 0.01)
    t = tile_of(*dest, 17)
    target = h3.latlng_to_cell(dest[1], dest[0], 9)  # the res-9 cell containing dest
    with psycopg.connect(city) as conn:  # an incident outside the target cell, by the h3 package
        incident = next(
            i
            for i, x, y in conn.execute(
                "SELECT id, ST_X(geom), ST_Y(geom) FROM incidents ORDER BY id LIMIT 100"
            )
            if h3.latlng_to_cell(y, x, 9) != target
        )
    # the case's cell at every stored resolution, as every writer stores them (h3 package)
    levels = {f"h3_{r}": h3.str_to_int(h3.latlng_to_cell(dest[1], dest[0], r)) for r in LEVELS}
    before = cell_count(a, app, target)
    one(standby, "SELECT pg_wal_replay_pause()")
    try:
        with psycopg.connect(city) as conn:  # a write nobody announces: only the primary has it
            conn.execute(
                "UPDATE assets SET name = 'unannounced', geom = ST_SetSRID(ST_MakePoint(%s, %s),"
                " 4326), h3 = %s WHERE id = %s",
                (*dest, cell(*dest), asset),
            )
            conn.execute(  # and an incident moved into the target cell
                "UPDATE incidents SET h3 = %s, geom = ST_SetSRID(ST_MakePoint(%s, %s), 4326), "
                + ", ".join(f"{c} = %s" for c in levels)
                + " WHERE id = %s",
                (cell(*dest), *dest, *levels.values(), incident),
            )
        assert one(standby, "SELECT name FROM assets WHERE id = %s", (asset,)) != "unannounced"
        item = httpx.get(f"{a}/collections/assets/items/{asset}").json()
        assert item["properties"]["name"] == one(
            standby, "SELECT name FROM assets WHERE id = %s", (asset,)
        )
        tile = httpx.get(a + tile_path(t))
        assert tile.headers["x-cache"] == "miss"
        assert asset not in asset_ids(tile.content) and not in_tile(standby, asset, t)
        assert in_tile(city, asset, t)
        assert replica_running(standby, "cityhex-tiles", "%")
        assert httpx.get(a + "/grid/lookup?lon=114.05&lat=22.55", headers=app).status_code == 200
        assert replica_running(standby, "cityhex-grid-lookup", "%grid_cells%")
        assert cell_count(a, app, target) == before

        with psycopg.connect(city) as conn:  # now announced, as every writer does
            publish_change_sync(conn, "assets", [(lon, lat, lon, lat), (*dest, *dest)])
            publish_change_sync(conn, "incidents", None)
        time.sleep(NOTICE_SETTLE)
        item = httpx.get(f"{a}/collections/assets/items/{asset}").json()
        assert item["properties"]["name"] == "unannounced"
        assert item["geometry"]["coordinates"] == pytest.approx(list(dest))
        tile = httpx.get(a + tile_path(t))
        assert asset in asset_ids(tile.content)
        assert cell_count(a, app, target) == before + 1
        assert one(standby, "SELECT name FROM assets WHERE id = %s", (asset,)) != "unannounced"
    finally:
        one(standby, "SELECT pg_wal_replay_resume()")


def test_an_edit_through_one_server_shows_at_once_in_the_other(
    servers: tuple[str, str], city: str, standby: str, editor: dict
) -> None:
    a, b = servers
    wait_replayed(city, standby)
    asset, lon, lat = point_asset(city, 1)
    dest = (lon - 0.008, lat + 0.006)
    paths = {
        tile_path(tile_of(*p, z)): tile_of(*p, z) for p in ((lon, lat), dest) for z in (15, 17)
    }
    for path in paths:
        httpx.get(b + path)
        assert httpx.get(b + path).headers["x-cache"] == "hit"
    one(standby, "SELECT pg_wal_replay_pause()")
    try:
        r = patch_asset(a, editor, asset, *dest, "moved through A")
        assert r.status_code == 200, r.text
        time.sleep(NOTICE_SETTLE)
        item = httpx.get(f"{b}/collections/assets/items/{asset}")
        assert item.json()["properties"]["name"] == "moved through A"
        assert item.headers["etag"] == r.headers["etag"]
        for path, t in paths.items():
            assert (asset in asset_ids(httpx.get(b + path).content)) == in_tile(city, asset, t)
        assert any(in_tile(city, asset, t) != in_tile(standby, asset, t) for t in paths.values())
        assert one(standby, "SELECT name FROM assets WHERE id = %s", (asset,)) != "moved through A"
    finally:
        one(standby, "SELECT pg_wal_replay_resume()")


def test_no_stale_tile_behind_nginx_after_writes_through_either_server(
    servers: tuple[str, str], nginx: str, city: str, editor: dict
) -> None:
    asset, lon, lat = point_asset(city, 2)
    places = [(lon, lat), (lon + 0.006, lat - 0.004)]
    paths = {
        tile_path(tile_of(*p, z)): tile_of(*p, z)
        for p in places
        for z in range(CLUSTER_BELOW, CLUSTER_BELOW + 6)
    }
    for path in paths:  # round robin: both servers build and cache every tile
        for _ in range(4):
            assert httpx.get(nginx + path).status_code in (200, 204)
    for step, writer in enumerate([*servers, *servers]):
        dest = places[(step + 1) % 2]
        r = patch_asset(writer, editor, asset, *dest, f"step {step}")
        assert r.status_code == 200, r.text
        time.sleep(NOTICE_SETTLE)
        for path, t in paths.items():
            truth = in_tile(city, asset, t)
            for _ in range(4):
                assert (asset in asset_ids(httpx.get(nginx + path).content)) == truth, path


def test_a_stopped_replica_is_skipped_and_taken_back(
    servers: tuple[str, str], city: str, standby: str, replica: ReplicaCluster
) -> None:
    a, b = servers
    app = make_key(city, "app")
    asset, lon, lat = point_asset(city, 3)
    replica.stop()
    try:
        for z, base in ((16, a), (18, b)):  # uncached tiles, items and lookups, at once
            t = tile_of(lon, lat, z)
            tile = httpx.get(base + tile_path(t))
            assert tile.status_code == 200 and asset in asset_ids(tile.content)
            item = httpx.get(f"{base}/collections/assets/items/{asset}")
            assert item.status_code == 200
            assert item.json()["properties"]["name"] == one(
                city, "SELECT name FROM assets WHERE id = %s", (asset,)
            )
        for base in servers:
            lookup = httpx.get(base + "/grid/lookup?lon=114.05&lat=22.55", headers=app)
            assert lookup.status_code == 200, lookup.text
            wait_state(base, "down")
    finally:
        replica.start()
    for base in servers:
        wait_state(base, "up")
    t = tile_of(lon, lat, 19)
    for base in servers:
        httpx.get(base + tile_path(t))
    assert replica_running(standby, "cityhex-tiles", "%")
