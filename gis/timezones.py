"""Time zones by their IANA names, for local-time buckets."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gis.errors import BadRequest


def time_zone(name: str) -> ZoneInfo:
    """The time zone called ``name`` (``Asia/Shanghai``, ``UTC``); BadRequest otherwise."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadRequest(f"unknown time zone {name!r}", code="invalid_tz") from None
