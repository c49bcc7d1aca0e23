"""The city's identity provider: OpenID Connect bearer tokens (JWTs) checked against the
issuer's published keys.

The issuer's discovery document (``{issuer}/.well-known/openid-configuration``) names its
JWKS; both are fetched with a time limit and kept for ``CITYHEX_OIDC_JWKS_TTL_SECONDS``. A
token signed with a key id not in the kept set makes one refetch (keys rotate), at most one
per ``CITYHEX_OIDC_REFRESH_INTERVAL_SECONDS``. Only RS256 and ES256 signatures are accepted;
``exp`` (required), ``nbf``, ``iss`` and ``aud`` are checked with a small leeway. The role,
the user id and the scope (districts, departments, layers) come from configurable claims.

A token that fails any check is ``InvalidToken`` (401 with ``WWW-Authenticate: Bearer
error="invalid_token"``); an issuer that cannot be reached is 503.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from jwt import PyJWK, PyJWKSet

from gis.errors import Forbidden, ServiceUnavailable, Unauthorized
from layers.db.models import ROLES
from layers.db.scope import UNLIMITED, Scope
from spatial_api.settings import OidcSettings, oidc_settings

log = logging.getLogger("cityhex.oidc")

ALGORITHMS = ("RS256", "ES256")
"""The signature algorithms accepted (never ``none`` nor an HMAC)."""
JWT_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
PRECEDENCE = ("admin", "dispatcher", "editor", "inspector", "app")
"""Of several roles a token grants, the first in this order counts."""
INT_MAX = 2**31 - 1


def looks_like_jwt(token: str) -> bool:
    """Whether a bearer value has the shape of a JWT (three base64url parts)."""
    return JWT_SHAPE.match(token) is not None


class InvalidToken(Unauthorized):
    """A bearer token that is not a valid token of the configured issuer."""

    code = "invalid_token"

    def __init__(self, message: str) -> None:
        super().__init__(
            message,
            headers={
                "WWW-Authenticate": 'Bearer error="invalid_token", '
                f'error_description="{header_text(message)}"'
            },
        )


def header_text(message: str) -> str:
    """``message`` as the printable ASCII a quoted header parameter may hold (no quote or
    backslash), at most 200 characters."""
    kept = "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in message)
    return kept[:200]


@dataclass(frozen=True)
class Grant:
    """What a valid token grants: the role, the name recorded in history, the user id and
    the scope."""

    role: str
    name: str
    user_id: int | None
    scope: Scope


def claim(claims: dict[str, Any], path: str) -> Any:
    """The value at a dotted claim path (None when absent)."""
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _names(value: Any, what: str) -> list[str] | None:
    """A claim holding one name or a list of names, as a list (None when absent)."""
    if value is None:
        return None
    if isinstance(value, str | int) and not isinstance(value, bool):
        return [str(value)]
    if isinstance(value, list) and all(
        isinstance(v, str | int) and not isinstance(v, bool) for v in value
    ):
        return [str(v) for v in value]
    raise InvalidToken(f"the {what} claim must be a name or a list of names")


class IdentityProvider:
    """The configured issuer: its keys, fetched and kept, and the check of its tokens."""

    def __init__(self, settings: OidcSettings) -> None:
        assert settings.issuer, "an identity provider needs CITYHEX_OIDC_ISSUER"
        self.settings = settings
        self.issuer = settings.issuer.rstrip("/")
        self._jwks_uri: str | None = None
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at = -float("inf")
        self._tried_at = -float("inf")
        self._error: ServiceUnavailable | None = None
        self._lock = asyncio.Lock()

    # --- the issuer's keys ---------------------------------------------------------------

    async def _get_json(self, client: httpx.AsyncClient, url: str) -> dict[str, Any]:
        try:
            response = await client.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            data = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ServiceUnavailable(
                f"the identity provider cannot be reached ({url}): {type(exc).__name__}",
                code="identity_provider_unavailable",
            ) from None
        if not isinstance(data, dict):
            raise ServiceUnavailable(
                f"the identity provider sent no JSON object at {url}",
                code="identity_provider_unavailable",
            )
        return data

    async def _fetch(self) -> None:
        """Fetch the discovery document (when its lifetime is over) and the key set."""
        stale = time.monotonic() - self._fetched_at >= self.settings.jwks_ttl_seconds
        async with httpx.AsyncClient(timeout=self.settings.timeout_seconds) as client:
            if self._jwks_uri is None or stale:
                url = f"{self.issuer}/.well-known/openid-configuration"
                discovery = await self._get_json(client, url)
                if str(discovery.get("issuer", "")).rstrip("/") != self.issuer:
                    raise ServiceUnavailable(
                        f"the discovery document names the issuer {discovery.get('issuer')!r},"
                        f" not {self.issuer!r}",
                        code="identity_provider_misconfigured",
                    )
                if not isinstance(discovery.get("jwks_uri"), str):
                    raise ServiceUnavailable(
                        "the discovery document names no jwks_uri",
                        code="identity_provider_misconfigured",
                    )
                self._jwks_uri = discovery["jwks_uri"]
            assert self._jwks_uri is not None
            jwks = await self._get_json(client, self._jwks_uri)
        self._keys = self._signing_keys(jwks)
        self._fetched_at = time.monotonic()

    @staticmethod
    def _signing_keys(jwks: dict[str, Any]) -> dict[str, PyJWK]:
        """The key set's signature keys that have a key id, by key id."""
        listed = [k for k in jwks.get("keys", []) if isinstance(k, dict)]
        usable = [k for k in listed if k.get("use", "sig") == "sig" and k.get("kid")]
        try:
            keys = PyJWKSet.from_dict({"keys": usable}).keys if usable else []
        except jwt.PyJWTError:
            keys = []
        return {str(k.key_id): k for k in keys}

    async def _refresh(self) -> None:
        """Refetch the keys once for every request waiting now, and at most once per
        refresh interval (a failure is kept and answered until the next attempt)."""
        tried = self._tried_at
        async with self._lock:
            now = time.monotonic()
            if self._tried_at != tried or now - tried < self.settings.refresh_interval_seconds:
                return
            self._tried_at = now
            try:
                async with asyncio.timeout(self.settings.timeout_seconds * 2):
                    await self._fetch()
                self._error = None
            except TimeoutError:
                self._error = ServiceUnavailable(
                    "the identity provider did not answer in time",
                    code="identity_provider_unavailable",
                )
            except ServiceUnavailable as exc:
                self._error = exc
            if self._error is not None:
                log.warning("identity provider keys not refreshed: %s", self._error.message)

    async def signing_key(self, kid: str) -> PyJWK:
        """The issuer's key ``kid``, fetching the key set when it is old or lacks it. Keys
        already fetched stay in use while the issuer cannot be reached."""
        fresh = time.monotonic() - self._fetched_at < self.settings.jwks_ttl_seconds
        if not fresh or kid not in self._keys:
            await self._refresh()
        key = self._keys.get(kid)
        if key is not None:
            return key
        if self._error is not None:
            raise ServiceUnavailable(self._error.message, code=self._error.code)
        raise InvalidToken(f"the issuer has no signing key {kid[:64]!r}")

    # --- tokens -------------------------------------------------------------------------

    async def verify(self, token: str) -> dict[str, Any]:
        """The claims of a valid token of the issuer; InvalidToken otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("the token is not a readable JWT") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            shown = repr(alg)[:40]
            raise InvalidToken(f"alg {shown} is not accepted; use one of {', '.join(ALGORITHMS)}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("the token names no key id (kid)")
        key = await self.signing_key(kid)
        if key.algorithm_name != alg:
            raise InvalidToken(f"key {kid!r} is not a {alg} key")
        try:
            return jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self.settings.audience,
                issuer=self.settings.issuer,
                leeway=self.settings.leeway_seconds,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("the token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken(
                f"the token is not for the audience {self.settings.audience!r}"
            ) from None
        except jwt.InvalidIssuerError:
            raise InvalidToken(f"the token was not issued by {self.settings.issuer}") from None
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"the token is not valid: {exc}") from None

    def role_of(self, claims: dict[str, Any]) -> str:
        """The CityHex role the claims grant; Forbidden when they grant none."""
        given = _names(claim(claims, self.settings.role_claim), "role") or []
        mapped = {self.settings.roles.get(name, name) for name in given}
        for role in PRECEDENCE:
            if role in mapped and role in ROLES:
                return role
        raise Forbidden(
            f"the token grants no CityHex role (claim {self.settings.role_claim!r})",
            code="no_role",
        )

    def grant(self, claims: dict[str, Any]) -> Grant:
        """What the claims of a verified token grant."""
        s = self.settings
        role = self.role_of(claims)
        user = claim(claims, s.inspector_claim)
        if isinstance(user, str) and user.isascii() and user.isdigit():
            user = int(user)
        if user is not None and not (isinstance(user, int) and 1 <= user <= INT_MAX):
            raise InvalidToken(f"the {s.inspector_claim} claim must be a user id")
        scope = UNLIMITED
        if role != "admin":
            scope = Scope.of(
                _names(claim(claims, s.districts_claim), "districts"),
                _names(claim(claims, s.departments_claim), "departments"),
                _names(claim(claims, s.layers_claim), "layers"),
            )
        name = claim(claims, s.name_claim) or claims.get("sub") or "unnamed"
        return Grant(role=role, name=str(name), user_id=user, scope=scope)

    async def authenticate(self, token: str) -> Grant:
        """What a bearer token grants; InvalidToken (401), Forbidden (no role) or
        ServiceUnavailable (the issuer cannot be reached)."""
        return self.grant(await self.verify(token))


def new_identity_provider() -> IdentityProvider | None:
    """The configured identity provider (None when CITYHEX_OIDC_ISSUER is unset)."""
    settings = oidc_settings()
    return IdentityProvider(settings) if settings.issuer else None
