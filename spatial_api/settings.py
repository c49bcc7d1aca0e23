"""Server settings, read from the environment (prefix ``CITYHEX_``)."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ORIGIN = re.compile(r"https?://[^/\s]+")
"""A browser origin: scheme and host, with an optional port, and no path."""


class ApiSettings(BaseSettings):
    """How the HTTP server behaves."""

    model_config = SettingsConfigDict(env_prefix="CITYHEX_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    key_cache_seconds: float = Field(10.0, ge=0, le=3600)
    """How long a looked-up API key is trusted before it is read again: a revoked, expired
    or rotated key (and the tokens made from it) is refused by every worker within this
    time. The token-signing secret is read again as often."""
    token_minutes: float = Field(15.0, gt=0, le=1440)
    """How long a token of ``POST /auth/token`` lasts (never past the key's expiry or the
    identity-provider token it was made from)."""
    health_timeout_seconds: float = 2.0
    idempotency_key_hours: float = Field(24.0, gt=0, le=720)
    """How long the first answer to an ``Idempotency-Key`` is kept: a retry with the key
    within this time gets that answer again instead of running the request twice."""
    cors_origins: Annotated[list[str], NoDecode] = []
    """Origins whose web pages may call the API (comma list, such as
    ``https://app.example.org,http://localhost:5173``; ``*`` for any). Empty: no cross-origin
    access. Callers authenticate with the Authorization header, never with cookies."""

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, value: str | list[str]) -> list[str]:
        items = value.split(",") if isinstance(value, str) else value
        origins = [item.strip().rstrip("/") for item in items if item.strip()]
        wrong = [o for o in origins if o != "*" and not ORIGIN.fullmatch(o)]
        if wrong:
            raise ValueError(
                f"{', '.join(wrong)}: an origin is scheme://host[:port], such as "
                "https://app.example.org"
            )
        return origins


@lru_cache
def api_settings() -> ApiSettings:
    """The process-wide server settings."""
    return ApiSettings()


class OidcSettings(BaseSettings):
    """The city's identity provider: OpenID Connect bearer tokens (JWTs) beside API keys.

    Claim names may be dotted paths into nested claims (``realm_access.roles``).
    """

    model_config = SettingsConfigDict(env_prefix="CITYHEX_OIDC_", extra="ignore")

    issuer: str | None = None
    """The issuer URL; its ``/.well-known/openid-configuration`` names the JWKS. Unset: no
    tokens are accepted, only API keys."""
    audience: str = "cityhex"
    """The audience (``aud``) a token must be issued for: CityHex's client id at the issuer."""
    role_claim: str = "cityhex_role"
    """The claim with the caller's role: one name or a list (the most capable one counts)."""
    roles: dict[str, str] = Field(default_factory=dict)
    """Issuer role names mapped to CityHex roles, as JSON (``{"city-dispatcher":
    "dispatcher"}``); a role claim value that is a CityHex role counts as itself."""
    districts_claim: str = "cityhex_districts"
    """The claim with the district codes the caller is limited to (absent: no limit)."""
    departments_claim: str = "cityhex_departments"
    """The claim with the department codes the caller is limited to (absent: no limit)."""
    layers_claim: str = "cityhex_layers"
    """The claim with the layer ids whose features the caller may write (absent: no limit)."""
    inspector_claim: str = "cityhex_inspector_id"
    """The claim with the user id (the inspector or department staff) the caller is."""
    name_claim: str = "preferred_username"
    """The claim that names the caller in history records (``sub`` when it is absent)."""
    leeway_seconds: float = Field(30.0, ge=0, le=600)
    """Clock skew allowed when checking ``exp``, ``nbf`` and ``iat``."""
    jwks_ttl_seconds: float = Field(600.0, ge=1)
    """How long the fetched discovery document and signing keys are used before a refetch."""
    refresh_interval_seconds: float = Field(30.0, ge=0)
    """The least time between two refetches caused by a token signed with an unknown key
    id, so a flood of made-up key ids cannot hammer the issuer."""
    timeout_seconds: float = Field(3.0, gt=0, le=60)
    """The time allowed for fetching the discovery document and keys; past it, 503."""


@lru_cache
def oidc_settings() -> OidcSettings:
    """The process-wide identity provider settings."""
    return OidcSettings()
