"""Which forwarding headers to believe: ``X-Forwarded-For``, ``X-Forwarded-Proto`` and
``X-Forwarded-Host`` count only on a request that comes straight from a reverse proxy named
in ``CITYHEX_TRUSTED_PROXIES``. From anyone else they are ignored, so no client chooses the
address its anonymous reports are limited by, nor the host written into the links CityHex
hands out (TileJSON, styles, Features, Open311, open data).

``cityhex serve`` runs uvicorn without its own proxy-header handling, so the direct peer is
what the request says it is and these rules are the only ones applied.
"""

from __future__ import annotations

import re
from functools import cached_property, lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

from fastapi import Request
from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Network = IPv4Network | IPv6Network
HOST = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9.-]{0,252}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?$")
"""A host as a URL may hold it: a name or IPv4 address, or a bracketed IPv6 address, and an
optional port."""
SCHEMES = ("http", "https")


class ProxySettings(BaseSettings):
    """Which reverse proxies in front of CityHex are believed about the client."""

    model_config = SettingsConfigDict(env_prefix="CITYHEX_", extra="ignore")

    trusted_proxies: str = ""
    """Addresses or networks of the reverse proxies in front of CityHex, comma separated
    (`10.0.0.5,172.18.0.0/16`). Only on a request straight from one of them are
    `X-Forwarded-For` (the rate limit's client address) and `X-Forwarded-Proto`/`-Host` (the
    links in TileJSON, styles and Features) believed. Empty: no proxy is trusted."""

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        for part in filter(None, (p.strip() for p in value.split(","))):
            ip_network(part, strict=False)
        return value

    @cached_property
    def networks(self) -> tuple[Network, ...]:
        """The trusted proxies as networks (a single address is a /32 or /128)."""
        parts = (p.strip() for p in self.trusted_proxies.split(","))
        return tuple(ip_network(p, strict=False) for p in parts if p)


@lru_cache
def proxy_settings() -> ProxySettings:
    """The process-wide proxy settings."""
    return ProxySettings()


def is_trusted(address: str) -> bool:
    """Whether ``address`` is a trusted proxy (anything that is not an IP address is not)."""
    networks = proxy_settings().networks
    if not networks:
        return False
    try:
        ip = ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in net for net in networks)


def from_trusted_proxy(request: Request) -> bool:
    """Whether the request comes straight from a trusted proxy."""
    return request.client is not None and is_trusted(request.client.host)


def forwarded(request: Request, name: str) -> list[str]:
    """The comma-separated values of header ``name``, in order, blanks left out."""
    return [v.strip() for v in request.headers.get(name, "").split(",") if v.strip()]


def client_address(request: Request) -> str:
    """The address of the client behind the request: the direct peer, or, when that is a
    trusted proxy, the nearest address in ``X-Forwarded-For`` that is not one."""
    peer = request.client.host if request.client else "unknown"
    if not is_trusted(peer):
        return peer
    hops = forwarded(request, "x-forwarded-for")
    for hop in reversed(hops):
        if not is_trusted(hop):
            return hop
    return hops[0] if hops else peer


def public_base_url(request: Request) -> str:
    """This server's root URL as its clients reach it, without a trailing slash: with the
    scheme and host a trusted proxy forwarded (when well formed), else as requested."""
    base = str(request.base_url).rstrip("/")
    if not from_trusted_proxy(request):
        return base
    protos, hosts = forwarded(request, "x-forwarded-proto"), forwarded(request, "x-forwarded-host")
    proto = protos[0].lower() if protos and protos[0].lower() in SCHEMES else None
    host = hosts[0] if hosts and HOST.match(hosts[0]) else None
    if proto is None and host is None:
        return base
    root = request.scope.get("root_path", "")
    return f"{proto or request.url.scheme}://{host or request.url.netloc}{root}".rstrip("/")
