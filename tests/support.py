"""Test support: a real CityHex server process on a free port, and databases to test on."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import psycopg

from layers.db.embedded import free_port
from layers.db.migrate import migrate


def create_database(admin_url: str, name: str, template: str | None = None) -> str:
    """A fresh database on the test cluster (PostGIS and the schema in it); its URL."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        tmpl = f' TEMPLATE "{template}"' if template else ""
        conn.execute(f'CREATE DATABASE "{name}"{tmpl}')
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    if not template:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        migrate(url)
    return url


@contextmanager
def running_server(
    database_url: str,
    workers: int = 1,
    env: dict[str, str] | None = None,
) -> Iterator[str]:
    """Run ``cityhex serve`` as a child process; yield its base URL; stop it after."""
    port = free_port()
    child_env = {**os.environ, "CITYHEX_DATABASE_URL": database_url, **(env or {})}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "spatial_api",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {proc.stdout.read() if proc.stdout else ''}")
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not become healthy in 60 s")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
