"""OIDC bearer tokens against a real issuer the tests run (tests/api/conftest.py): RS256 and
ES256 tokens carry their role; expired, early, foreign, unsigned and HMAC-forged tokens are
401 ``invalid_token``; a rotated key is picked up after one rate-limited refetch; an issuer
that is down or silent is 503, and API keys keep working beside tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi.testclient import TestClient

from layers.db.embedded import free_port
from tests.api.conftest import AUDIENCE, Issuer, SigningKey, app_trusting
from tests.helpers import make_key

PROTECTED = "/incidents"  # app, inspector, editor, dispatcher or admin
DISPATCHERS_ONLY = "/grid/coverage"
ROLES = '{"city-dispatcher": "dispatcher", "city-viewer": "app"}'


@pytest.fixture(scope="module")
def app(db_url: str, issuer: Issuer) -> Iterator[TestClient]:
    """The app trusting the issuer; unknown key ids refetch at most once a second."""
    with app_trusting(
        db_url, issuer.url, refresh_interval_seconds="1", timeout_seconds="1", roles=ROLES
    ) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_invalid_token(response: Any) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    body = response.json()
    assert body["status"] == 401 and body["code"] == "invalid_token" and body["message"]


@pytest.mark.parametrize("kid", ["rsa-1", "ec-1"])
def test_signed_tokens_call_what_their_role_allows(
    app: TestClient, issuer: Issuer, kid: str
) -> None:
    key = next(k for k in issuer.keys if k.kid == kid)
    dispatcher = bearer(issuer.token(key, cityhex_role="dispatcher"))
    assert app.get(PROTECTED, headers=dispatcher).status_code == 200
    assert app.get(DISPATCHERS_ONLY, headers=dispatcher).status_code == 200
    viewer = bearer(issuer.token(key, cityhex_role="app"))
    assert app.get(PROTECTED, headers=viewer).status_code == 200
    r = app.get(DISPATCHERS_ONLY, headers=viewer)
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    assert app.get(PROTECTED).status_code == 401


def test_issuer_role_names_are_mapped_and_the_strongest_counts(
    app: TestClient, issuer: Issuer
) -> None:
    key = issuer.keys[0]
    both = bearer(issuer.token(key, cityhex_role=["city-viewer", "city-dispatcher"]))
    assert app.get(DISPATCHERS_ONLY, headers=both).status_code == 200
    viewer = bearer(issuer.token(key, cityhex_role="city-viewer"))
    assert app.get(PROTECTED, headers=viewer).status_code == 200
    assert app.get(DISPATCHERS_ONLY, headers=viewer).status_code == 403
    for role in ("mayor", None):
        r = app.get(PROTECTED, headers=bearer(issuer.token(key, cityhex_role=role)))
        assert r.status_code == 403 and r.json()["code"] == "no_role"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: dict[str, Any], claims: dict[str, Any], secret: bytes | None) -> str:
    """A JWT put together by hand, HMAC-SHA256 signed with ``secret`` (None: unsigned)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    if secret is None:
        return signing_input + "."
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def bad_tokens(issuer: Issuer) -> dict[str, tuple[str, str]]:
    """Tokens that must all be refused, by what is wrong with them, each with a part of the
    message that says so."""
    rsa_key = issuer.keys[0]
    now = int(time.time())
    claims = {"iss": issuer.url, "aud": AUDIENCE, "exp": now + 300, "cityhex_role": "admin"}
    public_pem = rsa_key.private.public_key().public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
    )
    good = issuer.token(rsa_key, cityhex_role="admin")
    head, payload, signature = good.split(".")
    tampered = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    tampered["sub"] = "someone-else"
    return {
        "expired": (
            issuer.token(rsa_key, cityhex_role="admin", iat=now - 900, exp=now - 120),
            "expired",
        ),
        "not yet valid": (
            issuer.token(rsa_key, cityhex_role="admin", nbf=now + 120),
            "not valid yet",
        ),
        "wrong audience": (
            issuer.token(rsa_key, cityhex_role="admin", aud="another-app"),
            "audience",
        ),
        "no audience": (issuer.token(rsa_key, cityhex_role="admin", aud=None), '"aud"'),
        "wrong issuer": (
            issuer.token(rsa_key, cityhex_role="admin", iss="https://idp.example"),
            "not issued by",
        ),
        "no expiry": (issuer.token(rsa_key, cityhex_role="admin", exp=None), '"exp"'),
        "alg none": (hand_made({"alg": "none", "kid": rsa_key.kid}, claims, None), "'none'"),
        "HS256 keyed with the public key": (
            hand_made({"alg": "HS256", "typ": "JWT", "kid": rsa_key.kid}, claims, public_pem),
            "'HS256'",
        ),
        "RS256 header on the EC key": (
            issuer.token(SigningKey("ec-1", "RS256", rsa_key.private), cityhex_role="admin"),
            "not a RS256 key",
        ),
        "no key id": (hand_made({"alg": "RS256"}, claims, None) + "sig", "no key id"),
        "tampered claims": (
            f"{head}.{b64(json.dumps(tampered).encode())}.{signature}",
            "Signature verification failed",
        ),
        "unreadable": ("abc.def.ghi", "not a readable JWT"),
        "unknown non-ASCII key id": (
            issuer.token(SigningKey("网格-\r\n" + "k" * 500, "RS256", rsa_key.private)),
            "no signing key",
        ),
        "non-ASCII alg": (hand_made({"alg": "签名", "kid": rsa_key.kid}, claims, None), "签名"),
    }


def test_bad_tokens_are_401_invalid_token(app: TestClient, issuer: Issuer) -> None:
    for what, (token, reason) in bad_tokens(issuer).items():
        response = app.get(PROTECTED, headers=bearer(token))
        assert response.status_code == 401, (what, response.text)
        assert_invalid_token(response)
        assert reason in response.json()["message"], (what, response.text)


def test_a_rotated_key_works_after_one_rate_limited_refetch(
    app: TestClient, issuer: Issuer
) -> None:
    new_key = SigningKey.make("rsa-2", "RS256")
    token = bearer(issuer.token(new_key, cityhex_role="dispatcher"))
    time.sleep(1.1)  # past the refresh interval of this app
    before = issuer.jwks_requests
    response = app.get(PROTECTED, headers=token)
    assert_invalid_token(response)
    assert "rsa-2" in response.json()["message"]
    assert issuer.jwks_requests == before + 1
    for n in range(20):
        bogus = SigningKey(f"bogus-{n}", "RS256", new_key.private)
        assert_invalid_token(app.get(PROTECTED, headers=bearer(issuer.token(bogus))))
    assert issuer.jwks_requests == before + 1, "made-up key ids must not hammer the issuer"
    issuer.publish(new_key)
    time.sleep(1.1)
    assert app.get(PROTECTED, headers=token).status_code == 200
    assert issuer.jwks_requests == before + 2
    assert app.get(PROTECTED, headers=token).status_code == 200
    assert issuer.jwks_requests == before + 2, "known keys are kept, not refetched"


def test_an_issuer_that_is_down_or_silent_is_503(db_url: str) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # takes connections into the backlog and never answers
    down = f"http://127.0.0.1:{free_port()}"
    try:
        for url in (down, f"http://127.0.0.1:{silent.getsockname()[1]}"):
            offline = Issuer(url)
            key = offline.publish(SigningKey.make("k", "ES256"))
            with app_trusting(db_url, url, timeout_seconds="0.5") as client:
                started = time.monotonic()
                response = client.get(
                    PROTECTED, headers=bearer(offline.token(key, cityhex_role="admin"))
                )
                assert time.monotonic() - started < 5
                assert response.status_code == 503, response.text
                body = response.json()
                assert body == {
                    "status": 503,
                    "code": "identity_provider_unavailable",
                    "message": body["message"],
                }
                assert client.get(PROTECTED, headers=make_key(db_url, "app")).status_code == 200
    finally:
        silent.close()


def test_keys_work_beside_tokens_and_unknown_keys_are_invalid_tokens(
    app: TestClient, db_url: str
) -> None:
    assert app.get(DISPATCHERS_ONLY, headers=make_key(db_url, "dispatcher")).status_code == 200
    assert_invalid_token(app.get(PROTECTED, headers=bearer("chx_not-a-key")))


def test_without_an_issuer_tokens_are_refused(client: TestClient, issuer: Issuer) -> None:
    token = issuer.token(issuer.keys[0], cityhex_role="admin")
    assert_invalid_token(client.get(PROTECTED, headers=bearer(token)))
