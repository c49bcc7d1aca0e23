"""A real OpenID Connect issuer for the token tests: an HTTP server on a free loopback port,
in a thread, serving a discovery document and a JWKS of keys the tests make with PyJWT and
cryptography (RSA and EC), and signing tokens with them. Keys can be added while it runs
(rotation), and it counts the key-set requests it answers."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from spatial_api.settings import oidc_settings

AUDIENCE = "cityhex-tests"


@dataclass
class SigningKey:
    """A private key of the issuer, its key id and algorithm."""

    kid: str
    alg: str
    private: Any

    @classmethod
    def make(cls, kid: str, alg: str) -> SigningKey:
        """A new RSA (RS256) or P-256 (ES256) key."""
        if alg == "RS256":
            return cls(kid, alg, rsa.generate_private_key(public_exponent=65537, key_size=2048))
        return cls(kid, alg, ec.generate_private_key(ec.SECP256R1()))

    def jwk(self) -> dict[str, Any]:
        """The public key as a JWK."""
        algorithm = RSAAlgorithm if self.alg == "RS256" else ECAlgorithm
        data = algorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**data, "kid": self.kid, "alg": self.alg, "use": "sig"}


@dataclass
class Issuer:
    """The running issuer: its URL, the keys it publishes, the key-set requests it got."""

    url: str
    keys: list[SigningKey] = field(default_factory=list)
    jwks_requests: int = 0

    def publish(self, key: SigningKey) -> SigningKey:
        """Serve ``key`` in the JWKS from now on."""
        self.keys.append(key)
        return key

    def token(self, key: SigningKey, **claims: Any) -> str:
        """A token signed with ``key``: 5 minutes valid, for the test audience, with the
        given claims (a claim given as None is left out)."""
        now = int(time.time())
        body = {"iss": self.url, "aud": AUDIENCE, "sub": "u-1", "iat": now, "exp": now + 300}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, key.private, algorithm=key.alg, headers={"kid": key.kid})


def serve_issuer(issuer: Issuer) -> ThreadingHTTPServer:
    """An HTTP server for ``issuer`` on a free loopback port (not started)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/.well-known/openid-configuration":
                body = {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks"}
            elif self.path == "/jwks":
                issuer.jwks_requests += 1
                body = {"keys": [k.jwk() for k in issuer.keys]}
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    """A running issuer publishing one RSA key (``rsa-1``) and one EC key (``ec-1``)."""
    running = Issuer("")
    server = serve_issuer(running)
    running.url = f"http://127.0.0.1:{server.server_address[1]}"
    running.publish(SigningKey.make("rsa-1", "RS256"))
    running.publish(SigningKey.make("ec-1", "ES256"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield running
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def app_trusting(url: str, issuer_url: str, **settings: str) -> Iterator[TestClient]:
    """The app on the database ``url``, trusting tokens of ``issuer_url`` (for the test
    audience, with the given CITYHEX_OIDC_* settings, named in lower case without prefix).
    The settings are in the environment only while the app starts, so nothing else made
    meanwhile trusts the issuer."""
    from spatial_api.app import create_app

    env = {"issuer": issuer_url, "audience": AUDIENCE, **settings}
    client = TestClient(create_app(url))
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(f"CITYHEX_OIDC_{name.upper()}", value)
        oidc_settings.cache_clear()
        try:
            client.__enter__()
        finally:
            oidc_settings.cache_clear()
    try:
        yield client
    finally:
        client.__exit__(None, None, None)
