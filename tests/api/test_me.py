"""``GET /auth/me``: who the caller is, read back against the key as stored (SQL)."""

from __future__ import annotations

import psycopg
from fastapi.testclient import TestClient

from layers.db.keys import create_key
from layers.db.scope import Scope


def test_a_key_is_answered_with_its_role_user_and_scope(client: TestClient, db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO users (id, name) VALUES (9101, 'me test') ON CONFLICT DO NOTHING")
        token = create_key(conn, "inspector", "me-test", 9101)
        editor = create_key(conn, "editor", "me-editor", scope=Scope.of(layers=["assets"]))
        stored = conn.execute(
            "SELECT role, name, inspector_id FROM api_keys WHERE name = 'me-test'"
        ).fetchone()
    me = client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert (me.json()["role"], me.json()["name"], me.json()["inspector_id"]) == stored
    assert me.json()["scope"] == {}
    scoped = client.get("/auth/me", headers={"Authorization": f"Bearer {editor}"}).json()
    assert scoped["role"] == "editor"
    assert scoped["scope"] == {"layers": ["assets"]}


def test_no_key_is_anonymous_and_a_wrong_one_is_401(client: TestClient) -> None:
    assert client.get("/auth/me").json() == {"role": "anonymous", "scope": {}}
    wrong = client.get("/auth/me", headers={"Authorization": "Bearer chx_not-a-key"})
    assert wrong.status_code == 401
    assert wrong.json()["code"]
