"""No lost update: 20 concurrent PATCHes carrying the same ETag against a real server process
(two workers) → exactly one 200, nineteen 412, and exactly one new history version."""

from __future__ import annotations

import threading
from collections import Counter

import httpx
import psycopg
import pytest

from layers.db.keys import create_key
from tests.helpers import running_server

CLIENTS = 20


pytestmark = pytest.mark.subprocess


def test_twenty_patches_with_one_etag_make_one_version(new_database) -> None:
    url = new_database("cityhex_features_race")
    with psycopg.connect(url, autocommit=True) as conn:
        token = create_key(conn, "editor", "racer")
        fid = conn.execute(
            "INSERT INTO assets (code, class_code, kind, geom) VALUES ('4403040101000001', "
            "'0101', 'lamp', ST_SetSRID(ST_MakePoint(114.05, 22.55), 4326)) RETURNING id"
        ).fetchone()[0]
    auth = {"Authorization": f"Bearer {token}"}
    with running_server(url, workers=2) as base:
        item = f"{base}/collections/assets/items/{fid}"
        etag = httpx.get(item).headers["etag"]
        barrier = threading.Barrier(CLIENTS)
        statuses: list[int] = []
        lock = threading.Lock()

        def patch(n: int) -> None:
            with httpx.Client(timeout=30) as client:
                barrier.wait()
                r = client.patch(
                    item,
                    json={"properties": {"name": f"writer {n}"}},
                    headers={
                        **auth,
                        "If-Match": etag,
                        "Content-Type": "application/merge-patch+json",
                    },
                )
            with lock:
                statuses.append(r.status_code)

        threads = [threading.Thread(target=patch, args=(n,)) for n in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        final = httpx.get(item)
    assert Counter(statuses) == {200: 1, 412: CLIENTS - 1}
    with psycopg.connect(url) as conn:
        versions = conn.execute(
            "SELECT version, op FROM feature_history WHERE layer = 'assets' AND feature_id = %s "
            "ORDER BY version",
            (str(fid),),
        ).fetchall()
        row_version, name = conn.execute(
            "SELECT version, name FROM assets WHERE id = %s", (fid,)
        ).fetchone()
    assert versions == [(2, "update")]
    assert row_version == 2 and name.startswith("writer ")
    assert final.json()["properties"]["name"] == name and final.headers["etag"] != etag
