"""Every test runs against a real PostgreSQL + PostGIS cluster that the session starts.

The cluster is made by the same code as ``cityhex db start``, in a throwaway folder, on a
free loopback port; the schema is applied with the same migrations as ``cityhex migrate``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from layers.db.embedded import EmbeddedCluster, free_port
from layers.db.keys import create_key
from layers.db.settings import storage_settings
from tests.support import create_database

FAST_CONF = {"fsync": "off", "full_page_writes": "off", "synchronous_commit": "off"}
_state: dict[str, object] = {}


def pytest_configure(config: pytest.Config) -> None:
    """Start the throwaway cluster and point CityHex at it."""
    if hasattr(config, "workerinput"):
        return
    home = Path(tempfile.mkdtemp(prefix="cityhex-test-", dir="/tmp"))
    os.chmod(home, 0o755)
    cluster = EmbeddedCluster(home, port=free_port())
    url = cluster.start(extra_conf=FAST_CONF)
    test_url = create_database(url, "cityhex_test")
    os.environ["CITYHEX_DATABASE_URL"] = test_url
    os.environ["CITYHEX_HOME"] = str(home)
    storage_settings.cache_clear()
    _state.update(cluster=cluster, home=home, admin_url=url, url=test_url)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop the cluster and remove its folder."""
    cluster = _state.get("cluster")
    if isinstance(cluster, EmbeddedCluster):
        cluster.stop()
        shutil.rmtree(str(_state["home"]), ignore_errors=True)


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Say which PostgreSQL and PostGIS the tests run against."""
    with psycopg.connect(str(_state["url"])) as conn:
        pg, postgis = conn.execute(
            "SELECT current_setting('server_version'), postgis_full_version()"
        ).fetchone()
    return [f"PostgreSQL {pg}", f"PostGIS {postgis.split(' ')[1]} ({_state['url']})"]


@pytest.fixture(scope="session")
def cluster() -> EmbeddedCluster:
    """The session's throwaway cluster."""
    return _state["cluster"]  # type: ignore[return-value]


@pytest.fixture(scope="session")
def admin_url() -> str:
    """URL of the cluster's maintenance database (to make more databases)."""
    return str(_state["admin_url"])


@pytest.fixture(scope="session")
def db_url() -> str:
    """URL of the migrated, initially empty test database."""
    return str(_state["url"])


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit psycopg connection to the test database."""
    with psycopg.connect(db_url, autocommit=True) as c:
        yield c


@pytest.fixture(scope="session")
def client(db_url: str) -> Iterator[TestClient]:
    """The CityHex app on the test database, in process."""
    from spatial_api.app import create_app

    with TestClient(create_app(db_url)) as c:
        yield c


@pytest.fixture(scope="session")
def api_key(db_url: str):
    """``api_key(role)`` makes a key with that role and returns the Authorization header."""

    def make(role: str, inspector_id: int | None = None) -> dict[str, str]:
        with psycopg.connect(db_url, autocommit=True) as c:
            token = create_key(c, role, f"test-{role}", inspector_id)
        return {"Authorization": f"Bearer {token}"}

    return make
