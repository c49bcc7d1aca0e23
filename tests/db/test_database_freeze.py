"""A database that stops answering without refusing (its processes frozen with SIGSTOP):
every endpoint answers 503 JSON within a bound, and answers again once it resumes, with no
restart of the server.

The test runs a cluster of its own (never the session's shared one) and ``cityhex serve``
on it, so freezing the database freezes nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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
STATEMENT_TIMEOUT_MS = 3_000
"""The statement timeout the server runs with (CITYHEX_STATEMENT_TIMEOUT_MS)."""
BOUND_S = 2 * CONNECT_TIMEOUT_S + 1.5
"""The promise while the database is frozen: the check of a pooled connection, then a new
connection, each given up after the connect timeout, plus a margin for the server's own
work on a busy machine."""
IN_FLIGHT_BOUND_S = STATEMENT_TIMEOUT_MS / 1000 + 2 + CONNECT_TIMEOUT_S + 1.5
"""The promise for a statement running when the database freezes: the client gives up 2 s
after the statement timeout, and hands the dead connection back within a connect timeout."""
BURST_BOUND_S = STATEMENT_TIMEOUT_MS / 1000 + 2 + 2.5
"""The promise for many requests at once while the database is frozen: a request waits for
a pooled connection no longer than a statement may take (the tile pool has two)."""
BURST = 30
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


SLOW_LAYER = """
[layers.slow_cells]
title = "The grid cells, a hundred thousand times over"
table = "slow_cells"
id_column = "id"
id_type = "h3"
geometry_type = "Polygon"
public = true
editable = false
"""
SLOW_VIEW = (
    "CREATE VIEW slow_cells AS SELECT id, geom FROM "
    "(SELECT g.h3 AS id, g.geom FROM grid_cells g, generate_series(1, 100000) k OFFSET 0) s"
)
SLOW_FILTER = "S_RELATE(geometry, POLYGON((113 22, 113.01 22, 113.01 22.01, 113 22)), 'T********')"
"""Related to every row, matched by none: the statement runs until it is stopped."""
RUNNING = (
    "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%ST_Relate%'"
)


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
    """The cluster's processes stopped (SIGSTOP) for the block, and resumed after, always
    (the postmaster first, so it starts no process meanwhile; a backend that has just
    exited is passed over)."""
    postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
    pids = cluster_pids(postmaster)
    try:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


@dataclass(frozen=True)
class Served:
    """The module's cluster, the server on it, and an admin key's header."""

    cluster: EmbeddedCluster
    url: str
    base: str
    headers: dict[str, str]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A cluster of this module's own (a migrated database, a small grid, and a layer
    whose filtered reads run for a minute) and ``cityhex serve`` on it."""
    home = Path(tempfile.mkdtemp(prefix="cityhex-freeze-", dir="/tmp"))
    home.chmod(0o755)
    catalog = tmp_path_factory.mktemp("freeze") / "slow.toml"
    catalog.write_text(SLOW_LAYER)
    cluster = EmbeddedCluster(home, port=free_port())
    env = {
        "CITYHEX_CONNECT_TIMEOUT_S": str(CONNECT_TIMEOUT_S),
        "CITYHEX_STATEMENT_TIMEOUT_MS": str(STATEMENT_TIMEOUT_MS),
        "CITYHEX_KEY_CACHE_SECONDS": "0",
        "CITYHEX_CATALOG": str(catalog),
    }
    try:
        url = cluster.start()
        migrate(url)
        build_from(url, shapely.box(114.0, 22.5, 114.02, 22.52), 8, "test")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(SLOW_VIEW)
            headers = {"Authorization": f"Bearer {create_key(conn, 'admin', 'freeze-test')}"}
        with running_server(url, env=env) as base:
            yield Served(cluster, url, base, headers)
    finally:
        cluster.stop()
        shutil.rmtree(home, ignore_errors=True)


def path_of(name: str, tile: int) -> str:
    """The endpoint's path; tiles at a new position each time, so none comes from the cache."""
    return ENDPOINTS[name].format(z=14, x=13380 + tile, y=7137)


def assert_outage(response: httpx.Response, cluster: EmbeddedCluster) -> None:
    """``response`` is the 503 JSON of an outage, free of driver text."""
    assert response.status_code == 503, response.text
    body = response.json()
    assert (body["status"], body["code"]) == (503, "database_unavailable"), body
    assert str(cluster.port) not in body["message"] and "Errno" not in body["message"]


def test_a_frozen_database_gives_503_within_the_bound_and_service_resumes(
    served: Served,
) -> None:
    with httpx.Client(base_url=served.base, headers=served.headers) as http:
        for name in ENDPOINTS:
            r = http.get(path_of(name, 0))
            assert r.status_code in (200, 204), (name, r.text)
        timings: dict[str, float] = {}
        with frozen(served.cluster):
            for tile, name in enumerate(ENDPOINTS, start=1):
                start = time.monotonic()
                r = http.get(path_of(name, tile), timeout=BOUND_S + 10)
                timings[name] = time.monotonic() - start
                assert_outage(r, served.cluster)
        print("answer times while frozen (s):", {k: round(v, 2) for k, v in timings.items()})
        assert max(timings.values()) < BOUND_S, timings
        deadline = time.monotonic() + 30
        for tile, name in enumerate(ENDPOINTS, start=len(ENDPOINTS) + 1):
            while (r := http.get(path_of(name, tile), timeout=30)).status_code not in (200, 204):
                assert r.status_code == 503, (name, r.text)
                assert time.monotonic() < deadline, f"{name} did not recover: {r.text}"
                time.sleep(0.2)


def test_a_statement_running_when_the_database_freezes_is_given_up(served: Served) -> None:
    answer: list[httpx.Response] = []
    slow = threading.Thread(
        target=lambda: answer.append(
            httpx.get(
                served.base + "/collections/slow_cells/items",
                params={"filter": SLOW_FILTER},
                headers=served.headers,
                timeout=IN_FLIGHT_BOUND_S + 10,
            )
        )
    )
    with psycopg.connect(served.url, autocommit=True) as db:
        slow.start()
        deadline = time.monotonic() + 10
        while not db.execute(RUNNING).fetchone()[0]:
            assert time.monotonic() < deadline, "the slow statement never started"
            time.sleep(0.05)
    with frozen(served.cluster):
        start = time.monotonic()
        slow.join(IN_FLIGHT_BOUND_S + 10)
        took = time.monotonic() - start
    print(f"a statement in flight was given up {took:.2f} s after the database froze")
    assert_outage(answer[0], served.cluster)
    assert took < IN_FLIGHT_BOUND_S
    r = httpx.get(served.base + "/collections/grid/items", params={"limit": 1}, timeout=30)
    assert r.status_code == 200, r.text


def test_a_burst_of_requests_while_frozen_all_answer_503_within_the_bound(
    served: Served,
) -> None:
    names = list(ENDPOINTS)

    async def burst() -> list[tuple[httpx.Response, float]]:
        async with httpx.AsyncClient(base_url=served.base, headers=served.headers) as http:

            async def one(i: int) -> tuple[httpx.Response, float]:
                start = time.monotonic()
                r = await http.get(path_of(names[i % len(names)], 100 + i), timeout=60)
                return r, time.monotonic() - start

            return await asyncio.gather(*(one(i) for i in range(BURST)))

    with frozen(served.cluster):
        answers = asyncio.run(burst())
    for response, _ in answers:
        assert_outage(response, served.cluster)
    slowest = max(took for _, took in answers)
    print(f"{BURST} requests at once while frozen: the slowest answered in {slowest:.2f} s")
    assert slowest < BURST_BOUND_S
