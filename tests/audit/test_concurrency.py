"""Concurrent writers keep one chain: 20 PATCHes of 20 features and 20 reads of a case, all
at once against a real server with two worker processes, leave one gapless, valid chain
with one entry each, and one key-use entry per key across both processes."""

from __future__ import annotations

import threading
from collections import Counter

import httpx
import psycopg
import pytest

from tests.audit.conftest import build_city, chain_break, wait_out_the_hour
from tests.helpers import make_key, running_server

CLIENTS = 20

pytestmark = pytest.mark.subprocess


def test_parallel_requests_keep_one_chain(new_database) -> None:
    url = new_database("cityhex_audit_race")
    build_city(url)
    editor = make_key(url, "editor", name="racer")
    reader = make_key(url, "dispatcher", name="reader")
    statuses: list[int] = []
    lock = threading.Lock()
    wait_out_the_hour(60)
    with running_server(url, workers=2) as base:
        etags = {
            fid: httpx.get(f"{base}/collections/assets/items/{fid}").headers["etag"]
            for fid in range(1, CLIENTS + 1)
        }
        barrier = threading.Barrier(2 * CLIENTS)

        def patch(fid: int) -> None:
            with httpx.Client(timeout=30) as client:
                barrier.wait()
                r = client.patch(
                    f"{base}/collections/assets/items/{fid}",
                    json={"properties": {"name": f"writer {fid}"}},
                    headers={
                        **editor,
                        "If-Match": etags[fid],
                        "Content-Type": "application/merge-patch+json",
                    },
                )
            with lock:
                statuses.append(r.status_code)

        def read() -> None:
            with httpx.Client(timeout=30) as client:
                barrier.wait()
                r = client.get(f"{base}/incidents/1", headers=reader)
            with lock:
                statuses.append(r.status_code)

        threads = [threading.Thread(target=patch, args=(f,)) for f in range(1, CLIENTS + 1)]
        threads += [threading.Thread(target=read) for _ in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert Counter(statuses) == {200: 2 * CLIENTS}
    with psycopg.connect(url) as conn:
        seqs = [s for (s,) in conn.execute("SELECT seq FROM audit_log ORDER BY seq")]
        actions = Counter(conn.execute("SELECT action, actor, status FROM audit_log").fetchall())
        written = {p for (p,) in conn.execute("SELECT path FROM audit_log WHERE action = 'write'")}
    assert seqs == list(range(1, 2 * CLIENTS + 5))
    assert actions == {
        ("key.create", "system", None): 2,
        ("write", "editor:racer", None): CLIENTS,
        ("personal.read", "dispatcher:reader", 200): CLIENTS,
        ("key.use", "editor:racer", 200): 1,
        ("key.use", "dispatcher:reader", 200): 1,
    }
    assert written == {f"/collections/assets/items/{f}" for f in range(1, CLIENTS + 1)}
    assert chain_break(url) is None
