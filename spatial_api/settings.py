"""Server settings, read from the environment (prefix ``CITYHEX_``)."""

from __future__ import annotations

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiSettings(BaseSettings):
    """How the HTTP server behaves."""

    model_config = SettingsConfigDict(env_prefix="CITYHEX_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    key_cache_seconds: float = 10.0
    """How long a looked-up API key is trusted before it is read again (revocation delay)."""
    health_timeout_seconds: float = 2.0


@lru_cache
def api_settings() -> ApiSettings:
    """The process-wide server settings."""
    return ApiSettings()
