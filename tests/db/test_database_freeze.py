"""A database that stops answering without refusing (its processes frozen with SIGSTOP):
every endpoint answers 503 JSON within a bound, and answers again once it resumes, with no
restart of the server.

The test runs a cluster of its own (never the session's shared one) and ``cityhex serve``
on it, so freezing the database freezes nothing else.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest
import shapely

from layers.db.embedded import EmbeddedCluster, free_port
from layers.db.keys import create_key
from layers.db.migrate import migrate
from layers.grid.build import build_from
from tests.helpers import running_server

pytestmark = pytest.mark.subprocess

CONNECT_TIMEOUT_S = 2.0
"""The connect timeout the server runs with (CITYHEX_CONNECT_TIMEOUT_S)."""
BOUND_S = 2 * CONNECT_TIMEOUT_S + 1.5
"""The promise while the database is frozen: the check of a pooled connection, then a new
connection, each given up after the connect timeout, plus a margin for the server's own
work on a busy machine."""
ENDPOINTS = {
    "healthz": "/healthz",
    "tile": "/tiles/assets/{z}/{x}/{y}.mvt",
    "items": "/collections/assets/items?limit=5",
    "lookup": "/grid/lookup?lon=114.01&lat=22.51",
    "incidents": "/incidents",
    "sensors": "/sensors",
    "analytics": "/analytics/h3?layer=incidents&res=8",
}
"""One endpoint of each way to the database: the health probe, the tile service's pool, the
main pool (Features, cases, sensors, analytics, and the key lookup of every keyed call, the
key cache being off), and the grid lookup pool."""


def cluster_pids(postmaster: int) -> list[int]:
    """The postmaster and every process it started (its backends and helpers)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == postmaster:
            children.append(int(stat.parent.name))
    return [postmaster, *children]


@contextmanager
def frozen(cluster: EmbeddedCluster) -> Iterator[None]:
    """The cluster's processes stopped (SIGSTOP) for the block, and resumed after, always."""
    postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
    pids = cluster_pids(postmaster)
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[EmbeddedCluster, str]]:
    """A cluster of this module's own with a migrated database and a small grid."""
    home = Path(tempfile.mkdtemp(prefix="cityhex-freeze-", dir="/tmp"))
    home.chmod(0o755)
    cluster = EmbeddedCluster(home, port=free_port())
    try:
        url = cluster.start()
        migrate(url)
        build_from(url, shapely.box(114.0, 22.5, 114.02, 22.52), 8, "test")
        yield cluster, url
    finally:
        cluster.stop()
        shutil.rmtree(home, ignore_errors=True)


def path_of(name: str, tile: int) -> str:
    """The endpoint's path; tiles at a new position each time, so none comes from the cache."""
    return ENDPOINTS[name].format(z=14, x=13380 + tile, y=7137)


def test_a_frozen_database_gives_503_within_the_bound_and_service_resumes(
    cluster: tuple[EmbeddedCluster, str],
) -> None:
    db, url = cluster
    with psycopg.connect(url, autocommit=True) as conn:
        headers = {"Authorization": f"Bearer {create_key(conn, 'admin', 'freeze-test')}"}
    env = {
        "CITYHEX_CONNECT_TIMEOUT_S": str(CONNECT_TIMEOUT_S),
        "CITYHEX_KEY_CACHE_SECONDS": "0",
    }
    with running_server(url, env=env) as base, httpx.Client(base_url=base) as http:
        for name in ENDPOINTS:
            r = http.get(path_of(name, 0), headers=headers)
            assert r.status_code in (200, 204), (name, r.text)
        timings: dict[str, float] = {}
        with frozen(db):
            for tile, name in enumerate(ENDPOINTS, start=1):
                start = time.monotonic()
                r = http.get(path_of(name, tile), headers=headers, timeout=BOUND_S + 10)
                timings[name] = time.monotonic() - start
                assert r.status_code == 503, (name, r.status_code, r.text)
                body = r.json()
                assert body["status"] == 503
                assert body["code"] == "database_unavailable", (name, body)
                assert str(db.port) not in body["message"] and "Errno" not in body["message"]
        print("answer times while frozen (s):", {k: round(v, 2) for k, v in timings.items()})
        assert max(timings.values()) < BOUND_S, timings
        deadline = time.monotonic() + 30
        for tile, name in enumerate(ENDPOINTS, start=len(ENDPOINTS) + 1):
            while (
                r := http.get(path_of(name, tile), headers=headers, timeout=30)
            ).status_code not in (200, 204):
                assert r.status_code == 503, (name, r.text)
                assert time.monotonic() < deadline, f"{name} did not recover: {r.text}"
                time.sleep(0.2)
