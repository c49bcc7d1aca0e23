"""Tokens and API keys: what ``/auth/token`` and ``/auth/keys`` answer."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from spatial_api.schemas import Schema


class TokenAnswer(Schema):
    """A short-lived bearer token (OAuth 2.0 style): send it as ``Authorization: Bearer``,
    or as ``?access_token=`` on ``/events`` and tile, TileJSON and style URLs."""

    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int = Field(description="Seconds until the token expires")


class KeyScope(Schema):
    """What a key is limited to (null: no limit on that dimension)."""

    districts: list[str] | None = None
    departments: list[str] | None = None
    layers: list[str] | None = None


class KeyListed(Schema):
    """A stored key, never its secret: ``prefix`` is the start of the key, to recognise it."""

    id: int
    name: str | None
    prefix: str
    role: str
    inspector_id: int | None
    scope: KeyScope
    state: Literal["active", "expired", "revoked"]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None = Field(description="Written at most once a minute")
    revoked_at: datetime | None
    rotated_at: datetime | None


class KeyList(Schema):
    """Every stored key, newest first."""

    keys: list[KeyListed]


class KeyMade(KeyListed):
    """A new (or rotated) key with its secret, shown this once."""

    key: str


class NewKey(BaseModel):
    """A key to make: its role, name, the inspector (user) it speaks for, scope, lifetime."""

    model_config = {"extra": "forbid"}

    role: Literal["app", "inspector", "editor", "dispatcher", "admin"]
    name: str | None = Field(None, max_length=200)
    inspector_id: int | None = Field(None, ge=1, le=2**31 - 1)
    districts: list[str] | None = Field(None, max_length=100)
    departments: list[str] | None = Field(None, max_length=100)
    layers: list[str] | None = Field(None, max_length=100)
    expires: str | None = Field(
        None, max_length=16, description="Lifetime in days or hours, such as 90d or 12h"
    )
