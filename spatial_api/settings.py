"""Server settings, read from the environment (prefix ``CITYHEX_``)."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Annotated

from pydantic import field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ORIGIN = re.compile(r"https?://[^/\s]+")
"""A browser origin: scheme and host, with an optional port, and no path."""


class ApiSettings(BaseSettings):
    """How the HTTP server behaves."""

    model_config = SettingsConfigDict(env_prefix="CITYHEX_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    key_cache_seconds: float = 10.0
    """How long a looked-up API key is trusted before it is read again (revocation delay)."""
    health_timeout_seconds: float = 2.0
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
