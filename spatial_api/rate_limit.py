"""A per-client token bucket, for endpoints open to the anonymous public.

Clients are told apart by their address as ``spatial_api.proxies.client_address`` gives it
(a trusted proxy's ``X-Forwarded-For``, else the direct peer). Each worker process keeps its
own buckets, so with N workers a client gets up to N times the configured rate.
"""

from __future__ import annotations

import math
import time

from pydantic_settings import BaseSettings, SettingsConfigDict

from gis.errors import CityHexError


class RateSettings(BaseSettings):
    """Limits for anonymous callers."""

    model_config = SettingsConfigDict(env_prefix="CITYHEX_", extra="ignore")

    public_reports_per_minute: float = 5.0
    """Reports an anonymous client (by IP address) may send per minute, in bursts of as many."""


class TooManyRequests(CityHexError):
    """The caller exceeded its rate."""

    code = "too_many_requests"


class RateLimiter:
    """Token buckets by client key: ``per_minute`` tokens a minute, as many at most."""

    def __init__(self, per_minute: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(per_minute, 1.0)
        self.buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> None:
        """Spend one token of ``key``'s bucket; TooManyRequests when it is empty."""
        now = time.monotonic()
        tokens, last = self.buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            wait = math.ceil((1.0 - tokens) / self.rate) if self.rate > 0 else 3600
            raise TooManyRequests(
                f"too many anonymous reports from this address; retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )
        if len(self.buckets) > 100_000:
            self.buckets.clear()
        self.buckets[key] = (tokens - 1.0, now)


def public_report_limiter() -> RateLimiter:
    """A limiter with the configured rate for anonymous reports."""
    return RateLimiter(RateSettings().public_reports_per_minute)
