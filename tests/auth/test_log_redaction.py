"""Keys and tokens never reach the access log: a real uvicorn server process (with its
access log on, as a deployment running uvicorn itself has it) is sent a token as
``?access_token=`` and a key as Open311's ``?api_key=``; its whole output is then searched
for both."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import psycopg
import pytest

from layers.db.embedded import free_port
from layers.db.keys import create_key
from spatial_api.log_redaction import redact


def test_redact_blanks_credentials_only() -> None:
    line = '"GET /events?types=a&access_token=eyJhbGciOi.eyJzdWIi.c2ln HTTP/1.1" 200'
    assert redact(line) == '"GET /events?types=a&access_token=[redacted] HTTP/1.1" 200'
    assert redact("/open311/v2/requests.json?api_key=chx_abcdefgh123") == (
        "/open311/v2/requests.json?api_key=[redacted]"
    )
    assert redact("key chx_abcdefgh123 used") == "key chx_[redacted] used"
    plain = "/tiles/assets/1/2/3.mvt?from=2026-01-01&tokens=3"
    assert redact(plain) == plain


@pytest.mark.subprocess
def test_a_real_server_logs_no_key_nor_token(new_database) -> None:
    url = new_database("cityhex_log_redaction")
    with psycopg.connect(url, autocommit=True) as conn:
        key = create_key(conn, "dispatcher", "logged")
    port = free_port()
    env = {**os.environ, "CITYHEX_DATABASE_URL": url, "PYTHONPATH": os.getcwd()}
    command = [sys.executable, "-m", "uvicorn", "--factory", "spatial_api.app:create_app"]
    proc = subprocess.Popen(
        [*command, "--port", str(port), "--log-level", "info"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        auth = {"Authorization": f"Bearer {key}"}
        token = httpx.post(base + "/auth/token", headers=auth).json()["access_token"]
        tilejson = httpx.get(
            base + "/tiles/incidents/tilejson.json", params={"access_token": token}
        )
        assert tilejson.status_code == 200
        httpx.get(base + "/open311/v2/requests.json", params={"api_key": key})
        httpx.get(base + "/incidents", params={"access_token": token, "key": key})
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=15)
    assert "tilejson.json?access_token=[redacted]" in output, output  # the access log ran
    assert "api_key=[redacted]" in output
    assert key not in output and token not in output
    assert key[4:] not in output and token.split(".")[2] not in output
