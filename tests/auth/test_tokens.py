"""``POST /auth/token``: short-lived signed tokens made from a key, accepted as a Bearer
header everywhere and as ``?access_token=`` only on /events and tile, TileJSON and style URLs.

Each token is decoded here with PyJWT and the secret read by SQL from ``token_secret``, and
its claims compared with the key's row in ``api_keys``; forged tokens (another secret, past
expiry, changed claims) are made the same way and must be refused.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import jwt
import psycopg
import pytest
from fastapi.testclient import TestClient

from layers.db.keys import create_key
from layers.db.scope import Scope
from spatial_api.settings import api_settings
from tests.helpers import City, scalar
from tests.incidents.conftest import build_city

TILEJSON = "/tiles/incidents/tilejson.json"


@pytest.fixture(scope="module")
def city(new_database) -> Iterator[City]:
    """The incident city, served in process."""
    from spatial_api.app import create_app

    url = new_database("cityhex_tokens")
    build_city(url)
    with TestClient(create_app(url)) as client:
        yield City(url, client)


def make_key(url: str, role: str, scope: Scope | None = None, name: str = "t") -> str:
    """A new key in the database at ``url``."""
    with psycopg.connect(url, autocommit=True) as conn:
        return create_key(conn, role, name, None, scope or Scope())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def secret(url: str) -> bytes:
    return bytes(scalar(url, "SELECT secret FROM token_secret"))


def token_for(city: City, key: str) -> dict:
    answer = city.client.post("/auth/token", headers=bearer(key))
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_key_makes_a_token_carrying_its_role_and_scope(city: City) -> None:
    key = make_key(city.url, "dispatcher", Scope.of(["440301"]), "west-desk")
    body = token_for(city, key)
    assert body["token_type"] == "Bearer"
    assert 899 <= body["expires_in"] <= 900  # CITYHEX_TOKEN_MINUTES defaults to 15
    claims = jwt.decode(body["access_token"], secret(city.url), algorithms=["HS256"])
    row = city.rows(
        "SELECT id, role, districts, substr(key_hash, 1, 16) FROM api_keys WHERE prefix = %s",
        (key[:10],),
    )[0]
    assert (claims["key_id"], claims["role"], claims["scope"]["districts"]) == row[:3]
    assert claims["key_digest"] == row[3]
    assert claims["exp"] - claims["iat"] == 900
    # the token works where the key does
    assert city.client.get("/incidents", headers=bearer(body["access_token"])).status_code == 200


def test_token_minutes_setting(city: City, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYHEX_TOKEN_MINUTES", "2")
    api_settings.cache_clear()
    try:
        body = token_for(city, make_key(city.url, "app"))
    finally:
        monkeypatch.delenv("CITYHEX_TOKEN_MINUTES")
        api_settings.cache_clear()
    assert 119 <= body["expires_in"] <= 120
    claims = jwt.decode(body["access_token"], secret(city.url), algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 120


def test_anonymous_and_token_callers_get_no_token(city: City) -> None:
    answer = city.client.post("/auth/token")
    assert answer.status_code == 401
    message = answer.json()["message"]
    assert "cityhex keys create --role" in message and "POST /auth/token" in message
    assert "docs/auth.md" in message
    token = token_for(city, make_key(city.url, "app"))["access_token"]
    again = city.client.post("/auth/token", headers=bearer(token))
    assert again.status_code == 403 and again.json()["code"] == "token_from_token"


def test_every_401_says_how_to_get_a_key(city: City) -> None:
    for path in ("/incidents", TILEJSON, "/auth/keys"):
        answer = city.client.get(path)
        assert answer.status_code == 401, path
        assert "cityhex keys create --role" in answer.json()["message"], path
    wrong = city.client.get("/incidents", headers=bearer("chx_not-a-key"))
    assert wrong.status_code == 401 and "POST /auth/token" in wrong.json()["message"]


def test_forged_and_expired_tokens_are_refused(city: City) -> None:
    key = make_key(city.url, "dispatcher")
    good = token_for(city, key)["access_token"]
    claims = jwt.decode(good, secret(city.url), algorithms=["HS256"])
    header = {"kid": "cityhex-token"}
    forged = {
        "other secret": jwt.encode(claims, b"x" * 32, algorithm="HS256", headers=header),
        "expired": jwt.encode(
            {**claims, "iat": int(time.time()) - 3600, "exp": int(time.time()) - 60},
            secret(city.url),
            algorithm="HS256",
            headers=header,
        ),
        "other key digest": jwt.encode(
            {**claims, "key_digest": "0" * 16}, secret(city.url), algorithm="HS256", headers=header
        ),
        "alg none": jwt.encode(claims, None, algorithm="none", headers=header),
    }
    for why, token in forged.items():
        answer = city.client.get("/incidents", headers=bearer(token))
        assert answer.status_code == 401, why
        assert answer.json()["code"] == "invalid_token", why
    assert city.client.get("/incidents", headers=bearer(good)).status_code == 200


def test_access_token_in_the_query_only_where_allowed(city: City) -> None:
    key = make_key(city.url, "dispatcher")
    token = token_for(city, key)["access_token"]
    # incidents are not public: the tile routes answer 401 without a caller
    assert city.client.get(TILEJSON).status_code == 401
    assert city.client.get(TILEJSON, params={"access_token": token}).status_code == 200
    tile = "/tiles/incidents/14/13382/7139.mvt"
    assert city.client.get(tile).status_code == 401
    assert city.client.get(tile, params={"access_token": token}).status_code in (200, 204)
    # elsewhere the parameter is ignored: the caller stays anonymous
    assert city.client.get("/incidents", params={"access_token": token}).status_code == 401
    # a key never travels in a URL
    refused = city.client.get(TILEJSON, params={"access_token": key})
    assert refused.status_code == 401 and refused.json()["code"] == "invalid_token"
    # and a header wins over the parameter
    both = city.client.get(TILEJSON, params={"access_token": "nonsense"}, headers=bearer(token))
    assert both.status_code == 200


def test_token_issue_is_audited(city: City) -> None:
    key = make_key(city.url, "inspector", name="audited")
    key_id = scalar(city.url, "SELECT id FROM api_keys WHERE prefix = %s", (key[:10],))
    token_for(city, key)
    token_for(city, key)
    issued = city.rows(
        "SELECT actor, role, key_id, target->>'key', detail->>'expires_in' FROM audit_log "
        "WHERE action = 'token.issue' AND target->>'key' = %s",
        (str(key_id),),
    )
    assert issued == [("inspector:audited", "inspector", key_id, str(key_id), "900")] * 2
