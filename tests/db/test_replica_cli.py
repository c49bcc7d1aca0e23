"""``cityhex db replica start|stop|url``: a real streaming replica of the embedded cluster,
checked through PostgreSQL itself (recovery state, the slot on the primary, replayed rows)."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from layers.db.embedded import EmbeddedCluster, ReplicaCluster, free_port
from tests.db.test_embedded_db import cityhex

pytestmark = pytest.mark.subprocess


@pytest.fixture(scope="module")
def home() -> Iterator[Path]:
    """A folder for an embedded cluster and its replica, both removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="cityhex-replica-", dir="/tmp"))
    os.chmod(folder, 0o755)
    yield folder
    ReplicaCluster(folder, EmbeddedCluster(folder)).drop()
    cityhex(folder, "db", "stop")
    subprocess.run(["rm", "-rf", str(folder)], check=False)


def replayed(url: str, value: int, timeout: float = 30) -> bool:
    """Whether the replica at ``url`` shows the row ``value`` within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(url) as conn:
                if conn.execute("SELECT count(*) FROM probe WHERE v = %s", (value,)).fetchone()[0]:
                    return True
        except psycopg.Error:
            pass
        time.sleep(0.2)
    return False


def test_replica_streams_refuses_writes_and_catches_up_after_a_stop(home: Path) -> None:
    assert cityhex(home, "db", "start").returncode == 0
    primary = cityhex(home, "db", "url").stdout.strip()
    with psycopg.connect(primary, autocommit=True) as conn:
        conn.execute("CREATE TABLE probe (v int)")
        conn.execute("INSERT INTO probe VALUES (1)")
    port = free_port()
    started = cityhex(home, "db", "replica", "start", "--port", str(port))
    assert started.returncode == 0, started.stderr
    url = cityhex(home, "db", "replica", "url").stdout.strip()
    assert url == f"postgresql://cityhex@127.0.0.1:{port}/cityhex" and url in started.stderr
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("INSERT INTO probe VALUES (2)")
    with psycopg.connect(primary) as conn:
        slot = conn.execute(
            "SELECT active FROM pg_replication_slots WHERE slot_name = 'cityhex_replica'"
        ).fetchone()
        conn.execute("INSERT INTO probe VALUES (3)")
    assert slot == (True,)
    assert replayed(url, 3)

    assert cityhex(home, "db", "replica", "stop").returncode == 0
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)
    with psycopg.connect(primary) as conn:  # the slot keeps this WAL for the replica
        conn.execute("INSERT INTO probe VALUES (4)")
    assert cityhex(home, "db", "replica", "start").returncode == 0
    assert cityhex(home, "db", "replica", "url").stdout.strip() == url  # the port is kept
    assert replayed(url, 4)
