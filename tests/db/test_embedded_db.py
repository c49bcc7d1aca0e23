"""`cityhex db` runs a real cluster; the server rides out a database outage."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.helpers import running_server

pytestmark = pytest.mark.subprocess


def cityhex(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the command line against the embedded cluster under ``home``."""
    env = {k: v for k, v in os.environ.items() if k != "CITYHEX_DATABASE_URL"}
    env["CITYHEX_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "spatial_api", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.fixture(scope="module")
def home() -> Iterator[Path]:
    """A folder for a second embedded cluster, stopped and removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="cityhex-db-", dir="/tmp"))
    os.chmod(folder, 0o755)
    yield folder
    cityhex(folder, "db", "stop")
    subprocess.run(["rm", "-rf", str(folder)], check=False)


def test_start_is_idempotent_and_status_reports(home: Path) -> None:
    first = cityhex(home, "db", "start")
    assert first.returncode == 0, first.stderr
    second = cityhex(home, "db", "start")
    assert second.returncode == 0, second.stderr
    status = json.loads(cityhex(home, "db", "status").stdout)
    assert status["running"] is True
    url = cityhex(home, "db", "url").stdout.strip()
    assert url == status["url"] and url.endswith("/cityhex")
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT postgis_lib_version()").fetchone()[0].startswith("3.")
    assert (home / "pg" / f".s.PGSQL.{status['port']}").exists(), "no Unix socket in the folder"


def test_backends_keep_their_freed_memory(home: Path) -> None:
    # a statement that allocates a few MB, run again and again in one backend: with the
    # server environment the memory is reused, not faulted in afresh each time (a default
    # glibc faults ~4,000 pages a run here)
    url = cityhex(home, "db", "url").stdout.strip()
    query = "SELECT length(string_agg(md5(i::text), '')) FROM generate_series(1, 200000) i"
    with psycopg.connect(url) as conn:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        stat = Path(f"/proc/{pid}/stat")

        def minor_faults() -> int:
            return int(stat.read_text().rsplit(")", 1)[1].split()[7])

        for _ in range(2):
            conn.execute(query)
        before = minor_faults()
        for _ in range(5):
            conn.execute(query)
        assert minor_faults() - before < 500


def test_migrate_creates_schema(home: Path) -> None:
    first = cityhex(home, "migrate")
    assert first.returncode == 0
    url = cityhex(home, "db", "url").stdout.strip()
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM incident_categories").fetchone()[0] > 30
        head = conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    assert f"schema created (revision {head})" in first.stderr
    again = cityhex(home, "migrate")
    assert again.returncode == 0
    assert f"schema already up to date (revision {head})" in again.stderr


def test_serve_on_a_busy_port_fails_before_announcing_its_url(home: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        answer = cityhex(home, "serve", "--port", str(port))
    assert answer.returncode == 1
    assert "port_in_use" in answer.stderr and f"127.0.0.1:{port}" in answer.stderr
    assert "CityHex on http" not in answer.stderr + answer.stdout


def test_stale_pid_file_after_crash_is_recovered(home: Path) -> None:
    assert cityhex(home, "db", "start").returncode == 0
    pidfile = home / "pg" / "data" / "postmaster.pid"
    pid = int(pidfile.read_text().split()[0])
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait for the backends to notice and exit
        busy = subprocess.run(["pgrep", "-f", str(home / "pg" / "data")], capture_output=True)
        if busy.returncode != 0:
            break
        time.sleep(0.2)
    assert pidfile.exists(), "the crash should leave the pid file behind"
    restarted = cityhex(home, "db", "start")
    log = (home / "pg" / "postgres.log").read_text()[-3000:]
    assert restarted.returncode == 0, restarted.stderr + log
    assert json.loads(cityhex(home, "db", "status").stdout)["running"] is True


def test_health_follows_the_database_without_restarting_the_server(home: Path) -> None:
    assert cityhex(home, "db", "start").returncode == 0
    url = cityhex(home, "db", "url").stdout.strip()
    with running_server(url) as base:
        assert httpx.get(base + "/healthz").status_code == 200
        assert cityhex(home, "db", "stop").returncode == 0
        down = httpx.get(base + "/healthz", timeout=10)
        assert down.status_code == 503
        assert down.json()["code"] == "database_unavailable"
        assert cityhex(home, "db", "start").returncode == 0
        deadline = time.monotonic() + 20
        while (code := httpx.get(base + "/healthz", timeout=10).status_code) != 200:
            assert time.monotonic() < deadline, f"still {code} after the database came back"
            time.sleep(0.2)
