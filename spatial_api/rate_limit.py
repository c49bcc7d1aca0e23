"""A per-client rate limit, for endpoints open to the anonymous public.

Clients are told apart by their address as ``spatial_api.proxies.client_address`` gives it
(a trusted proxy's ``X-Forwarded-For``, else the direct peer). The counts are token buckets
in the database (``layers.db.rate_limits``), so one limit holds across every worker of
every server on it.
"""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.ext.asyncio import AsyncEngine

from gis.errors import CityHexError
from layers.db.rate_limits import take

REPORTS = "public_reports"
"""The name of the anonymous-report limit's buckets."""


class RateSettings(BaseSettings):
    """Limits for anonymous callers."""

    model_config = SettingsConfigDict(env_prefix="CITYHEX_", extra="ignore")

    public_reports_per_minute: float = 5.0
    """Reports an anonymous client (by IP address) may send per minute, in bursts of as many
    (counted across every process on the database)."""


class TooManyRequests(CityHexError):
    """The caller exceeded its rate."""

    code = "too_many_requests"


class RateLimiter:
    """One limit: ``per_minute`` takes a minute per client, as many at once at most."""

    def __init__(self, name: str, per_minute: float) -> None:
        self.name = name
        self.per_minute = per_minute

    async def take(self, engine: AsyncEngine, client: str) -> None:
        """Spend one of ``client``'s takes; TooManyRequests (with Retry-After) when none is
        left."""
        wait = await take(engine, self.name, client, self.per_minute)
        if wait is not None:
            raise TooManyRequests(
                f"too many anonymous reports from this address; retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )


def public_report_limiter() -> RateLimiter:
    """A limiter with the configured rate for anonymous reports."""
    return RateLimiter(REPORTS, RateSettings().public_reports_per_minute)
