"""Tokens across servers: two ``cityhex serve`` processes on one database share nothing but
it. A token made by one (``POST /auth/token``) is accepted by the other (the signing secret
is the database's), and once its key is revoked through one server the other refuses the
token within its key cache lifetime (``CITYHEX_KEY_CACHE_SECONDS``, 2 s here). The key's
state is read back by SQL; the time is measured by the test's own clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import jwt
import psycopg
import pytest

from layers.db.keys import create_key
from tests.helpers import running_server, scalar
from tests.incidents.conftest import build_city

CACHE_S = 2.0


def new_key(url: str, role: str, name: str) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        return create_key(conn, role, name)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def status(base: str, credential: str) -> int:
    """What a reader's route answers the credential: 200 or 401."""
    answer = httpx.get(f"{base}/incidents", headers=bearer(credential), timeout=10)
    assert answer.status_code in (200, 401), answer.text
    return answer.status_code


@pytest.mark.subprocess
def test_a_token_of_one_server_works_on_the_other_until_its_key_is_revoked(
    new_database: Callable[..., str],
) -> None:
    url = new_database("cityhex_tokens_servers")
    build_city(url)
    admin, key = new_key(url, "admin", "boss"), new_key(url, "dispatcher", "two-servers")
    kid = scalar(url, "SELECT id FROM api_keys WHERE prefix = %s", (key[:10],))
    env = {"CITYHEX_KEY_CACHE_SECONDS": str(CACHE_S)}
    with running_server(url, env=env) as a, running_server(url, env=env) as b:
        made = httpx.post(f"{a}/auth/token", headers=bearer(key), timeout=10)
        assert made.status_code == 200, made.text
        token = made.json()["access_token"]
        secret = bytes(scalar(url, "SELECT secret FROM token_secret"))
        claims = jwt.decode(token, secret, algorithms=["HS256"], issuer="cityhex")
        assert (claims["key_id"], claims["role"]) == (kid, "dispatcher")
        # accepted by both; A now holds the key in its cache
        assert status(b, token) == 200 and status(a, token) == 200
        revoked = httpx.delete(f"{b}/auth/keys/{kid}", headers=bearer(admin), timeout=10)
        assert revoked.status_code == 200, revoked.text
        at = time.monotonic()
        assert scalar(url, "SELECT revoked_at IS NOT NULL FROM api_keys WHERE id = %s", (kid,))
        # the server that revoked it refuses at once, the token and the key
        assert status(b, token) == 401 and status(b, key) == 401
        # the other within its cache lifetime (polled; a little slack for the requests)
        while status(a, token) == 200:
            assert time.monotonic() - at <= CACHE_S + 0.5, "A still accepts the token"
            time.sleep(0.1)
        assert status(a, key) == 401
        assert httpx.post(f"{a}/auth/token", headers=bearer(key), timeout=10).status_code == 401
