"""Keys that end: list, revoke, rotate and expire, by ``cityhex keys`` and by admins over
``/auth/keys``, seen by two application instances on one database (as two workers are).

What the server says is compared with the rows of ``api_keys`` and ``audit_log`` read by
SQL; a revoked, rotated or expired key, and the tokens made from it, must be refused by the
instance that did not make the change once its key cache (1 s here) has lapsed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from layers.db.keys import create_key
from layers.db.settings import storage_settings
from spatial_api.settings import api_settings
from tests.helpers import City
from tests.incidents.conftest import build_city

CACHE_S = 1.0


@pytest.fixture(scope="module")
def apps(new_database) -> Iterator[tuple[City, TestClient]]:
    """The incident city served by two app instances (a key cache of 1 s each)."""
    from spatial_api.app import create_app

    url = new_database("cityhex_key_lifecycle")
    build_city(url)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CITYHEX_KEY_CACHE_SECONDS", str(CACHE_S))
        api_settings.cache_clear()
        first, second = create_app(url), create_app(url)
        api_settings.cache_clear()
    with TestClient(first) as a, TestClient(second) as b:
        yield City(url, a), b


def new_key(url: str, role: str, name: str) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        return create_key(conn, role, name)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def key_id(city: City, key: str) -> int:
    return city.value("SELECT id FROM api_keys WHERE prefix = %s", (key[:10],))


def works(client: TestClient, credential: str) -> bool:
    """Whether a reader's route accepts the credential (200) or refuses it (401)."""
    status = client.get("/incidents", headers=bearer(credential)).status_code
    assert status in (200, 401), status
    return status == 200


def token(client: TestClient, key: str) -> str:
    answer = client.post("/auth/token", headers=bearer(key))
    assert answer.status_code == 200, answer.text
    return answer.json()["access_token"]


def test_revoked_over_http_is_refused_by_both_instances_with_its_tokens(apps) -> None:
    city, other = apps
    admin = new_key(city.url, "admin", "boss")
    key = new_key(city.url, "dispatcher", "to-revoke")
    kid = key_id(city, key)
    made = token(city.client, key)
    assert all(works(c, cred) for c in (city.client, other) for cred in (key, made))
    answer = city.client.delete(f"/auth/keys/{kid}", headers=bearer(admin))
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "revoked"
    assert city.value("SELECT revoked_at IS NOT NULL FROM api_keys WHERE id = %s", (kid,))
    # the instance that revoked it refuses at once; the other within its cache lifetime
    assert not works(city.client, key) and not works(city.client, made)
    time.sleep(CACHE_S + 0.2)
    assert not works(other, key) and not works(other, made)
    assert other.post("/auth/token", headers=bearer(key)).status_code == 401
    audited = city.rows(
        "SELECT action, actor FROM audit_log WHERE action = 'key.revoke' AND target->>'key' = %s",
        (str(kid),),
    )
    assert audited == [("key.revoke", "admin:boss")]


def test_admin_key_routes_are_for_admins_and_never_show_secrets(apps) -> None:
    city, _ = apps
    admin = new_key(city.url, "admin", "boss2")
    dispatcher = new_key(city.url, "dispatcher", "nosy")
    assert city.client.get("/auth/keys", headers=bearer(dispatcher)).status_code == 403
    assert city.client.get("/auth/keys").status_code == 401
    made = city.client.post(
        "/auth/keys",
        headers=bearer(admin),
        json={"role": "editor", "name": "by-http", "departments": ["hw"], "expires": "12h"},
    )
    assert made.status_code == 201, made.text
    body = made.json()
    row = city.rows(
        "SELECT id, role, departments, expires_at - created_at, key_hash FROM api_keys "
        "WHERE name = 'by-http'"
    )[0]
    scope = {"districts": None, "departments": ["hw"], "layers": None}
    assert (body["id"], body["role"], body["scope"]) == (row[0], "editor", scope)
    assert row[1:4] == ("editor", ["hw"], timedelta(hours=12))
    assert works(city.client, body["key"])
    listed = city.client.get("/auth/keys", headers=bearer(admin))
    assert listed.status_code == 200
    text = listed.text
    for secret in (body["key"], admin, dispatcher, row[4]):
        assert secret not in text
    ids = [k["id"] for k in listed.json()["keys"]]
    assert ids == [r[0] for r in city.rows("SELECT id FROM api_keys ORDER BY id DESC")]
    bad = [
        {"role": "boss"},
        {"role": "app", "expires": "90x"},
        {"role": "app", "expires": "0d"},
        {"role": "app", "districts": ["999999"]},
        {"role": "app", "layers": ["nope"]},
        {"role": "admin", "districts": ["440301"]},
        {"role": "app", "inspector_id": 999999},
    ]
    before = city.value("SELECT count(*) FROM api_keys")
    for payload in bad:
        answer = city.client.post("/auth/keys", headers=bearer(admin), json=payload)
        assert answer.status_code == 400, (payload, answer.text)
    assert city.value("SELECT count(*) FROM api_keys") == before
    assert city.client.delete("/auth/keys/999999", headers=bearer(admin)).status_code == 404
    created = city.rows(
        "SELECT actor, detail->>'role' FROM audit_log WHERE action = 'key.create' "
        "AND target->>'key' = %s",
        (str(body["id"]),),
    )
    assert created == [("admin:boss2", "editor")]


def test_rotate_over_http_keeps_the_key_and_voids_the_old_secret(apps) -> None:
    city, other = apps
    admin = new_key(city.url, "admin", "boss3")
    key = new_key(city.url, "inspector", "to-rotate")
    kid = key_id(city, key)
    old_token = token(other, key)
    answer = city.client.post(f"/auth/keys/{kid}/rotate", headers=bearer(admin))
    assert answer.status_code == 200, answer.text
    fresh = answer.json()["key"]
    assert answer.json()["id"] == kid and fresh != key
    assert city.value("SELECT rotated_at IS NOT NULL FROM api_keys WHERE id = %s", (kid,))
    time.sleep(CACHE_S + 0.2)
    for client in (city.client, other):
        assert works(client, fresh)
        assert not works(client, key) and not works(client, old_token)
    assert works(other, token(other, fresh))
    city.client.delete(f"/auth/keys/{kid}", headers=bearer(admin))
    again = city.client.post(f"/auth/keys/{kid}/rotate", headers=bearer(admin))
    assert again.status_code == 409 and again.json()["code"] == "key_ended"


def test_expired_key_and_its_tokens_are_refused(apps) -> None:
    city, other = apps
    key = new_key(city.url, "app", "short-lived")
    kid = key_id(city, key)
    made = token(city.client, key)
    assert works(other, key) and works(other, made)
    with psycopg.connect(city.url, autocommit=True) as conn:
        conn.execute("UPDATE api_keys SET expires_at = now() WHERE id = %s", (kid,))
    time.sleep(CACHE_S + 0.2)
    for client in (city.client, other):
        assert not works(client, key) and not works(client, made)


def test_a_token_never_outlives_its_key(apps) -> None:
    city, _ = apps
    key = new_key(city.url, "app", "ends-soon")
    with psycopg.connect(city.url, autocommit=True) as conn:
        conn.execute(
            "UPDATE api_keys SET expires_at = now() + interval '100 seconds' WHERE prefix = %s",
            (key[:10],),
        )
    time.sleep(CACHE_S + 0.2)
    answer = city.client.post("/auth/token", headers=bearer(key))
    assert 95 <= answer.json()["expires_in"] <= 100


def test_last_use_is_written_at_most_once_a_minute(apps) -> None:
    city, other = apps
    key = new_key(city.url, "app", "used")
    kid = key_id(city, key)
    assert city.value("SELECT last_used_at FROM api_keys WHERE id = %s", (kid,)) is None
    assert works(city.client, key)
    first = city.value("SELECT last_used_at FROM api_keys WHERE id = %s", (kid,))
    assert first is not None
    time.sleep(CACHE_S + 0.2)  # both caches lapse: each instance reads the key again
    assert works(other, key) and works(city.client, key)
    assert city.value("SELECT last_used_at FROM api_keys WHERE id = %s", (kid,)) == first
    with psycopg.connect(city.url, autocommit=True) as conn:
        conn.execute(
            "UPDATE api_keys SET last_used_at = now() - interval '2 minutes' WHERE id = %s",
            (kid,),
        )
    time.sleep(CACHE_S + 0.2)
    assert works(other, key)
    later = city.value("SELECT last_used_at FROM api_keys WHERE id = %s", (kid,))
    assert later > first


@pytest.fixture
def cli(apps) -> Iterator[CliRunner]:
    """The CLI working on the city's database."""
    city, _ = apps
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CITYHEX_DATABASE_URL", city.url)
        mp.setenv("COLUMNS", "200")
        storage_settings.cache_clear()
        try:
            yield CliRunner()
        finally:
            storage_settings.cache_clear()


def test_cli_create_list_rotate_revoke(apps, cli: CliRunner) -> None:
    from spatial_api.cli import app

    city, other = apps
    args = ["keys", "create", "--role", "app", "--name", "cli-key", "--expires", "90d"]
    made = cli.invoke(app, args)
    assert made.exit_code == 0, made.output
    key = made.output.strip().splitlines()[-1]
    kid = key_id(city, key)
    lifetime = city.value("SELECT expires_at - created_at FROM api_keys WHERE id = %s", (kid,))
    assert lifetime == timedelta(days=90)
    assert cli.invoke(app, ["keys", "create", "--role", "app", "--expires", "soon"]).exit_code == 1
    listing = cli.invoke(app, ["keys", "list"])
    assert listing.exit_code == 0, listing.output
    line = next(r for r in listing.output.splitlines() if "cli-key" in r)
    assert str(kid) in line and "app" in line and "active" in line
    hashes = [r[0] for r in city.rows("SELECT key_hash FROM api_keys")]
    assert key not in listing.output and not any(h in listing.output for h in hashes)

    rotated = cli.invoke(app, ["keys", "rotate", "--name", "cli-key"])
    assert rotated.exit_code == 0, rotated.output
    fresh = rotated.output.strip().splitlines()[-1]
    assert key_id(city, fresh) == kid
    time.sleep(CACHE_S + 0.2)
    assert works(other, fresh) and not works(other, key)

    revoked = cli.invoke(app, ["keys", "revoke", str(kid)])
    assert revoked.exit_code == 0, revoked.output
    time.sleep(CACHE_S + 0.2)
    assert not works(other, fresh)
    assert cli.invoke(app, ["keys", "revoke", "--name", "cli-key"]).exit_code == 1  # none live
    listing = cli.invoke(app, ["keys", "list"])
    assert "revoked" in next(r for r in listing.output.splitlines() if "cli-key" in r)
    actions = city.rows(
        "SELECT action, actor FROM audit_log WHERE target->>'key' = %s ORDER BY seq", (str(kid),)
    )
    assert [a for a, _ in actions] == ["key.create", "key.rotate", "key.revoke"]
    assert all(actor.startswith("cli:") for _, actor in actions)


def test_ambiguous_names_are_refused(apps, cli: CliRunner) -> None:
    from spatial_api.cli import app

    city, _ = apps
    for _ in range(2):
        new_key(city.url, "app", "twin")
    answer = cli.invoke(app, ["keys", "revoke", "--name", "twin"])
    assert answer.exit_code == 1 and "which_key" in answer.output
    live = "SELECT count(*) FROM api_keys WHERE name = 'twin' AND revoked_at IS NULL"
    assert city.value(live) == 2
